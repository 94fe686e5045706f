import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The data-diode pipeline from the examples, run as the README runs it: examples/diode-ingest.yaml (one-way udp ->
/// verify -> amqp) and examples/diode-store.yaml (amqp -> postgres), with a real RabbitMQ and a real PostgreSQL.
@Suite("routerd binary: the two-tier data-diode pipeline")
struct DiodeTests {
    static let secret = "diode-end-to-end-secret-of-32-bytes-or-more"

    static func example(_ name: String) throws -> String {
        try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("examples/\(name)"), encoding: .utf8)
    }

    struct Tiers {
        let ingest: RouterdProcess
        let store: RouterdProcess
        let port: UInt16
        let directory: URL
    }

    static func start(broker: RabbitMQNode, queue: String, database: String) throws -> Tiers {
        let directory = try TestPaths.temporaryDirectory()
        let ingestDirectory = directory.appendingPathComponent("ingest")
        let storeDirectory = directory.appendingPathComponent("store")
        for folder in [ingestDirectory, storeDirectory] {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }
        let ingest = try RouterdProcess(
            config: try example("diode-ingest.yaml"), directory: ingestDirectory,
            environment: [
                "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0", "SECRET_KEY": secret, "AMQP_URL": broker.url,
                "AMQP_QUEUE": queue, "LOG_DIR": ingestDirectory.appendingPathComponent("logs").path,
                "INGEST_DASHBOARD_PORT": "0", "RCVBUF_SIZE": "67108864",
            ])
        let store = try RouterdProcess(
            config: try example("diode-store.yaml"), directory: storeDirectory,
            environment: [
                "AMQP_URL": broker.url, "AMQP_QUEUE": queue, "DATABASE_URL": database,
                "LOG_DIR": storeDirectory.appendingPathComponent("logs").path, "STORE_DASHBOARD_PORT": "0",
            ])
        try ingest.waitForLog("connected")
        try store.waitForLog("consuming")
        return Tiers(
            ingest: ingest, store: store, port: try ingest.listeningPort(stage: "udp_in"), directory: directory)
    }

    /// `routerd send --format diode` to the ingest tier: the seed client's messages, texts numbered from 1.
    static func send(_ port: UInt16, count: Int, clientID: Int, tamper: String? = nil) throws {
        var arguments = [
            "send", "--format", "diode", "--port", "\(port)", "--count", "\(count)", "--client-id", "\(clientID)",
        ]
        if let tamper { arguments += ["--tamper", tamper] }
        let result = try runRouterd(arguments, environment: ["SECRET_KEY": secret])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
    }

    static func counters(_ routerd: RouterdProcess, stage: String) throws -> [String: Any] {
        let port = try routerd.listeningPort(stage: "dashboard")
        let stages = try httpGet(port: port, "/stats").json()["stages"] as? [[String: Any]] ?? []
        return stages.first { $0["name"] as? String == stage }?["counters"] as? [String: Any] ?? [:]
    }

    @Test func diode_tenThousandSignedMessagesThroughBothTiers_everyRowStoredOnceAndNoTamperedOne() throws {
        let broker = try RabbitMQNode.shared()
        let database = try TestPostgres.freshDatabase()
        let queue = RabbitMQNode.queueName("diode")
        let tiers = try Self.start(broker: broker, queue: queue, database: database)
        defer { try? FileManager.default.removeItem(at: tiers.directory) }

        // The source never hears back: an entry the stock config would acknowledge gets no answer here.
        let listener = try UDPClient()
        listener.send(seedEntry(sequence: 1, level: "ERROR"), port: tiers.port)
        try Self.send(tiers.port, count: 10_000, clientID: 1)
        try Self.send(tiers.port, count: 5, clientID: 2, tamper: "signature")
        try Self.send(tiers.port, count: 4, clientID: 3, tamper: "checksum")
        try Self.send(tiers.port, count: 3, clientID: 4, tamper: "expired")

        try waitUntil("10,000 rows in udp_messages", timeout: 120) {
            (try? TestPostgres.count(database, "SELECT count(*) FROM udp_messages")) == 10_000 ? true : nil
        }
        #expect(listener.receive(timeout: 1) == nil, "the ingest tier sent a datagram back")
        let udp = try Self.counters(tiers.ingest, stage: "udp_in")
        #expect(udp["replies_sent"] as? Int == 0)
        #expect(udp["kernel_drops"] as? Int == 0)
        let rejected = try Self.counters(tiers.ingest, stage: "verified")["rejected"] as? [String: [String: Int]]
        #expect(rejected?["reason"]?["bad_signature"] == 5)
        #expect(rejected?["reason"]?["bad_checksum"] == 4)
        #expect(rejected?["reason"]?["expired"] == 3)
        #expect(rejected?["reason"]?["missing_token"] == 1, "the seed-format probe carries no token")
        try waitUntil("the queue drained") {
            let depth = try broker.depth(queue)
            return depth?.ready == 0 && depth?.unacknowledged == 0 ? true : nil
        }
        #expect(try tiers.ingest.terminate() == 0)
        #expect(try tiers.store.terminate() == 0)

        #expect(try TestPostgres.count(database, "SELECT count(*) FROM udp_messages") == 10_000)
        #expect(try TestPostgres.count(database, "SELECT count(DISTINCT text) FROM udp_messages") == 10_000)
        #expect(
            try TestPostgres.count(database, "SELECT count(*) FROM udp_messages WHERE client_id::text <> '1'") == 0,
            "no tampered message is stored")
        // Every column of the seed's table (the one the store creates) holds what the message held.
        #expect(
            try TestPostgres.count(
                database,
                """
                SELECT count(*) FROM udp_messages WHERE client_id = 1
                  AND text LIKE 'This is being sent via the UDP protocol. #%' AND token LIKE 'eyJ%'
                  AND length(checksum) = 32 AND received_at IS NOT NULL
                """) == 10_000)
        let deadLetters = fileLines(tiers.directory.appendingPathComponent("ingest/logs/diode-rejected.log"))
        #expect(deadLetters.count == 13)
    }

    @Test func diode_whenPostgreSQLStopsMidStream_messagesWaitInRabbitMQAndAreStoredWhenItIsBack() throws {
        let broker = try RabbitMQNode.shared()
        let postgres = try PrivatePostgres()
        let queue = RabbitMQNode.queueName("diode-wait")
        let tiers = try Self.start(broker: broker, queue: queue, database: postgres.url)
        defer { try? FileManager.default.removeItem(at: tiers.directory) }

        try Self.send(tiers.port, count: 2_000, clientID: 1)
        try waitUntil("2,000 rows", timeout: 60) {
            (try? TestPostgres.count(postgres.url, "SELECT count(*) FROM udp_messages")) == 2_000 ? true : nil
        }
        try postgres.stop()
        try Self.send(tiers.port, count: 3_000, clientID: 2)
        try waitUntil("3,000 messages held in RabbitMQ (rabbitmqctl)", timeout: 60) {
            let depth = try broker.depth(queue)
            return depth.map { $0.ready + $0.unacknowledged } == 3_000 ? true : nil
        }
        try waitUntil("the store tier degraded") {
            try httpGet(port: try tiers.store.listeningPort(stage: "dashboard"), "/health").body.contains("degraded")
                ? true : nil
        }
        try postgres.start()
        try waitUntil("5,000 rows", timeout: 90) {
            (try? TestPostgres.count(postgres.url, "SELECT count(*) FROM udp_messages")) == 5_000 ? true : nil
        }
        try waitUntil("the queue drained") {
            let depth = try broker.depth(queue)
            return depth?.ready == 0 && depth?.unacknowledged == 0 ? true : nil
        }
        #expect(try tiers.ingest.terminate() == 0)
        #expect(try tiers.store.terminate() == 0)
        #expect(
            try TestPostgres.count(postgres.url, "SELECT count(DISTINCT (client_id, text)) FROM udp_messages") == 5_000)
        #expect(
            try TestPostgres.count(postgres.url, "SELECT count(*) FROM udp_messages WHERE client_id::text = '2'")
                == 3_000)
    }
}
