import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Two real single RabbitMQ nodes behind one `urls` list: the node the output is connected to is killed under load.
@Suite("routerd binary: amqp failover over several brokers")
struct AMQPFailoverTests {
    /// The `/health` notes of the router whose dashboard stage is `stats`.
    static func healthNotes(_ routerd: RouterdProcess) throws -> [String] {
        let port = try routerd.listeningPort(stage: "stats")
        return try httpGet(port: port, "/health").json()["notes"] as? [String] ?? []
    }

    static func sum(_ counters: [[String: Any]], _ name: String) -> Int {
        counters.reduce(0) { $0 + ($1[name] as? Int ?? 0) }
    }

    @Test func amqp_whenTheConnectedBrokerIsKilledUnderLoad_theOutputFailsOverAndEveryEntryArrives() throws {
        let nodes = [try RabbitMQNode.start(), try RabbitMQNode.start()]
        defer { for node in nodes { node.stopQuietly() } }
        let queue = RabbitMQNode.queueName("failover")
        let ingestDirectory = try TestPaths.temporaryDirectory()
        let storeDirectory = try TestPaths.temporaryDirectory()
        defer {
            try? FileManager.default.removeItem(at: ingestDirectory)
            try? FileManager.default.removeItem(at: storeDirectory)
        }
        let ingest = try RouterdProcess(
            config: """
                inputs:
                  udp_in: {type: udp, address: 127.0.0.1, port: 0, receive_buffer_bytes: 8MiB}
                outputs:
                  to_broker:
                    type: amqp
                    inputs: [udp_in]
                    urls: ["\(nodes[0].url)", "\(nodes[1].url)"]
                    queue: \(queue)
                    queue_max_events: 200000
                    reconnect_backoff_max: 1s
                    heartbeat: 2s
                  stats: {type: http_stats, inputs: [udp_in], port: 0, when_full: drop_newest}
                """, directory: ingestDirectory)
        // One input per node: two single nodes share nothing, so what one stored is read from that one.
        let store = try RouterdProcess(
            config: """
                inputs:
                  from_a: {type: amqp, url: "\(nodes[0].url)", queue: \(queue), reconnect_backoff_max: 1s}
                  from_b: {type: amqp, url: ["\(nodes[1].url)"], queue: \(queue), reconnect_backoff_max: 1s}
                outputs:
                  out: {type: file, inputs: [from_a, from_b], path: out.jsonl}
                  stats: {type: http_stats, inputs: [from_a, from_b], port: 0, when_full: drop_newest}
                """, directory: storeDirectory)
        try store.waitForLog("consuming", count: 2)
        let connected = try ingest.waitForLog("connected")
        let url = try #require(connected.first?["url"] as? String)
        let killed = try #require(nodes.firstIndex { url.contains(":\($0.port)/") }, "connected to \(url)")
        let survivor = 1 - killed
        let notes = try Self.healthNotes(ingest)
        #expect(
            notes.contains {
                $0.hasPrefix("outputs.to_broker: connected to ") && $0.contains(":\(nodes[killed].port)/")
            },
            "\(notes)")

        let port = try ingest.listeningPort(stage: "udp_in")
        let client = try UDPClient()
        let output = storeDirectory.appendingPathComponent("out.jsonl")
        client.send(AMQPTests.entries(0..<10_000), port: port, burst: 200)
        // Under load: published, some confirmed, some not, when the node dies without a word.
        try nodes[killed].kill()
        client.send(AMQPTests.entries(10_000..<20_000), port: port, burst: 200)
        let failover = try ingest.waitForLog("failed over to another broker", timeout: 60)
        #expect(failover.first?["from"] as? String == "\(url)")
        #expect((failover.first?["url"] as? String)?.contains(":\(nodes[survivor].port)/") == true)
        let after = try Self.healthNotes(ingest)
        #expect(
            after.contains {
                $0.contains("connected to ") && $0.contains(":\(nodes[survivor].port)/")
                    && $0.contains("failovers: 1, last from \(url)")
            }, "\(after)")
        client.send(AMQPTests.entries(20_000..<30_000), port: port, burst: 200)
        // What the killed node had stored is on its disk: it arrives once the node is back.
        try nodes[killed].restart()

        try waitUntil("all 30,000 sequences in the store's file", timeout: 120) {
            Set(fileLines(output).compactMap(sequenceOf)).count == 30_000 ? true : nil
        }
        for node in nodes {
            try waitUntil("the queue drained on \(node.url)", timeout: 60) {
                let depth = try node.depth(queue)
                return depth?.ready == 0 && depth?.unacknowledged == 0 ? true : nil
            }
        }
        let published = try AMQPTests.counters(ingest, stage: "to_broker")
        let consumed = try ["from_a", "from_b"].map { try AMQPTests.counters(store, stage: $0) }
        #expect(try ingest.terminate() == 0)
        #expect(try store.terminate() == 0)

        let sequences = fileLines(output).compactMap(sequenceOf)
        #expect(Set(sequences) == Set(0..<30_000), "nothing lost")
        let copies = sequences.count - 30_000
        let retried = published["retried"] as? Int ?? 0
        let redelivered = Self.sum(consumed, "redelivered")
        #expect(copies <= retried + redelivered, "copies \(copies), retried \(retried), redelivered \(redelivered)")
        #expect(published["failovers"] as? Int == 1)
        #expect(published["confirmed"] as? Int ?? 0 >= 30_000)
        let dropped = published["events_dropped"] as? [String: Any] ?? [:]
        #expect(dropped.values.allSatisfy { ($0 as? [String: Int])?.values.allSatisfy { $0 == 0 } ?? true })
    }

    /// Entries of the cluster test: ROUTERD_CLUSTER_TEST_ENTRIES, 30,000 unless set (CI); the full run is
    /// ROUTERD_CLUSTER_TEST_ENTRIES=200000.
    static var clusterEntries: Int {
        Int(ProcessInfo.processInfo.environment["ROUTERD_CLUSTER_TEST_ENTRIES"] ?? "") ?? 30_000
    }

    @Test func amqp_whenTheConnectedNodeOfAClusterIsKilledAndRestarted_everyEntryArrivesThroughAQuorumQueue() throws {
        let nodes = try RabbitMQNode.startCluster()
        defer { RabbitMQNode.stopCluster(nodes) }
        let total = Self.clusterEntries
        let queue = RabbitMQNode.queueName("cluster")
        let urls = nodes.map { "\"\($0.url)\"" }.joined(separator: ", ")
        let ingestDirectory = try TestPaths.temporaryDirectory()
        let storeDirectory = try TestPaths.temporaryDirectory()
        defer {
            try? FileManager.default.removeItem(at: ingestDirectory)
            try? FileManager.default.removeItem(at: storeDirectory)
        }
        let arguments = "queue_arguments: {x-queue-type: quorum}"
        let ingest = try RouterdProcess(
            config: """
                inputs:
                  udp_in: {type: udp, address: 127.0.0.1, port: 0, receive_buffer_bytes: 16MiB}
                outputs:
                  to_broker:
                    type: amqp
                    inputs: [udp_in]
                    urls: [\(urls)]
                    queue: \(queue)
                    \(arguments)
                    queue_max_events: 400000
                    reconnect_backoff_max: 1s
                    heartbeat: 2s
                  stats: {type: http_stats, inputs: [udp_in], port: 0, when_full: drop_newest}
                """, directory: ingestDirectory)
        let connected = try ingest.waitForLog("connected", timeout: 60)
        let url = try #require(connected.first?["url"] as? String)
        let killed = try #require(nodes.firstIndex { url.contains(":\($0.port)/") }, "connected to \(url)")
        let store = try RouterdProcess(
            config: """
                inputs:
                  from_broker: {type: amqp, urls: [\(urls)], queue: \(queue), \(arguments), reconnect_backoff_max: 1s}
                outputs:
                  out: {type: file, inputs: [from_broker], path: out.jsonl}
                  stats: {type: http_stats, inputs: [from_broker], port: 0, when_full: drop_newest}
                """, directory: storeDirectory)
        try store.waitForLog("consuming", timeout: 60)
        let port = try ingest.listeningPort(stage: "udp_in")
        let client = try UDPClient()
        let output = storeDirectory.appendingPathComponent("out.jsonl")
        let third = total / 3
        client.send(AMQPTests.entries(0..<third), port: port, burst: 200)
        try nodes[killed].kill()
        client.send(AMQPTests.entries(third..<2 * third), port: port, burst: 200)
        let failover = try ingest.waitForLog("failed over to another broker", timeout: 60)
        #expect(failover.first?["from"] as? String == url)
        let notes = try Self.healthNotes(ingest)
        #expect(notes.contains { $0.contains("failovers: 1, last from \(url)") }, "\(notes)")
        try nodes[killed].restart()
        client.send(AMQPTests.entries(2 * third..<total), port: port, burst: 200)

        try waitUntil("all \(total) sequences in the store's file", timeout: 240) {
            Set(fileLines(output).compactMap(sequenceOf)).count == total ? true : nil
        }
        let published = try AMQPTests.counters(ingest, stage: "to_broker")
        let consumed = try AMQPTests.counters(store, stage: "from_broker")
        #expect(try ingest.terminate() == 0)
        #expect(try store.terminate() == 0)
        let sequences = fileLines(output).compactMap(sequenceOf)
        #expect(Set(sequences) == Set(0..<total), "nothing lost")
        let copies = sequences.count - total
        let retried = published["retried"] as? Int ?? 0
        let redelivered = consumed["redelivered"] as? Int ?? 0
        #expect(copies <= retried + redelivered, "copies \(copies), retried \(retried), redelivered \(redelivered)")
        #expect(published["failovers"] as? Int ?? 0 >= 1)
    }
}
