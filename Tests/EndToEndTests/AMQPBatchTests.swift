import Foundation
import Testing

/// `batch_per_message` on the amqp output and its splitting on the amqp input, through a real broker.
@Suite("routerd binary: amqp batch_per_message")
struct AMQPBatchTests {
    @Test func amqp_whenEntriesGoAHundredToAMessage_theInputSplitsThemAndTheFileHoldsEachExactlyOnce() throws {
        let node = try RabbitMQNode.shared()
        let queue = RabbitMQNode.queueName("batch")
        let ingestDirectory = try TestPaths.temporaryDirectory()
        let storeDirectory = try TestPaths.temporaryDirectory()
        defer {
            try? FileManager.default.removeItem(at: ingestDirectory)
            try? FileManager.default.removeItem(at: storeDirectory)
        }
        let ingest = try RouterdProcess(
            config: AMQPTests.ingestConfig(url: node.url, queue: queue, extra: "    batch_per_message: 100"),
            directory: ingestDirectory)
        try ingest.waitForLog("connected")
        let store = try RouterdProcess(
            config: AMQPTests.storeConfig(url: node.url, queue: queue), directory: storeDirectory)
        try store.waitForLog("consuming")
        let port = try ingest.listeningPort(stage: "udp_in")

        let total = 20_000
        try UDPClient().send(AMQPTests.entries(0..<total), port: port)
        let output = storeDirectory.appendingPathComponent("out.jsonl")
        try waitUntil("20,000 lines in the store's file", timeout: 60) {
            fileLines(output).count >= total ? true : nil
        }
        try waitUntil("every message acknowledged") {
            let counters = try AMQPTests.counters(store, stage: "from_broker")
            return (counters["acked"] as? Int).map { $0 == counters["received"] as? Int } == true ? true : nil
        }
        let published = try AMQPTests.counters(ingest, stage: "to_broker")
        let consumed = try AMQPTests.counters(store, stage: "from_broker")
        #expect(try ingest.terminate() == 0)
        #expect(try store.terminate() == 0)

        let sequences = fileLines(output).compactMap(sequenceOf)
        #expect(sequences.count == total, "no duplicates, no partial or joined lines")
        #expect(Set(sequences) == Set(0..<total))
        #expect(published["published"] as? Int == total, "published counts entries")
        #expect(published["confirmed"] as? Int == total)
        let messages = consumed["received"] as? Int ?? 0
        #expect(messages >= total / 100 && messages < total / 10, "\(messages) messages for \(total) entries")
        let eventsOut = consumed["events_out"] as? [String: Any]
        #expect(((eventsOut?["port"] as? [String: Int])?["default"]) == total, "\(String(describing: eventsOut))")
        let depth = try node.depth(queue)
        #expect(depth?.ready == 0 && depth?.unacknowledged == 0, "the queue is empty: \(String(describing: depth))")
    }
}
