import Foundation
import Testing

/// Queue arguments and the broker's flow control (connection.blocked) with a real RabbitMQ node.
@Suite("routerd binary: amqp queue arguments and a blocked broker")
struct AMQPQueueTests {
    @Test func queueArguments_declareAQuorumQueue_andAConflictingDeclareNamesTheArgumentAndBothValues() throws {
        let node = try RabbitMQNode.shared()
        let queue = RabbitMQNode.queueName("quorum")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(
            config: AMQPTests.ingestConfig(
                url: node.url, queue: queue,
                extra: "    queue_arguments: {x-queue-type: quorum, x-max-length: 1000, x-overflow: reject-publish}"),
            directory: directory)
        try routerd.waitForLog("connected")
        let listed = try node.ctl(["-q", "list_queues", "name", "type", "arguments"])
        let line = try #require(listed.split(separator: "\n").first { $0.hasPrefix(queue) }, "\(listed)")
        #expect(line.contains("quorum"), "\(line)")
        #expect(line.contains("x-max-length") && line.contains("1000") && line.contains("reject-publish"), "\(line)")
        try UDPClient().send(AMQPTests.entries(0..<100), port: try routerd.listeningPort(stage: "udp_in"))
        try waitUntil("100 confirmed into the quorum queue") {
            (try AMQPTests.counters(routerd, stage: "to_broker")["confirmed"] as? Int) == 100 ? true : nil
        }
        #expect(try routerd.terminate() == 0)

        // A consumer that declares the same queue with another limit: refused, saying which and both values.
        let store = try RouterdProcess(
            config: """
                inputs:
                  from_broker:
                    type: amqp
                    url: "\(node.url)"
                    queue: \(queue)
                    queue_arguments: {x-queue-type: quorum, x-max-length: 2000, x-overflow: reject-publish}
                    reconnect_backoff_max: 1s
                outputs:
                  out: {type: file, inputs: [from_broker], path: out.jsonl}
                  stats: {type: http_stats, inputs: [from_broker], address: 127.0.0.1, port: 0}
                """, directory: directory)
        let failure = try #require(try store.waitForLog("cannot connect; retrying").first)
        #expect(failure["stage"] as? String == "from_broker")
        #expect(
            failure["error"] as? String
                == "queue '\(queue)' already exists with other arguments: x-max-length is '1000' on the queue, and "
                + "this stage asks for '2000' (queue_arguments); declare it the same way everywhere, or delete the "
                + "queue so that it is declared again", "\(failure)")
        let health = try httpGet(port: try store.listeningPort(stage: "stats"), "/health").body
        #expect(health.contains("inputs.from_broker") && health.contains("x-max-length"), "\(health)")
        #expect(try store.terminate() == 0)
        // A quorum queue's counts reach list_queues a moment later.
        try waitUntil("100 messages in the quorum queue") { try node.depth(queue)?.ready == 100 ? true : nil }
    }

    @Test func blocked_whenTheBrokerRaisesAMemoryAlarm_theOutputStopsPublishingSaysSoAndResumesAfterIt() throws {
        // A node of its own: the alarm blocks every publisher on the node.
        let node = try RabbitMQNode.start()
        defer { node.stopQuietly() }
        let queue = RabbitMQNode.queueName("blocked")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(
            config: AMQPTests.ingestConfig(url: node.url, queue: queue, extra: "    confirm_timeout: 60s"),
            directory: directory)
        try routerd.waitForLog("connected")
        let port = try routerd.listeningPort(stage: "udp_in")
        let client = try UDPClient()
        client.send(AMQPTests.entries(0..<100), port: port)
        try waitUntil("the first 100 confirmed") {
            (try AMQPTests.counters(routerd, stage: "to_broker")["confirmed"] as? Int) == 100 ? true : nil
        }

        // RabbitMQ blocks a connection (and says so) when it publishes during an alarm: the next entries do.
        try node.ctl(["set_vm_memory_high_watermark", "0.0000001"])
        client.send(AMQPTests.entries(100..<200), port: port)
        let blocked = try #require(
            try routerd.waitForLog(
                "the broker blocked publishing; entries wait in the queue until it unblocks", timeout: 30
            ).first)
        #expect(blocked["stage"] as? String == "to_broker")
        #expect((blocked["reason"] as? String ?? "").contains("memory"), "\(blocked)")
        let statsPort = try routerd.listeningPort(stage: "stats")
        let health = try waitUntil("/health to say the broker blocks publishing", timeout: 20) { () -> String? in
            let body = try httpGet(port: statsPort, "/health").body
            return body.contains("blocks publishing") ? body : nil
        }
        #expect(health.contains("degraded") && health.contains("outputs.to_broker"), "\(health)")
        // Held, not published: while blocked, nothing more goes to a broker that reads nothing, and nothing is
        // confirmed.
        client.send(AMQPTests.entries(200..<300), port: port)
        Thread.sleep(forTimeInterval: 1)
        let before = try AMQPTests.counters(routerd, stage: "to_broker")
        Thread.sleep(forTimeInterval: 3)
        let held = try AMQPTests.counters(routerd, stage: "to_broker")
        #expect(held["published"] as? Int == before["published"] as? Int, "\(before) \(held)")
        #expect((held["published"] as? Int ?? 0) <= 200, "the entries sent while blocked wait: \(held)")
        #expect(held["confirmed"] as? Int == 100, "\(held)")

        try node.ctl(["set_vm_memory_high_watermark", "0.4"])
        try routerd.waitForLog("the broker unblocked publishing", timeout: 30)
        try waitUntil("all 300 confirmed after the alarm", timeout: 30) {
            (try AMQPTests.counters(routerd, stage: "to_broker")["confirmed"] as? Int) == 300 ? true : nil
        }
        try waitUntil("/health ok again", timeout: 20) { () -> Bool? in
            try httpGet(port: statsPort, "/health").json()["status"] as? String == "ok" ? true : nil
        }
        let counters = try AMQPTests.counters(routerd, stage: "to_broker")
        #expect(counters["published"] as? Int == 300 && counters["retried"] as? Int == 0, "\(counters)")
        #expect(try routerd.terminate() == 0)
        #expect(try node.depth(queue)?.ready == 300)
    }
}
