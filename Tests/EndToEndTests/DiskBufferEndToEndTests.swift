import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Disk buffers with the real binary and real faults: routerd killed with SIGKILL in the middle of a stream while
/// its destination is down (a full filesystem, a stopped RabbitMQ, a stopped PostgreSQL), restarted, and every
/// entry it had acknowledged counted at the destination; buffer files damaged by hand; the buffer's own disk full.
@Suite("routerd binary: disk buffers", .serialized)
struct DiskBufferEndToEndTests {
    /// udp -> validate -> ack (every entry is ERROR, so every accepted entry is acknowledged) -> `output`.
    static func config(output: String, bufferPath: String, extraBuffer: String = "", maxSize: String = "64MiB")
        -> String
    {
        """
        inputs:
          udp_in: { type: udp, address: 127.0.0.1, port: 0, receive_buffer_bytes: 32MiB }
        filters:
          valid: { type: validate_json, inputs: [udp_in] }
          acks: { type: ack, inputs: [valid], levels: [ERROR] }
        outputs:
          out:
        \(output.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
            inputs: [acks]
            reconnect_backoff_max: 200ms
            buffer:
              type: disk
              path: "\(bufferPath)"
              max_size: \(maxSize)
              sync: 50ms
        \(extraBuffer)
          stats: { type: http_stats, inputs: [valid], address: 127.0.0.1, port: 0 }
        """
    }

    /// How many entries the buffer holds once it stops growing (the same count twice, half a second apart).
    static func heldWhenSteady(_ routerd: RouterdProcess, timeout: Double = 30) throws -> Int {
        try waitUntil("the buffer to stop growing", timeout: timeout) { () -> Int? in
            let before = try Self.buffer(routerd)["events"] as? Int ?? 0
            usleep(500_000)
            return try Self.buffer(routerd)["events"] as? Int == before ? before : nil
        }
    }

    /// The output's buffer block in /stats.
    static func buffer(_ routerd: RouterdProcess) throws -> [String: Any] {
        let port = try routerd.listeningPort(stage: "stats")
        let stages = try httpGet(port: port, "/stats").json()["stages"] as? [[String: Any]] ?? []
        return stages.first { $0["name"] as? String == "out" }?["buffer"] as? [String: Any] ?? [:]
    }

    /// Sends entries 1...total (ERROR, so each is acknowledged once durable in the buffer), collecting acks, and
    /// kills routerd with SIGKILL after `killAfter` have been sent, in the middle of the stream. Returns the
    /// sequences routerd acknowledged: what it had accepted when it died.
    static func streamAndKill(_ routerd: RouterdProcess, total: Int, killAfter: Int) throws -> Set<Int> {
        let port = try routerd.listeningPort(stage: "udp_in")
        let client = try UDPClient()
        var acknowledged = Set<Int>()
        func collect(_ timeout: Double) {
            while let reply = client.receive(timeout: timeout) {
                guard let object = try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any],
                    let sequence = object["sequence"] as? Int
                else { continue }
                if object["ack"] as? Bool == true { acknowledged.insert(sequence) }
            }
        }
        for sequence in 1...total {
            client.send(seedEntry(sequence: sequence, level: "ERROR", message: "buffered \(sequence)"), port: port)
            if sequence % 50 == 0 {
                usleep(2_000)
                collect(0)
            }
            if sequence == killAfter {
                // Acks for what was accepted just before the kill are still on their way: wait for them first
                // only briefly, so that the kill lands while entries are being received and appended.
                kill(routerd.process.processIdentifier, SIGKILL)
            }
        }
        collect(0.5)
        _ = try? routerd.waitForExit(timeout: 10)
        return acknowledged
    }

    @Test func killedWhileTheFileSystemIsFull_everyAcknowledgedEntryIsWrittenAfterTheRestart() throws {
        try #require(Tmpfs.isAvailable, "needs a tmpfs mount (root)")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let disk = try Tmpfs(under: directory, sizeBytes: 1 << 20)
        let logPath = disk.url.appendingPathComponent("server.log")
        let bufferPath = directory.appendingPathComponent("buffer").path
        let config = Self.config(
            output: "type: file\npath: \"\(logPath.path)\"", bufferPath: bufferPath)
        let filler = try disk.fill()
        let first = try RouterdProcess(config: config, directory: directory)
        let total = 6_000
        let acknowledged = try Self.streamAndKill(first, total: total, killAfter: 4_000)
        // Acknowledged while the file could take nothing: only the buffer held them.
        #expect(acknowledged.count > 500, "entries were acknowledged from the buffer: \(acknowledged.count)")
        #expect(fileLines(logPath).isEmpty)
        try FileManager.default.removeItem(at: filler)

        let second = try RouterdProcess(config: config, directory: directory)
        try waitUntil("the buffer to empty into the file", timeout: 60) { () -> Bool? in
            let written = Set(fileLines(logPath).compactMap(sequenceOf))
            let held = try Self.buffer(second)["events"] as? Int
            return acknowledged.isSubset(of: written) && held == 0 ? true : nil
        }
        #expect(try second.terminate() == 0)
        let lines = fileLines(logPath)
        let written = lines.compactMap(sequenceOf)
        #expect(written.count == lines.count, "no torn line")
        let missing = acknowledged.subtracting(written)
        #expect(missing.isEmpty, "\(missing.count) acknowledged entries missing, e.g. \(missing.sorted().prefix(5))")
        // Nothing had been written before the kill, so nothing can arrive twice.
        #expect(Set(written).count == written.count, "no entry twice")
        #expect(written == written.sorted(), "in order")
    }

    @Test func killedWhileWriting_copiesAppearOnlyAmongTheEntriesCountedAsReplayed() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("out.log")
        let config = Self.config(
            output: "type: file\npath: \"\(logPath.path)\"", bufferPath: directory.appendingPathComponent("buffer").path
        )
        let first = try RouterdProcess(config: config, directory: directory)
        let acknowledged = try Self.streamAndKill(first, total: 20_000, killAfter: 12_000)
        #expect(acknowledged.count > 2_000)
        let second = try RouterdProcess(config: config, directory: directory)
        try waitUntil("the buffer to empty", timeout: 60) { () -> Bool? in
            (try Self.buffer(second)["events"] as? Int) == 0 ? true : nil
        }
        let replayed = try #require(try Self.buffer(second)["events_replayed"] as? Int)
        #expect(try second.terminate() == 0)
        let written = fileLines(logPath).compactMap(sequenceOf)
        let missing = acknowledged.subtracting(written)
        #expect(missing.isEmpty, "\(missing.count) acknowledged entries missing, e.g. \(missing.sorted().prefix(5))")
        let copies = written.count - Set(written).count
        #expect(copies <= replayed, "\(copies) copies, but only \(replayed) entries counted as replayed")
    }

    /// The kill test against a server: a first run declares what the output needs; then, with the server down,
    /// routerd is killed in the middle of a stream; with the server up again, a second routerd empties the buffer.
    /// Returns the sequences routerd acknowledged, after `arrived` has read what reached the server.
    static func killWhileDown(
        output: String, directory: URL, stop: () throws -> Void, start: () throws -> Void,
        arrived: () throws -> [Int]
    ) throws {
        let config = Self.config(output: output, bufferPath: directory.appendingPathComponent("buffer").path)
        let warmup = try RouterdProcess(config: config, directory: directory)
        try warmup.waitForLog("connected", timeout: 30)
        #expect(try warmup.terminate() == 0)
        try stop()
        let first = try RouterdProcess(config: config, directory: directory)
        let acknowledged = try Self.streamAndKill(first, total: 5_000, killAfter: 3_000)
        #expect(acknowledged.count > 250, "entries were acknowledged from the buffer: \(acknowledged.count)")
        try start()
        let second = try RouterdProcess(config: config, directory: directory)
        try waitUntil("the buffer to empty into the server", timeout: 90) { () -> Bool? in
            (try Self.buffer(second)["events"] as? Int) == 0 ? true : nil
        }
        #expect(try second.terminate() == 0)
        let received = try arrived()
        let missing = acknowledged.subtracting(received)
        #expect(missing.isEmpty, "\(missing.count) acknowledged entries missing, e.g. \(missing.sorted().prefix(5))")
        #expect(received.count == Set(received).count, "nothing was written before the kill: no copies")
    }

    @Test func killedWhileRabbitMQIsStopped_everyAcknowledgedEntryReachesTheBrokerAfterTheRestart() throws {
        let broker = try RabbitMQNode.start()
        defer { broker.stopQuietly() }
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let queue = RabbitMQNode.queueName("buffer-kill")
        try Self.killWhileDown(
            output: "type: amqp\nurl: \"\(broker.url)\"\nqueue: \(queue)", directory: directory,
            stop: { try broker.stop() }, start: { try broker.restart() },
            arrived: { try Self.drainQueue(broker.url, queue) })
    }

    @Test func killedWhilePostgresIsStopped_everyAcknowledgedEntryIsARowAfterTheRestart() throws {
        let server = try PrivatePostgres()
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try Self.killWhileDown(
            output: "type: postgres\nurl: \"\(server.url)\"\nschema: extended", directory: directory,
            stop: { try server.stop() }, start: { try server.start() },
            arrived: {
                try TestPostgres.rows(server.url, "SELECT entry->>'sequence' FROM udp_messages").compactMap {
                    $0.first.flatMap { Int($0) }
                }
            })
    }

    @Test func damagedBufferFiles_startCleanlyWithTheDamageCountedAndTheRestDelivered() throws {
        try #require(Tmpfs.isAvailable, "needs a tmpfs mount (root)")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // A destination that refuses every write: a full filesystem.
        let disk = try Tmpfs(under: directory, sizeBytes: 1 << 20)
        let logPath = disk.url.appendingPathComponent("out.log")
        let bufferPath = directory.appendingPathComponent("buffer").path
        let filler = try disk.fill()
        let config = Self.config(output: "type: file\npath: \"\(logPath.path)\"", bufferPath: bufferPath)
        let first = try RouterdProcess(config: config, directory: directory)
        let port = try first.listeningPort(stage: "udp_in")
        let total = 2_000
        try UDPClient().send(
            (1...total).map { seedEntry(sequence: $0, level: "ERROR", message: "kept \($0)") }, port: port, burst: 50)
        try waitUntil("every entry in the buffer", timeout: 30) { () -> Bool? in
            (try Self.buffer(first)["events"] as? Int) == total ? true : nil
        }
        // A clean stop with the destination down keeps everything in the buffer.
        #expect(try first.terminate() == 0)
        #expect(!first.logs("disk buffer keeps entries for the next start").isEmpty)

        // Flip one byte in the middle of the segment and cut the end in the middle of a record.
        let segments = try FileManager.default.contentsOfDirectory(atPath: bufferPath).filter { $0.hasSuffix(".seg") }
            .sorted()
        let segment = URL(fileURLWithPath: bufferPath).appendingPathComponent(
            try #require(
                segments.last { name in
                    ((try? FileManager.default.attributesOfItem(atPath: bufferPath + "/" + name)[.size] as? Int) ?? 0)
                        > 1000
                }))
        var bytes = try [UInt8](Data(contentsOf: segment))
        bytes[bytes.count / 2] ^= 0x40
        bytes.removeLast(25)
        try Data(bytes).write(to: segment)
        let inspect = try runRouterd(["buffer", "inspect", "--json", bufferPath])
        #expect(inspect.status == 0)
        let report = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(report["records_torn"] as? Int == 1)
        #expect(report["records_skipped"] as? Int == 1)
        let lost = try #require(report["events_lost"] as? Int)
        #expect(lost > 0)

        try FileManager.default.removeItem(at: filler)
        let second = try RouterdProcess(config: config, directory: directory)
        let damage = try second.waitForLog("disk buffer damaged; the damage is cut off or skipped and counted")
        #expect(damage.first?["records_cut"] as? String == "1")
        #expect(damage.first?["events_lost"] as? String == "\(lost)")
        try waitUntil("the rest to be written", timeout: 30) { () -> Bool? in
            (try Self.buffer(second)["events"] as? Int) == 0 ? true : nil
        }
        let stats = try Self.buffer(second)
        #expect(stats["records_cut"] as? Int == 1)
        #expect(stats["records_skipped"] as? Int == 1)
        #expect(stats["events_lost_damaged"] as? Int == lost)
        #expect(try second.terminate() == 0)
        let written = fileLines(logPath).compactMap(sequenceOf)
        // Everything but the damaged record and the torn last one, each once, in order.
        #expect(written == written.sorted())
        #expect(Set(written).count == written.count)
        #expect(written.count >= total - lost - 200 && written.count < total)
        #expect(written.first == 1)
    }

    @Test func theBuffersOwnDiskFull_dropNewestCountsAndRefusesExactlyWhatIsMissing() throws {
        try #require(Tmpfs.isAvailable, "needs a tmpfs mount (root)")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let bufferDisk = try Tmpfs(under: directory.appendingPathComponent("b"), sizeBytes: 1 << 20)
        let destination = try Tmpfs(under: directory.appendingPathComponent("d"), sizeBytes: 1 << 20)
        let logPath = destination.url.appendingPathComponent("out.log")
        let filler = try destination.fill()
        let config = Self.config(
            output: "type: file\npath: \"\(logPath.path)\"",
            bufferPath: bufferDisk.url.appendingPathComponent("b").path,
            extraBuffer: "      when_full: drop_newest")
        let routerd = try RouterdProcess(config: config, directory: directory)
        let port = try routerd.listeningPort(stage: "udp_in")
        let client = try UDPClient()
        let total = 8_000
        var answers: [Int: Bool] = [:]
        for sequence in 1...total {
            client.send(
                seedEntry(sequence: sequence, level: "ERROR", message: String(repeating: "x", count: 200)), port: port)
            if sequence % 50 == 0 {
                usleep(3_000)
                while let reply = client.receive(timeout: 0),
                    let object = try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any],
                    let number = object["sequence"] as? Int
                {
                    answers[number] = object["ack"] as? Bool == true
                }
            }
        }
        while answers.count < total, let reply = client.receive(timeout: 2),
            let object = try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any],
            let number = object["sequence"] as? Int
        {
            answers[number] = object["ack"] as? Bool == true
        }
        #expect(answers.count == total, "every sender hears")
        let refused = Set(answers.filter { !$0.value }.keys)
        let accepted = Set(answers.filter { $0.value }.keys)
        #expect(!refused.isEmpty && !accepted.isEmpty, "the 1 MiB disk filled part way")
        let stats = try Self.buffer(routerd)
        #expect(stats["events_dropped_full"] as? Int == refused.count)
        #expect(stats["events"] as? Int == accepted.count)
        // Once the destination works, exactly the accepted entries are written.
        try FileManager.default.removeItem(at: filler)
        try waitUntil("the accepted entries to be written", timeout: 30) { () -> Bool? in
            Set(fileLines(logPath).compactMap(sequenceOf)) == accepted ? true : nil
        }
        #expect(try routerd.terminate() == 0)
    }

    @Test func whatTheBufferHoldsLivesOnDisk_RSSStaysFlatWhileItGrows() throws {
        try #require(Tmpfs.isAvailable, "needs a tmpfs mount (root)")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let disk = try Tmpfs(under: directory, sizeBytes: 1 << 20)
        try disk.fill()
        let config = Self.config(
            output: "type: file\npath: \"\(disk.url.appendingPathComponent("out.log").path)\"",
            bufferPath: directory.appendingPathComponent("buffer").path, maxSize: "1GiB")
        let routerd = try RouterdProcess(config: config, directory: directory)
        let port = try routerd.listeningPort(stage: "udp_in")
        let client = try UDPClient()
        let message = String(repeating: "m", count: 120)
        /// Sends the entries, then waits until the buffer stops growing; returns how many it holds.
        func send(_ range: ClosedRange<Int>) throws -> Int {
            client.send(range.map { seedEntry(sequence: $0, level: "INFO", message: message) }, port: port, burst: 100)
            return try Self.heldWhenSteady(routerd, timeout: 120)
        }
        let earlyEvents = try send(1...50_000)
        let early = try residentBytes(pid: routerd.process.processIdentifier)
        let lateEvents = try send(50_001...400_000)
        let late = try residentBytes(pid: routerd.process.processIdentifier)
        #expect(lateEvents > 3 * earlyEvents, "held \(earlyEvents), then \(lateEvents)")
        let held = try #require(try Self.buffer(routerd)["bytes"] as? Int)
        #expect(held > 40 << 20, "the buffer holds \(held >> 20) MiB on disk")
        // Many times as many entries held, and memory grew by less than a fifth of what they take on disk.
        #expect(late - early < held / 5, "RSS went from \(early >> 20) to \(late >> 20) MiB")
        #expect(late < 100 << 20)
        #expect(try routerd.terminate() == 0)
    }

    @Test func fullAndBlockingAtShutdown_waitsDrainTimeoutOnceThenCountsWhatItDrops() throws {
        try #require(Tmpfs.isAvailable, "needs a tmpfs mount (root)")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let disk = try Tmpfs(under: directory, sizeBytes: 1 << 20)
        try disk.fill()
        let config = Self.config(
            output: "type: file\npath: \"\(disk.url.appendingPathComponent("out.log").path)\"\ndrain_timeout: 1s",
            bufferPath: directory.appendingPathComponent("buffer").path, maxSize: "1MiB")
        let routerd = try RouterdProcess(config: config, directory: directory)
        let port = try routerd.listeningPort(stage: "udp_in")
        let total = 20_000
        try UDPClient().send(
            (1...total).map { seedEntry(sequence: $0, level: "INFO", message: String(repeating: "f", count: 100)) },
            port: port, burst: 100)
        try routerd.waitForLog("disk buffer full; waiting for the output to make room")
        let held = try Self.heldWhenSteady(routerd)
        let started = Date()
        // Exit status 3: the shutdown dropped entries (those the full buffer could not take), and said so.
        #expect(try routerd.terminate(timeout: 20) == 3)
        #expect(Date().timeIntervalSince(started) < 10, "one drain_timeout, not one per batch")
        let dropped = routerd.logs("disk buffer full; entries dropped").compactMap { $0["events_lost"] as? String }
            .compactMap { Int($0) }.reduce(0, +)
        #expect(dropped > 0)
        #expect(held + dropped <= total)
        // What the buffer held is still there for the next start.
        let inspect = try runRouterd(["buffer", "inspect", "--json", directory.appendingPathComponent("buffer").path])
        let report = try JSONSerialization.jsonObject(with: Data(inspect.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(report["events"] as? Int == held)
    }

    @Test func reload_keepsABufferedOutputThatDidNotChange_andRefusesToChangeOneInPlace() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logPath = directory.appendingPathComponent("out.log")
        let bufferPath = directory.appendingPathComponent("buffer").path
        let config = Self.config(output: "type: file\npath: \"\(logPath.path)\"", bufferPath: bufferPath)
        let routerd = try RouterdProcess(config: config, directory: directory)
        let port = try routerd.listeningPort(stage: "udp_in")
        let client = try UDPClient()
        client.send((1...500).map { seedEntry(sequence: $0, level: "INFO") }, port: port, burst: 100)
        let configURL = directory.appendingPathComponent("router.yaml")
        // Another output added: the buffered one is kept, with its buffer open.
        try (config + "\n  more: { type: file, inputs: [valid], path: \"\(directory.path)/more.log\" }\n").write(
            to: configURL, atomically: true, encoding: .utf8)
        try ReloadTests.reload(routerd)
        let applied = try #require(routerd.logs("config reloaded").first)
        #expect((applied["kept"] as? String)?.contains("outputs.out") == true, "\(applied)")
        // The buffered output itself changed: refused, with the reason, and the running graph unchanged.
        try config.replacingOccurrences(of: "sync: 50ms", with: "sync: 200ms").write(
            to: configURL, atomically: true, encoding: .utf8)
        try ReloadTests.reload(routerd)
        let errors = routerd.logs("config error").compactMap { $0["error"] as? String }
        #expect(errors.contains { $0.contains("a reload cannot change a disk-buffered output in place") }, "\(errors)")
        client.send((501...1_000).map { seedEntry(sequence: $0, level: "INFO") }, port: port, burst: 100)
        try waitUntil("every entry written", timeout: 30) { () -> Bool? in
            Set(fileLines(logPath).compactMap(sequenceOf)) == Set(1...1_000) ? true : nil
        }
        #expect(try routerd.terminate() == 0)
    }

    /// Every message in `queue`, taken with the seed's own client library (pika), as sequence numbers.
    static func drainQueue(_ url: String, _ queue: String) throws -> [Int] {
        let script = """
            import json, sys, pika
            connection = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
            channel = connection.channel()
            while True:
                method, properties, body = channel.basic_get(sys.argv[2], auto_ack=True)
                if method is None:
                    break
                print(json.loads(body)["sequence"])
            connection.close()
            """
        let (status, output) = try Spawn.run("/usr/bin/env", ["python3", "-c", script, url, queue])
        guard status == 0 else { throw TestFailure("pika consumer failed (\(status)): \(output)") }
        return output.split(separator: "\n").compactMap { Int($0) }
    }
}
