import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The stock config (examples/router.yaml) run by the real binary.
@Suite("routerd binary: stock topology", .serialized)
struct StockTopologyTests {
    static var stockConfig: String {
        (try? String(
            contentsOf: TestPaths.packageRoot.appendingPathComponent("examples/router.yaml"), encoding: .utf8)) ?? ""
    }

    func startStock(_ directory: URL, environment: [String: String] = [:]) throws -> (RouterdProcess, UInt16) {
        var env = [
            "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0", "LOG_DIR": directory.appendingPathComponent("logs").path,
            "DASHBOARD_PORT": "0",
        ]
        env.merge(environment) { $1 }
        let routerd = try RouterdProcess(config: Self.stockConfig, directory: directory, environment: env)
        return (routerd, try routerd.listeningPort(stage: "udp_in"))
    }

    @Test func stock_whenTenThousandMixedEntries_writesEveryValidOneExactlyOnceAndAcksEveryError() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (routerd, port) = try startStock(directory)
        let client = try UDPClient()
        var errors: Set<Int> = []
        var valid: Set<Int> = []
        var datagrams: [String] = []
        let levels = ["INFO", "DEBUG", "WARNING", "INFO", "ERROR", "INFO", "warn", "CRITICAL", "INFO", "error"]
        for sequence in 0..<10_000 {
            if sequence % 97 == 0 {
                datagrams.append("not json \(sequence)")
                continue
            }
            let level = levels[sequence % levels.count]
            if level.uppercased() == "ERROR" { errors.insert(sequence) }
            valid.insert(sequence)
            datagrams.append(seedEntry(sequence: sequence, level: level) + (sequence % 2 == 0 ? "\n" : ""))
        }
        client.send(datagrams, port: port)
        var acked: Set<Int> = []
        let deadline = Date().addingTimeInterval(20)
        while acked.count < errors.count && Date() < deadline {
            guard let reply = client.receive(timeout: 1) else { continue }
            if reply.contains("\"ack\":true"), let sequence = sequenceOf(reply) { acked.insert(sequence) }
        }
        #expect(acked == errors)
        #expect(try routerd.terminate() == 0)
        let lines = fileLines(directory.appendingPathComponent("logs/server.log"))
        let sequences = lines.compactMap(sequenceOf)
        #expect(sequences.count == lines.count, "every line is a whole entry")
        #expect(sequences.count == valid.count, "no duplicates")
        #expect(Set(sequences) == valid)
        #expect(!lines.contains(""), "no blank lines from trailing newlines")
        let deadLetters = fileLines(directory.appendingPathComponent("logs/dead-letter.log"))
        #expect(deadLetters.count == 10_000 - valid.count)
    }

    @Test func stock_afterACrashLeftAPartialLineInServerLog_theNextEntryStartsALineOfItsOwn() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logs = directory.appendingPathComponent("logs")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        let serverLog = logs.appendingPathComponent("server.log")
        let torn = #"{"timestamp":"2026-11-22T10:00:00Z","sequence":1,"app":"web","le"#
        try Data((seedEntry(sequence: 0, level: "INFO") + "\n" + torn).utf8).write(to: serverLog)
        let (routerd, port) = try startStock(directory)
        try UDPClient().send((2...6).map { seedEntry(sequence: $0, level: "INFO") }, port: port)
        // SIGTERM at once: the drain writes what the kernel already accepted.
        #expect(try routerd.terminate() == 0)
        let lines = fileLines(serverLog)
        #expect(lines.count == 7)
        #expect(lines.first == seedEntry(sequence: 0, level: "INFO"))
        #expect(lines.dropFirst().first == torn)
        #expect(lines.dropFirst(2).compactMap(sequenceOf) == [2, 3, 4, 5, 6])
        let warning = try #require(
            routerd.logs("the file ended in a partial line (left by a crash?); ended it with a newline first").first)
        #expect(warning["stage"] as? String == "server_log")
    }

    @Test func stock_errorIsOnDiskAndAckedBeforeEarlierBufferedEntriesAreFlushed() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (routerd, port) = try startStock(
            directory, environment: ["FLUSH_COUNT": "100000", "FLUSH_TIMEOUT_SEC": "3600"])
        let client = try UDPClient()
        let log = directory.appendingPathComponent("logs/server.log")
        for sequence in 1...50 { client.send(seedEntry(sequence: sequence, level: "INFO"), port: port) }
        client.send(seedEntry(sequence: 51, level: "ERROR", message: "db timeout"), port: port)
        let reply = try #require(client.receive(timeout: 10))
        #expect(reply == "{\"ack\":true,\"sequence\":51,\"status\":\"stored\"}")
        // The ack came after the write: the ERROR is on disk now, the INFO entries sent before it are still buffered.
        let lines = fileLines(log)
        #expect(lines.compactMap(sequenceOf) == [51])
        #expect(try routerd.terminate() == 0)
        // SIGTERM flushed the buffered entries.
        let after = fileLines(log).compactMap(sequenceOf)
        #expect(after.count == 51)
        #expect(Set(after) == Set(1...51))
    }

    @Test func stock_whenLogDirectoryCannotBeWritten_refusesToStartNamingTheOutputAndTheReason() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("router.yaml")
        try Self.stockConfig.write(to: config, atomically: true, encoding: .utf8)
        // A regular file where the log directory should be: ENOTDIR, even for root.
        let blocker = directory.appendingPathComponent("blocker")
        _ = FileManager.default.createFile(atPath: blocker.path, contents: Data("x".utf8))
        let logs = blocker.appendingPathComponent("logs")
        var environment = ["SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0", "DASHBOARD_PORT": "0"]
        environment["LOG_DIR"] = logs.path
        let result = try runRouterd(["-c", config.path], environment: environment)
        #expect(result.status == 1)
        for output in ["errors_now", "server_log", "dead_letters"] {
            #expect(
                result.stderr.contains(
                    "error: outputs.\(output): cannot start: cannot create directory '\(logs.path)': Not a directory"),
                "\(result.stderr)")
        }
        guard Tmpfs.isAvailable else { return }
        // A read-only filesystem, for real.
        let readOnlyDisk = try Tmpfs(under: directory, sizeBytes: 1 << 20, readOnly: true)
        environment["LOG_DIR"] = readOnlyDisk.url.path
        let readOnly = try runRouterd(["-c", config.path], environment: environment)
        #expect(readOnly.status == 1)
        #expect(
            readOnly.stderr.contains(
                "error: outputs.errors_now: cannot start: cannot open '\(readOnlyDisk.url.path)/server.log': "
                    + "Read-only file system"), "\(readOnly.stderr)")
    }

    @Test func stock_invalidInputOfEachKindLandsInDeadLetterWithItsReason() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (routerd, port) = try startStock(directory, environment: ["BUFFER_SIZE": "1024"])
        let client = try UDPClient()
        client.send([0xFF, 0xFE, 0x7B], port: port)
        client.send("{\"level\":", port: port)
        client.send("[1,2,3]", port: port)
        client.send("{\"level\":\"INFO\"}", port: port)
        client.send(
            "{\"timestamp\":\"t\",\"sequence\":\"seven\",\"app\":\"a\",\"level\":\"INFO\",\"message\":\"m\",\"host\":\"h\"}",
            port: port)
        client.send(seedEntry(sequence: 1, level: "INFO", message: String(repeating: "x", count: 2000)), port: port)
        client.send(seedEntry(sequence: 2, level: "INFO"), port: port)
        #expect(try routerd.terminate() == 0)
        let deadLetters = fileLines(directory.appendingPathComponent("logs/dead-letter.log"))
        let reasons = deadLetters.compactMap { line -> String? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                return nil
            }
            return object["reason"] as? String
        }
        #expect(reasons == ["not_utf8", "not_json", "not_object", "missing_field", "wrong_type", "truncated"])
        try #require(deadLetters.count == 6)
        #expect(deadLetters[0].contains("\"entry_base64\":\"//57\""))
        #expect(deadLetters[3].contains("\"detail\":\"missing field 'timestamp'\""))
        #expect(fileLines(directory.appendingPathComponent("logs/server.log")).compactMap(sequenceOf) == [2])
    }

    /// Runs a `file` (ERROR) and a `rotating_file` (the rest) on one path, sends `count` entries (every
    /// `errorEvery`-th an ERROR), stops routerd, and returns the logs folder.
    func runSharedPath(
        in directory: URL, flushCount: Int, maxSize: String, maxArchives: Int, count: Int, errorEvery: Int
    ) throws -> URL {
        let config = """
            inputs:
              udp_in: { type: udp, address: 127.0.0.1, port: 0 }
            filters:
              valid: { type: validate_json, inputs: [udp_in] }
              errors: { type: match_level, inputs: [valid], levels: [ERROR] }
            outputs:
              now: { type: file, inputs: [errors], path: logs/app.log }
              later:
                type: rotating_file
                inputs: [errors.unmatched]
                path: logs/app.log
                flush_count: \(flushCount)
                max_size: \(maxSize)
                max_archives: \(maxArchives)
            """
        let routerd = try RouterdProcess(config: config, directory: directory)
        let port = try routerd.listeningPort(stage: "udp_in")
        let client = try UDPClient()
        client.send(
            (0..<count).map { seedEntry(sequence: $0, level: $0 % errorEvery == 0 ? "ERROR" : "INFO") }, port: port)
        #expect(try routerd.terminate() == 0)
        return directory.appendingPathComponent("logs")
    }

    @Test func rotation_withFileAndRotatingFileOnOnePath_keepsMaxArchivesAndTearsNoLine() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logs = try runSharedPath(
            in: directory, flushCount: 10, maxSize: "20KB", maxArchives: 3, count: 3000, errorEvery: 3)
        let names = try FileManager.default.contentsOfDirectory(atPath: logs.path).sorted()
        #expect(names == ["app.log", "app.log.1", "app.log.2", "app.log.3"])
        for name in names {
            let url = logs.appendingPathComponent(name)
            let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
            #expect(size <= 20_000, "\(name) is \(size) bytes")
            let lines = fileLines(url)
            #expect(!lines.isEmpty && lines.allSatisfy { sequenceOf($0) != nil }, "no torn line in \(name)")
            if name != "app.log" { #expect(size > 20_000 - 400, "\(name) was rotated before it was full") }
        }
    }

    @Test func rotation_whenArchivesKeepEverything_linesAcrossFilesAddUpToWhatWasSent() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logs = try runSharedPath(
            in: directory, flushCount: 7, maxSize: "50KB", maxArchives: 100, count: 3000, errorEvery: 4)
        var sequences: [Int] = []
        let names = try FileManager.default.contentsOfDirectory(atPath: logs.path)
        #expect(names.count > 5, "it rotated")
        for name in names {
            let lines = fileLines(logs.appendingPathComponent(name))
            let parsed = lines.compactMap(sequenceOf)
            #expect(parsed.count == lines.count, "no torn line in \(name)")
            sequences += parsed
        }
        #expect(sequences.count == 3000)
        #expect(Set(sequences) == Set(0..<3000))
    }
}
