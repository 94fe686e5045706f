import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The PostgreSQL servers the postgres tests use.
///
/// `make test` starts a private server on loopback (scripts/postgres-node.sh) and passes its URL in
/// `ROUTERD_TEST_POSTGRES_URL`; each test makes a database of its own there, so tests run in parallel. Without the
/// variable the tests fail and say how to get one: they never pass silently without a database.
enum TestPostgres {
    /// The shared server's URL (a user who may create databases).
    static func serverURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["ROUTERD_TEST_POSTGRES_URL"], !url.isEmpty else {
            throw TestFailure(
                "ROUTERD_TEST_POSTGRES_URL is not set: run `make test`, which starts a private PostgreSQL, or "
                    + "`scripts/postgres-node.sh run -- swift test --skip-build`")
        }
        return url
    }

    /// A new empty database on `server` (the shared one by default); returns its URL.
    static func freshDatabase(on server: String? = nil) throws -> String {
        let server = try server ?? serverURL()
        let name = "test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        _ = try psql(server, "CREATE DATABASE \(name)")
        return replacingDatabase(in: server, with: name)
    }

    /// `url` with its database replaced by `name`.
    static func replacingDatabase(in url: String, with name: String) -> String {
        guard let slash = url.range(of: "/", options: .backwards) else { return url }
        return String(url[..<slash.upperBound]) + name
    }

    /// Runs `sql` with psql on `url`; returns what it printed (unaligned, tuples only, `|` between columns).
    @discardableResult
    static func psql(_ url: String, _ sql: String) throws -> String {
        let (status, output) = try Spawn.run(
            try psqlPath(), ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        guard status == 0 else { throw TestFailure("psql failed (\(status)) on: \(sql)\n\(output)") }
        return output
    }

    /// The rows of a query, each split on `|` (so no value may contain `|` or a newline).
    static func rows(_ url: String, _ sql: String) throws -> [[String]] {
        try psql(url, sql).split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false) }
            .map { $0.map(String.init) }
    }

    /// One number from a query.
    static func count(_ url: String, _ sql: String) throws -> Int {
        let text = try psql(url, sql).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let number = Int(text) else { throw TestFailure("'\(sql)' gave '\(text)', not a number") }
        return number
    }

    private static func psqlPath() throws -> String {
        if let found = try? ExternalTools.find(["psql"], package: "postgresql-client") { return found }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted().reversed() {
            let candidate = "/usr/lib/postgresql/\(version)/bin/psql"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw TestFailure("psql is not installed: run scripts/ensure-test-deps.sh (apt-get install postgresql)")
    }
}

/// A PostgreSQL server of a test's own (scripts/postgres-node.sh in a temporary folder), for tests that stop and
/// start it: stopping the shared server would fail the tests running beside them. It runs with `fsync` and
/// `synchronous_commit` on, so that what it confirmed survives being stopped or killed. Stopped and removed on
/// deinit.
final class PrivatePostgres {
    let directory: URL
    /// The URL of its `routerd` database.
    private(set) var url = ""

    init() throws {
        directory = URL(fileURLWithPath: "/tmp").appendingPathComponent("routerd-pg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // Stopped and killed by its tests: it commits durably (synchronous_commit = on), as a production server.
        _ = FileManager.default.createFile(atPath: directory.appendingPathComponent("durable").path, contents: nil)
        url = try node("start")
    }

    /// Stops the server (a fast shutdown: open connections are closed).
    func stop() throws { _ = try node("stop") }

    /// Starts it again, on the same port.
    func start() throws { url = try node("start") }

    deinit {
        _ = try? node("stop")
        try? FileManager.default.removeItem(at: directory)
    }

    private func node(_ command: String) throws -> String {
        let script = TestPaths.packageRoot.appendingPathComponent("scripts/postgres-node.sh").path
        let (status, output) = try Spawn.run("/bin/bash", [script, command, directory.path])
        guard status == 0 else { throw TestFailure("postgres-node.sh \(command) failed (\(status)):\n\(output)") }
        return output.split(separator: "\n").last.map(String.init) ?? ""
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then closed: another program could take it, but on a
/// test machine that is unlikely within the test).
func freeTCPPort() throws -> UInt16 { try freeLoopbackPort(Int32(SOCK_STREAM.rawValue)) }

/// A UDP port nothing is bound to on 127.0.0.1 (bound and released).
func freeUDPPort() throws -> UInt16 { try freeLoopbackPort(Int32(SOCK_DGRAM.rawValue)) }

/// A port of socket type `type` that nothing is bound to on 127.0.0.1 (bound and released).
private func freeLoopbackPort(_ type: Int32) throws -> UInt16 {
    let descriptor = socket(AF_INET, type, 0)
    guard descriptor >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
            bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
        }
    }
    guard bound else { throw TestFailure("bind: \(String(cString: strerror(errno)))") }
    return UInt16(bigEndian: address.sin_port)
}

/// Runs a program to completion with posix_spawn and waitpid, its output (stdout and stderr) in a temporary file.
///
/// Foundation's `Process.waitUntilExit()` was seen to wait forever for a script that had exited (left a zombie,
/// its SIGCHLD unseen) after starting a server with pg_ctl; waitpid(2) on the child's own pid cannot miss it.
enum Spawn {
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("spawn-\(UUID().uuidString)")
            .path
        defer { unlink(outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
        guard spawned == 0 else {
            throw TestFailure("cannot start \(executable): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw TestFailure("waitpid: \(String(cString: strerror(errno)))") }
        }
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS, which Swift does not import.
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitStatus, output)
    }
}
