import Foundation
import Testing

/// One of the seed's Python programs (Tests/SeedPrograms), run with its real libraries; its log goes to a file.
final class SeedProgram {
    let process = Process()
    let logURL: URL

    init(_ script: String, environment: [String: String], directory: URL) throws {
        logURL = directory.appendingPathComponent("\(script).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", TestPaths.packageRoot.appendingPathComponent("Tests/SeedPrograms/\(script)").path,
        ]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let log = try FileHandle(forWritingTo: logURL)
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Waits until the program logs `text` (its JSON log lines), failing with the log when it exits first.
    func waitForLog(_ text: String, timeout: Double = 30) throws {
        try waitUntil("\(logURL.lastPathComponent) to log \(text)", timeout: timeout) { () -> Bool? in
            if log.contains(text) { return true }
            if !process.isRunning { throw TestFailure("\(logURL.lastPathComponent) exited:\n\(log)") }
            return nil
        }
    }

    func waitForExit(timeout: Double = 60) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { throw TestFailure("\(logURL.lastPathComponent) still runs:\n\(log)") }
        return process.terminationStatus
    }

    deinit {
        // SIGKILL: the seed's programs have no shutdown of their own, and the test runner's ignored SIGTERM is
        // inherited by its children.
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
    }
}

/// The data-diode seed's own programs swapped in and out of routerd's tiers, one at a time, with nothing else
/// changed: the seed's client into routerd's ingest, routerd's ingest into the seed's consumer, the seed's receiver
/// into routerd's store, and routerd's store into the table the seed's consumer made. Real RabbitMQ, PostgreSQL,
/// PyJWT, pika and psycopg2.
@Suite("routerd binary: the seed's own programs in place of each tier", .serialized)
struct SeedProgramsTests {
    static let secret = "seed-programs-secret-of-at-least-32-bytes"

    /// The seed consumer's settings for a `postgres://user:password@host:port/database` URL.
    static func postgresEnvironment(_ url: String) throws -> [String: String] {
        let parsed = try #require(URLComponents(string: url))
        return [
            "POSTGRES_DB": String(parsed.path.dropFirst()), "POSTGRES_USER": parsed.user ?? "",
            "POSTGRES_PASSWORD": parsed.password ?? "", "POSTGRES_HOST": parsed.host ?? "",
            "POSTGRES_PORT": "\(parsed.port ?? 5432)",
        ]
    }

    static func seedClient(port: UInt16, count: Int, directory: URL) throws -> SeedProgram {
        try SeedProgram(
            "client.py",
            environment: [
                "SERVER_HOST": "127.0.0.1", "PORT": "\(port)", "INTERVAL": "0.005", "COUNT": "\(count)",
                "SECRET_KEY": secret, "ALGORITHM": "HS256",
            ], directory: directory)
    }

    static func seedText(_ counter: Int) -> String { "This is being sent via the UDP protocol. #\(counter)" }

    @Test func seedClient_intoRoutersIngest_intoTheSeedsConsumer_storesEveryMessageInTheSeedsTable() throws {
        let broker = try RabbitMQNode.shared()
        let database = try TestPostgres.freshDatabase()
        let queue = RabbitMQNode.queueName("seed-consumer")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let ingest = try RouterdProcess(
            config: try DiodeTests.example("diode-ingest.yaml"), directory: directory,
            environment: [
                "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0", "SECRET_KEY": Self.secret, "AMQP_URL": broker.url,
                "AMQP_QUEUE": queue, "LOG_DIR": directory.appendingPathComponent("logs").path,
                "INGEST_DASHBOARD_PORT": "0",
            ])
        try ingest.waitForLog("connected")
        let port = try ingest.listeningPort(stage: "udp_in")
        var consumerEnvironment = try Self.postgresEnvironment(database)
        consumerEnvironment["AMQP_URL"] = broker.url
        consumerEnvironment["QUEUE_NAME"] = queue
        let consumer = try SeedProgram("consumer.py", environment: consumerEnvironment, directory: directory)
        try consumer.waitForLog("consumer_started")

        let client = try Self.seedClient(port: port, count: 200, directory: directory)
        #expect(try client.waitForExit() == 0, "\(client.log)")
        // And a forged one, which the ingest tier refuses and the consumer never sees.
        let forged = try runRouterd(
            ["send", "--format", "diode", "--port", "\(port)", "--count", "3", "--tamper", "signature"],
            environment: ["SECRET_KEY": Self.secret])
        #expect(forged.status == 0)

        try waitUntil("200 rows in the seed's table", timeout: 60) {
            (try? TestPostgres.count(database, "SELECT count(*) FROM udp_messages")) == 200 ? true : nil
        }
        try waitUntil("the queue drained") {
            let depth = try broker.depth(queue)
            return depth?.ready == 0 && depth?.unacknowledged == 0 ? true : nil
        }
        // The seed's own queries work on what it stored: integer client ids, every text once.
        #expect(try TestPostgres.count(database, "SELECT count(*) FROM udp_messages WHERE client_id = 1") == 200)
        let texts = try TestPostgres.rows(database, "SELECT text FROM udp_messages").compactMap(\.first)
        #expect(Set(texts) == Set((1...200).map(Self.seedText)))
        #expect(!consumer.log.contains("db_insert_error"), "\(consumer.log)")
        #expect(try ingest.terminate() == 0)
        let dead = fileLines(directory.appendingPathComponent("logs/diode-rejected.log"))
        #expect(dead.count == 3)
    }

    @Test func seedReceiver_intoRoutersStore_storesEveryMessageInTheTableTheSeedsConsumerMade() throws {
        let broker = try RabbitMQNode.shared()
        let database = try TestPostgres.freshDatabase()
        let queue = RabbitMQNode.queueName("seed-receiver")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // The table, made by the seed consumer's own create_table().
        var consumerEnvironment = try Self.postgresEnvironment(database)
        consumerEnvironment["AMQP_URL"] = broker.url
        let made = Process()
        made.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        made.currentDirectoryURL = TestPaths.packageRoot.appendingPathComponent("Tests/SeedPrograms")
        made.arguments = [
            "python3", "-c", "import consumer; consumer.conn = consumer.connect_postgres(); consumer.create_table()",
        ]
        made.environment = ProcessInfo.processInfo.environment.merging(consumerEnvironment) { $1 }
        try made.run()
        made.waitUntilExit()
        #expect(made.terminationStatus == 0)
        #expect(
            try TestPostgres.rows(
                database,
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'udp_messages' "
                    + "ORDER BY ordinal_position"
            ).map { $0.joined(separator: " ") } == [
                "id integer", "client_id integer", "text text", "token text", "checksum text",
                "received_at timestamp without time zone",
            ])

        let store = try RouterdProcess(
            config: try DiodeTests.example("diode-store.yaml"), directory: directory,
            environment: [
                "AMQP_URL": broker.url, "AMQP_QUEUE": queue, "DATABASE_URL": database,
                "LOG_DIR": directory.appendingPathComponent("logs").path, "STORE_DASHBOARD_PORT": "0",
            ])
        try store.waitForLog("consuming")
        let udpPort = try freeUDPPort()
        let receiver = try SeedProgram(
            "server.py",
            environment: [
                "SERVER_HOST": "127.0.0.1", "PORT": "\(udpPort)", "AMQP_URL": broker.url, "QUEUE_NAME": queue,
                "SECRET_KEY": Self.secret, "ALGORITHM": "HS256",
            ], directory: directory)
        try receiver.waitForLog("rabbitmq_connected")
        usleep(200_000)
        let client = try Self.seedClient(port: udpPort, count: 150, directory: directory)
        #expect(try client.waitForExit() == 0, "\(client.log)")

        try waitUntil("150 rows", timeout: 60) {
            (try? TestPostgres.count(database, "SELECT count(*) FROM udp_messages")) == 150 ? true : nil
        }
        #expect(try store.terminate() == 0)
        #expect(
            try TestPostgres.count(
                database,
                "SELECT count(*) FROM udp_messages WHERE client_id = 1 AND length(checksum) = 32 "
                    + "AND token LIKE 'eyJ%' AND received_at IS NOT NULL") == 150)
        let texts = try TestPostgres.rows(database, "SELECT text FROM udp_messages").compactMap(\.first)
        #expect(Set(texts) == Set((1...150).map(Self.seedText)))
        #expect(receiver.log.components(separatedBy: "rabbitmq_published").count - 1 == 150)
    }
}
