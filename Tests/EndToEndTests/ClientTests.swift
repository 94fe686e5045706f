import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `routerd send` and `routerd loadtest` against the real binary.
@Suite("routerd binary: send and loadtest", .serialized)
struct ClientTests {
    static var stockConfig: String {
        (try? String(
            contentsOf: TestPaths.packageRoot.appendingPathComponent("examples/router.yaml"), encoding: .utf8)) ?? ""
    }

    /// The stock topology without its `ack` stage: entries are stored, acks never sent.
    static var configWithoutAcks: String {
        """
        inputs:
          udp_in: { type: udp, address: 127.0.0.1, port: 0 }
        filters:
          valid: { type: validate_json, inputs: [udp_in] }
        outputs:
          server_log: { type: file, inputs: [valid], path: "${LOG_DIR}/server.log" }
          dead_letters: { type: file, inputs: [valid.invalid], path: "${LOG_DIR}/dead-letter.log" }
        """
    }

    func start(_ config: String, in directory: URL, environment: [String: String] = [:]) throws -> (
        RouterdProcess, UInt16
    ) {
        var env = [
            "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0", "DASHBOARD_PORT": "0",
            "LOG_DIR": directory.appendingPathComponent("logs").path,
        ]
        env.merge(environment) { $1 }
        let routerd = try RouterdProcess(config: config, directory: directory, environment: env)
        return (routerd, try routerd.listeningPort(stage: "udp_in"))
    }

    func lines(_ url: URL) -> [String] {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [] }
        return text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init).filter { !$0.isEmpty }
    }

    func object(_ line: String) -> [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
    }

    /// A UDP port on 127.0.0.1 that nothing listens on (bound, read, closed).
    func closedPort() throws -> UInt16 {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(descriptor, generic, length) == 0 && getsockname(descriptor, generic, &length) == 0
            }
        }
        guard bound else { throw TestFailure("bind failed") }
        return UInt16(bigEndian: address.sin_port)
    }

    @Test func send_againstStockRouterd_getsEveryErrorAckedAndExitsZero() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (routerd, port) = try start(Self.stockConfig, in: directory)
        let result = try runRouterd(["send", "--port", "\(port)", "--count", "20", "--host-name", "node-1"])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("sent: 20 to 127.0.0.1:\(port)\n"))
        #expect(result.stdout.contains("errors: 2\n"))
        #expect(result.stdout.contains("acked: 2\n"))
        #expect(result.stdout.contains("nacked: 0\n"))
        #expect(result.stdout.contains("unacked: 0\n"))
        #expect(try routerd.terminate() == 0)
        let written = lines(directory.appendingPathComponent("logs/server.log")).compactMap(object)
        #expect(written.count == 20)
        #expect(Set(written.compactMap { $0["sequence"] as? Int }) == Set(1...20))
        let first = try #require(written.first)
        #expect(Set(first.keys) == ["timestamp", "sequence", "app", "level", "message", "host"])
        #expect(written.allSatisfy { $0["app"] as? String == "client" && $0["host"] as? String == "node-1" })
        let errors = written.filter { $0["level"] as? String == "ERROR" }.compactMap { $0["sequence"] as? Int }
        #expect(Set(errors) == [7, 17])
    }

    @Test func send_whenNothingListens_exitsNonZeroListingTheUnackedSequences() throws {
        let port = try closedPort()
        let result = try runRouterd([
            "send", "--port", "\(port)", "--count", "20", "--ack-timeout", "50ms", "--retries", "1",
        ])
        #expect(result.status == 1)
        #expect(result.stdout.contains("acked: 0\n"))
        #expect(result.stdout.contains("unacked: 2 [7, 17]\n"), "\(result.stdout)")
        #expect(result.stdout.contains("resent: 2\n"))
    }

    @Test func send_whenRouterdStoresButNeverAcks_exitsNonZeroAfterRetrying() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (routerd, port) = try start(Self.configWithoutAcks, in: directory)
        let result = try runRouterd([
            "send", "--port", "\(port)", "--count", "10", "--ack-timeout", "100ms", "--retries", "2",
        ])
        #expect(result.status == 1)
        #expect(result.stdout.contains("unacked: 1 [7]\n"), "\(result.stdout)")
        #expect(result.stdout.contains("resent: 2\n"))
        #expect(try routerd.terminate() == 0)
        // The first send and both retries reached the file: the retries are real datagrams.
        let sequences = lines(directory.appendingPathComponent("logs/server.log")).compactMap(object)
            .compactMap { $0["sequence"] as? Int }
        #expect(sequences.filter { $0 == 7 }.count == 3)
        #expect(sequences.count == 12)
    }

    @Test func send_whenErrorsAreNacked_retriesThenExitsNonZeroListingTheReasons() throws {
        let server = try FakeAckServer()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: TestPaths.binary)
        process.arguments = [
            "send", "--port", "\(server.port)", "--count", "20", "--ack-timeout", "100ms", "--retries", "1",
        ]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var errorDatagrams = 0
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline {
            guard let (text, sender) = server.receive(timeout: 0.05) else { continue }
            guard text.contains("\"level\":\"ERROR\""), let sequence = sequenceOf(text) else { continue }
            errorDatagrams += 1
            server.reply(
                "{\"ack\":false,\"sequence\":\(sequence),\"status\":\"failed\",\"reason\":\"disk full\"}", to: sender)
        }
        process.waitUntilExit()
        let stdout = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 1)
        #expect(stdout.contains("acked: 0\n"))
        #expect(stdout.contains("nacked: 2 [7 (disk full), 17 (disk full)]\n"), "\(stdout)")
        #expect(stdout.contains("unacked: 0\n"))
        #expect(errorDatagrams == 4, "each ERROR sent once and retried once")
    }

    @Test func send_withFileDash_sendsStdinLinesAsTheyAreAndTracksTheirErrors() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (routerd, port) = try start(Self.stockConfig, in: directory)
        let error =
            #"{"timestamp":"2026-11-22T10:00:00Z","sequence":900,"app":"a","level":"error","message":"m","host":"h"}"#
        let info = #"{"timestamp":"2026-11-22T10:00:01Z","seq":901, "app":"a","level":"INFO","message":"m","host":"h"}"#
        let result = try runRouterd(
            ["send", "--port", "\(port)", "--file", "-"], stdin: error + "\r\n\n" + info + "\n")
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("sent: 2 to"))
        #expect(result.stdout.contains("errors: 1\n"))
        #expect(result.stdout.contains("acked: 1\n"))
        #expect(try routerd.terminate() == 0)
        #expect(Set(lines(directory.appendingPathComponent("logs/server.log"))) == [error, info])
    }

    @Test func send_whenFileIsMissing_exitsWithAMessage() throws {
        let result = try runRouterd(["send", "--port", "9", "--file", "/nonexistent/entries.jsonl"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("cannot read '/nonexistent/entries.jsonl'"))
    }

    @Test func loadtest_withTwoUnpacedWorkers_sendsTheTotalWithUniqueSequencesPerWorker() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (routerd, port) = try start(Self.stockConfig, in: directory)
        let result = try runRouterd([
            "loadtest", "--port", "\(port)", "--total", "2000", "--rate", "0", "--workers", "2", "--json",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(object(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(report["sent"] as? Int == 2000)
        #expect(report["workers"] as? Int == 2)
        #expect(report["errors_sent"] as? Int == 200)
        #expect(report["errors_acked"] as? Int == 200)
        let latency = try #require(report["ack_latency"] as? [String: Any])
        #expect(latency["count"] as? Int == 200)
        #expect(latency["p99_ms"] is Double)
        #expect(try routerd.terminate() == 0)
        let written = lines(directory.appendingPathComponent("logs/server.log")).compactMap(object)
        #expect(written.count == 2000)
        var byApp: [String: [Int]] = [:]
        for entry in written {
            if let app = entry["app"] as? String, let sequence = entry["sequence"] as? Int {
                byApp[app, default: []].append(sequence)
            }
        }
        #expect(byApp["loadtest-0"]?.sorted() == Array(1...1000))
        #expect(byApp["loadtest-1"]?.sorted() == Array(1...1000))
    }

    @Test func loadtest_whenStatsAreUnavailable_saysSoAndStillReports() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (routerd, port) = try start(Self.stockConfig, in: directory)
        let closed = try closedPort()
        let result = try runRouterd([
            "loadtest", "--port", "\(port)", "--total", "500", "--rate", "5000", "--workers", "1",
            "--stats-url", "http://127.0.0.1:\(closed)/stats",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("sent:         500 entries"), "\(result.stdout)")
        #expect(result.stdout.contains("errors acked: 50/50 ERRORs"), "\(result.stdout)")
        #expect(result.stdout.contains("/stats unavailable at http://127.0.0.1:\(closed)/stats"))
        #expect(try routerd.terminate() == 0)
    }

    @Test func loadtest_withStatsURL_reportsReceivedAndWrittenFromTheServer() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (routerd, port) = try start(Self.stockConfig, in: directory, environment: ["FLUSH_COUNT": "1"])
        let statsPort = try routerd.listeningPort(stage: "dashboard")
        let result = try runRouterd([
            "loadtest", "--port", "\(port)", "--total", "1000", "--rate", "10000", "--workers", "1", "--json",
            "--stats-url", "http://127.0.0.1:\(statsPort)/stats",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try #require(object(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let stats = try #require(report["stats"] as? [String: Any])
        #expect(stats["available"] as? Bool == true)
        #expect(stats["received"] as? Int == 1000)
        #expect(stats["written"] as? Int == 1000)
        #expect(stats["loss"] as? Int == 0)
        #expect(try routerd.terminate() == 0)
    }
}

/// A UDP socket on 127.0.0.1 that plays routerd's part in ack tests: receives entries, answers their senders.
private final class FakeAckServer {
    let descriptor: Int32
    let port: UInt16

    init() throws {
        descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let descriptor = descriptor
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                bind(descriptor, generic, length) == 0 && getsockname(descriptor, generic, &length) == 0
            }
        }
        guard bound else {
            close(descriptor)
            throw TestFailure("bind failed")
        }
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(descriptor) }

    /// One datagram and its sender, or nil after `timeout` seconds.
    func receive(timeout: Double) -> (String, sockaddr_in)? {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var sender = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let count = withUnsafeMutablePointer(to: &sender) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                recvfrom(descriptor, &buffer, buffer.count, 0, $0, &length)
            }
        }
        guard count >= 0 else { return nil }
        return (String(decoding: buffer[0..<count], as: UTF8.self), sender)
    }

    func reply(_ text: String, to address: sockaddr_in) {
        var address = address
        let bytes = Array(text.utf8)
        _ = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(descriptor, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }
}
