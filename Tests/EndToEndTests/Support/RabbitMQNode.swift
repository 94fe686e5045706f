import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A private RabbitMQ node on loopback, driven through scripts/rabbitmq-node.sh (its own directory, ports, epmd).
///
/// ``shared`` is the node `make test` started (ROUTERD_TEST_RABBITMQ_DIR); without it, the first test that needs
/// a broker starts one and it is stopped when the test process exits. Tests that stop or restart the broker use
/// a node of their own (``start()``) so that they never disturb tests running beside them.
final class RabbitMQNode: Sendable {
    let directory: URL
    let url: String
    let ownsDirectory: Bool

    private static let script = TestPaths.packageRoot.appendingPathComponent("scripts/rabbitmq-node.sh").path
    private static let sharedNode = Mutex<Result<RabbitMQNode, any Error>?>(nil)

    private init(directory: URL, url: String, ownsDirectory: Bool) {
        self.directory = directory
        self.url = url
        self.ownsDirectory = ownsDirectory
    }

    /// The node every broker test shares (queues are named per test).
    static func shared() throws -> RabbitMQNode {
        try sharedNode.withLock { node in
            let result =
                node
                ?? Result {
                    if let path = ProcessInfo.processInfo.environment["ROUTERD_TEST_RABBITMQ_DIR"], !path.isEmpty {
                        let directory = URL(fileURLWithPath: path)
                        let url = try run(["url", directory.path]).trimmingCharacters(in: .whitespacesAndNewlines)
                        return RabbitMQNode(directory: directory, url: url, ownsDirectory: false)
                    }
                    let started = try start()
                    atexit {
                        guard let node = try? RabbitMQNode.sharedNode.withLock({ try $0?.get() }) else { return }
                        node.stopQuietly()
                    }
                    return started
                }
            node = result
            return try result.get()
        }
    }

    /// Starts a new node in a temporary directory (about 10 s).
    static func start() throws -> RabbitMQNode {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "routerd-rabbitmq-\(UUID().uuidString.prefix(8))")
        let url = try run(["start", directory.path]).split(separator: "\n").last.map(String.init) ?? ""
        guard url.hasPrefix("amqp://") else { throw TestFailure("rabbitmq-node.sh start printed no url: \(url)") }
        return RabbitMQNode(directory: directory, url: url, ownsDirectory: true)
    }

    /// Starts a three-node cluster (scripts/rabbitmq-cluster.sh: one epmd, one cookie, joined) in a temporary
    /// directory (about a minute); stop it with ``stopCluster(_:)``.
    static func startCluster() throws -> [RabbitMQNode] {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "routerd-rabbitmq-cluster-\(UUID().uuidString.prefix(8))")
        let (status, output) = try Spawn.run("/bin/bash", [clusterScript, "start", directory.path])
        guard status == 0 else { throw TestFailure("rabbitmq-cluster.sh start failed:\n\(output)") }
        let urls = output.split(separator: "\n").map(String.init).filter { $0.hasPrefix("amqp://") }
        guard urls.count == 3 else { throw TestFailure("rabbitmq-cluster.sh printed \(urls)") }
        return urls.enumerated().map { index, url in
            RabbitMQNode(
                directory: directory.appendingPathComponent("node\(index + 1)"), url: url, ownsDirectory: false)
        }
    }

    /// Stops a cluster of ``startCluster()`` and removes its directory, ignoring errors.
    static func stopCluster(_ nodes: [RabbitMQNode]) {
        guard let root = nodes.first?.directory.deletingLastPathComponent() else { return }
        _ = try? Spawn.run("/bin/bash", [clusterScript, "stop", root.path])
        try? FileManager.default.removeItem(at: root)
    }

    private static let clusterScript = TestPaths.packageRoot.appendingPathComponent("scripts/rabbitmq-cluster.sh").path

    /// The url with another password, for the login-refused tests.
    func url(password: String) -> String {
        url.replacingOccurrences(of: ":routerd-test@", with: ":\(password)@")
    }

    /// Stops the node (its data stays).
    func stop() throws { _ = try Self.run(["stop", directory.path]) }

    /// Kills the node's server with SIGKILL (no goodbye to its clients, as when its machine dies) and waits until
    /// it is gone; its data stays, so ``restart()`` brings back what it had stored.
    func kill() throws {
        let pidFile = directory.appendingPathComponent("node.pid")
        let text = try String(contentsOf: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let pid = pid_t(text), pid > 0 else { throw TestFailure("no pid in \(pidFile.path): '\(text)'") }
        guard Glibc.kill(pid, SIGKILL) == 0 else { throw TestFailure("kill -9 \(pid) failed: errno \(errno)") }
        try waitUntil("the killed node's process is gone", timeout: 30) { Glibc.kill(pid, 0) != 0 ? true : nil }
        // A stale pid file would make the next start's `rabbitmqctl wait` watch the dead process.
        try? FileManager.default.removeItem(at: pidFile)
    }

    /// The node's AMQP port.
    var port: Int { Int(url.split(separator: ":").last?.split(separator: "/").first ?? "") ?? 0 }

    /// Starts a stopped node again on the same ports with the same data.
    func restart() throws { _ = try Self.run(["start", directory.path]) }

    /// Stops the node and removes its directory, ignoring errors (for cleanup).
    func stopQuietly() {
        _ = try? Self.run(["stop", directory.path])
        if ownsDirectory { try? FileManager.default.removeItem(at: directory) }
    }

    /// Messages ready plus unacknowledged in `queue`, as `rabbitmqctl list_queues` reports them (nil: no queue).
    /// Runs `rabbitmqctl` on this node and returns what it printed.
    @discardableResult
    func ctl(_ arguments: [String]) throws -> String {
        try Self.run(["ctl", directory.path] + arguments)
    }

    func depth(_ queue: String) throws -> (ready: Int, unacknowledged: Int)? {
        let output = try Self.run(
            ["ctl", directory.path, "-q", "list_queues", "name", "messages_ready", "messages_unacknowledged"])
        for line in output.split(separator: "\n") {
            let fields = line.split(separator: "\t").map(String.init)
            if fields.count == 3, fields[0] == queue, let ready = Int(fields[1]), let unacked = Int(fields[2]) {
                return (ready, unacked)
            }
        }
        return nil
    }

    /// A queue name no other test uses.
    static func queueName(_ label: String) -> String {
        "test-\(label)-\(UUID().uuidString.prefix(8))"
    }

    @discardableResult
    private static func run(_ arguments: [String]) throws -> String {
        // posix_spawn and waitpid (Spawn), output in a file: the broker the script starts lives on.
        let (status, output) = try Spawn.run("/bin/bash", [script] + arguments)
        guard status == 0 else {
            throw TestFailure("rabbitmq-node.sh \(arguments.joined(separator: " ")) failed:\n\(output)")
        }
        return output
    }
}
