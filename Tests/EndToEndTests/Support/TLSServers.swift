import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A RabbitMQ node and a PostgreSQL server that speak TLS with certificates made for the tests by
/// scripts/test-certs.sh (openssl): the test CA, a server certificate for localhost and 127.0.0.1, and the broken
/// ones (another CA's, another name's, an expired one). Both servers require a client certificate from the test CA
/// on TLS connections. Started once, by the first TLS test, and stopped when the test process exits.
final class TLSServers: Sendable {
    /// The certificate folder (ca.pem, client.pem, ... as the script lists them).
    let certificates: URL
    let rabbitmqDirectory: URL
    let postgresDirectory: URL
    /// `amqps://` on the node's TLS port; `amqp://` on its plain one.
    let amqpsURL: String
    let amqpURL: String
    /// The PostgreSQL server's URL (no sslmode: plain) for psql and for making databases.
    let postgresURL: String

    private static let shared = Mutex<Result<TLSServers, any Error>?>(nil)

    private init(certificates: URL, rabbitmq: URL, postgres: URL, amqps: String, amqp: String, postgresURL: String) {
        self.certificates = certificates
        rabbitmqDirectory = rabbitmq
        postgresDirectory = postgres
        amqpsURL = amqps
        amqpURL = amqp
        self.postgresURL = postgresURL
    }

    /// The servers (started on first use; about 15 s).
    static func get() throws -> TLSServers {
        try shared.withLock { servers in
            let result =
                servers
                ?? Result {
                    let root = URL(fileURLWithPath: "/tmp").appendingPathComponent(
                        "routerd-tls-\(UUID().uuidString.prefix(8))")
                    let certificates = root.appendingPathComponent("certs")
                    try script("test-certs.sh", [certificates.path])
                    // The postgres user (the server's, when the tests run as root) reads them too.
                    chmod(root.path, 0o755)
                    chmod(certificates.path, 0o755)
                    let rabbitmq = root.appendingPathComponent("rabbitmq")
                    let postgres = root.appendingPathComponent("postgres")
                    let amqp = try script(
                        "rabbitmq-node.sh", ["start", rabbitmq.path],
                        environment: ["RABBITMQ_TLS_CERTS": certificates.path])
                    let amqps = try script("rabbitmq-node.sh", ["tls-url", rabbitmq.path])
                    let postgresURL = try script(
                        "postgres-node.sh", ["start", postgres.path],
                        environment: ["POSTGRES_TLS_CERTS": certificates.path])
                    atexit {
                        guard let servers = try? TLSServers.shared.withLock({ try $0?.get() }) else { return }
                        _ = try? TLSServers.script("rabbitmq-node.sh", ["stop", servers.rabbitmqDirectory.path])
                        _ = try? TLSServers.script("postgres-node.sh", ["stop", servers.postgresDirectory.path])
                        try? FileManager.default.removeItem(at: servers.rabbitmqDirectory.deletingLastPathComponent())
                    }
                    return TLSServers(
                        certificates: certificates, rabbitmq: rabbitmq, postgres: postgres, amqps: amqps, amqp: amqp,
                        postgresURL: postgresURL)
                }
            servers = result
            return try result.get()
        }
    }

    /// A file of the certificate folder (`ca.pem`, `client.key`, ...).
    func file(_ name: String) -> String { certificates.appendingPathComponent(name).path }

    /// Makes the broker serve certificate `name` (`server`, `expired`, `wrong-name`) from its next handshake on.
    func rabbitmqServes(_ name: String) throws {
        try Self.script("rabbitmq-node.sh", ["tls-cert", rabbitmqDirectory.path, name])
    }

    /// Makes PostgreSQL serve certificate `name` from its next connection on.
    func postgresServes(_ name: String) throws {
        try Self.script("postgres-node.sh", ["tls-cert", postgresDirectory.path, name])
    }

    /// Runs a script of scripts/ and returns the last line it printed.
    @discardableResult
    private static func script(_ name: String, _ arguments: [String], environment: [String: String] = [:]) throws
        -> String
    {
        let path = TestPaths.packageRoot.appendingPathComponent("scripts/\(name)").path
        let assignments = environment.map { "\($0.key)=\($0.value)" }
        let (status, output) = try Spawn.run("/usr/bin/env", assignments + ["/bin/bash", path] + arguments)
        guard status == 0 else {
            throw TestFailure("\(name) \(arguments.joined(separator: " ")) failed (\(status)):\n\(output)")
        }
        return output.split(separator: "\n").last.map(String.init) ?? ""
    }
}
