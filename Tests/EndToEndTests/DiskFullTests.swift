import Foundation
import Testing

/// A file output on a filesystem that fills up (a small tmpfs, for real): what is held is written once there is
/// room, senders hear the truth, and every drop counter equals what is missing from the file.
@Suite("routerd binary: a full disk", .serialized, .enabled(if: Tmpfs.isAvailable))
struct DiskFullTests {
    static func config(queueMaxEvents: Int) -> String {
        """
        inputs:
          udp_in: { type: udp, address: 127.0.0.1, port: 0 }
        filters:
          valid: { type: validate_json, inputs: [udp_in] }
          acks: { type: ack, inputs: [valid], levels: [ERROR] }
        outputs:
          server_log:
            type: file
            inputs: [acks]
            path: "${LOG_DIR}/server.log"
            queue_max_events: \(queueMaxEvents)
            reconnect_backoff_max: 200ms
          stats: { type: http_stats, inputs: [valid], address: 127.0.0.1, port: 0 }
        """
    }

    /// The replies received until `total` sequences are answered (or the timeout): sequence -> acknowledged.
    static func replies(_ client: UDPClient, total: Int, timeout: Double) -> [Int: Bool] {
        var answers: [Int: Bool] = [:]
        let deadline = Date().addingTimeInterval(timeout)
        while answers.count < total && Date() < deadline {
            guard let reply = client.receive(timeout: 0.2),
                let object = try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any],
                let sequence = object["sequence"] as? Int
            else { continue }
            #expect(answers[sequence] == nil, "two replies for \(sequence)")
            answers[sequence] = object["ack"] as? Bool == true
        }
        return answers
    }

    static func counters(_ routerd: RouterdProcess, stage: String) throws -> [String: Any] {
        let port = try routerd.listeningPort(stage: "stats")
        let stages = try httpGet(port: port, "/stats").json()["stages"] as? [[String: Any]] ?? []
        return stages.first { $0["name"] as? String == stage }?["counters"] as? [String: Any] ?? [:]
    }

    @Test func diskFull_heldEntriesAreWrittenOnceThereIsRoom_andAcknowledgedOnlyThen() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let disk = try Tmpfs(under: directory, sizeBytes: 1 << 20)
        let routerd = try RouterdProcess(
            config: Self.config(queueMaxEvents: 100_000), directory: directory,
            environment: ["LOG_DIR": disk.url.path])
        let port = try routerd.listeningPort(stage: "udp_in")
        let filler = try disk.fill()
        let client = try UDPClient()
        for sequence in 1...300 {
            client.send(seedEntry(sequence: sequence, level: "ERROR", message: "disk full \(sequence)"), port: port)
            usleep(1_000)
        }
        // Held, not refused: no sender hears anything while the disk is full.
        #expect(Self.replies(client, total: 1, timeout: 1.5).isEmpty)
        let health = try httpGet(port: try routerd.listeningPort(stage: "stats"), "/health").json()
        #expect(health["status"] as? String == "degraded")
        try FileManager.default.removeItem(at: filler)

        let answers = Self.replies(client, total: 300, timeout: 20)
        #expect(answers.count == 300)
        #expect(answers.values.allSatisfy { $0 }, "every held entry is acknowledged once written")
        #expect(try routerd.terminate() == 0)
        let lines = fileLines(disk.url.appendingPathComponent("server.log"))
        #expect(lines.compactMap(sequenceOf).sorted() == Array(1...300), "each entry once, no torn line")
        #expect(lines.count == 300)
    }

    @Test func diskFull_pastTheHoldLimit_dropsAreNackedCountedAndExactlyWhatIsMissing() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let disk = try Tmpfs(under: directory, sizeBytes: 1 << 20)
        let routerd = try RouterdProcess(
            config: Self.config(queueMaxEvents: 50), directory: directory, environment: ["LOG_DIR": disk.url.path])
        let port = try routerd.listeningPort(stage: "udp_in")
        // About 20 KB of room: the disk fills in the middle of a write, which must leave no partial line and
        // count nothing twice.
        let filler = try disk.fill(leaving: 20_000)
        let client = try UDPClient()
        let total = 600
        client.send(
            (1...total).map { seedEntry(sequence: $0, level: "ERROR", message: "disk full \($0)") }, port: port,
            burst: 100)
        var answers = Self.replies(client, total: total, timeout: 3)
        #expect(answers.values.contains(true), "what fitted was written and acknowledged")
        #expect(answers.values.contains(false), "what is past the hold limit is refused at once")
        try FileManager.default.removeItem(at: filler)
        answers.merge(Self.replies(client, total: total - answers.count, timeout: 20)) { $1 }
        #expect(answers.count == total, "every sender hears once")
        let counters = try Self.counters(routerd, stage: "server_log")
        #expect(try routerd.terminate() == 0)

        let written = Set(fileLines(disk.url.appendingPathComponent("server.log")).compactMap(sequenceOf))
        let acknowledged = Set(answers.filter { $0.value }.keys)
        let refused = Set(answers.filter { !$0.value }.keys)
        #expect(written == acknowledged, "acknowledged exactly what is in the file")
        #expect(refused == Set(1...total).subtracting(written), "refused exactly what is missing")
        let dropped = (counters["events_dropped"] as? [String: [String: Int]])?["reason"]?["held_full"]
        #expect(dropped == refused.count, "held_full counts exactly what is missing")
        let out = (counters["events_out"] as? [String: [String: Int]])?["port"]?["default"]
        #expect(out == written.count)
        #expect(!written.isEmpty && !refused.isEmpty)
    }
}
