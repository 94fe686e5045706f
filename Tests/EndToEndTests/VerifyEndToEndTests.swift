import Foundation
import Testing

/// The data-diode ingest path run by the real binary: udp -> verify -> file, rejects to a dead-letter file, fed by
/// `routerd send --format diode`.
@Suite("routerd binary: verify and send --format diode", .serialized)
struct VerifyEndToEndTests {
    static let secret = "end-to-end-secret-at-least-32-bytes-long"

    static let config = """
        inputs:
          udp_in: { type: udp, address: 127.0.0.1, port: 0 }
        filters:
          verified: { type: verify, inputs: [udp_in], secret: "${SECRET_KEY:?set SECRET_KEY}", issuer: udp_client }
        outputs:
          messages: { type: file, inputs: [verified], path: "${LOG_DIR}/messages.log" }
          rejected: { type: file, inputs: [verified.rejected], path: "${LOG_DIR}/rejected.log", format: dead_letter }
        """

    static func seedText(_ counter: Int) -> String { "This is being sent via the UDP protocol. #\(counter)" }

    func object(_ line: String) -> [String: Any]? {
        try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
    }

    @Test func sendDiode_throughVerify_storesTheSignedMessagesAndDeadLettersEachTamperWithItsReason() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logs = directory.appendingPathComponent("logs")
        let routerd = try RouterdProcess(
            config: Self.config, directory: directory,
            environment: ["SECRET_KEY": Self.secret, "LOG_DIR": logs.path])
        let port = try routerd.listeningPort(stage: "udp_in")
        let environment = ["SECRET_KEY": Self.secret]
        let good = try runRouterd(
            ["send", "--format", "diode", "--port", "\(port)", "--count", "12"], environment: environment)
        #expect(good.status == 0, "\(good.stdout)\(good.stderr)")
        #expect(good.stdout.contains("sent: 12 to 127.0.0.1:\(port)\n"))
        let tampered: [(String, Int)] = [("signature", 3), ("checksum", 2), ("expired", 1), ("issuer", 1)]
        for (how, count) in tampered {
            let result = try runRouterd(
                ["send", "--format", "diode", "--port", "\(port)", "--count", "\(count)", "--tamper", how],
                environment: environment)
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        }
        let wrongKey = try runRouterd([
            "send", "--format", "diode", "--port", "\(port)", "--count", "1", "--secret", "not-the-secret",
        ])
        #expect(wrongKey.status == 0)
        #expect(try routerd.terminate() == 0)

        let stored = fileLines(logs.appendingPathComponent("messages.log")).compactMap(object)
        #expect(stored.count == 12)
        #expect(stored.allSatisfy { Set($0.keys) == ["client_id", "text", "token", "checksum"] })
        // The seed client's messages: an integer client_id (1 unless --client-id says otherwise), its text.
        #expect(stored.allSatisfy { $0["client_id"] as? Int == 1 })
        #expect(Set(stored.compactMap { $0["text"] as? String }) == Set((1...12).map(Self.seedText)))

        let dead = fileLines(logs.appendingPathComponent("rejected.log")).compactMap(object)
        var reasons: [String: Int] = [:]
        for line in dead { reasons[line["reason"] as? String ?? "?", default: 0] += 1 }
        #expect(reasons == ["bad_signature": 4, "bad_checksum": 2, "expired": 1, "wrong_issuer": 1])
        #expect(dead.allSatisfy { ($0["detail"] as? String)?.isEmpty == false && $0["entry"] is String })
        let expired = try #require(dead.first { $0["reason"] as? String == "expired" })
        #expect((expired["detail"] as? String)?.hasPrefix("expired 6") == true, "\(expired)")
    }

    @Test func sendDiode_withARate_pacesTheMessagesAndSignsEachAsItGoes() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logs = directory.appendingPathComponent("logs")
        let routerd = try RouterdProcess(
            config: Self.config, directory: directory,
            environment: ["SECRET_KEY": Self.secret, "LOG_DIR": logs.path])
        let port = try routerd.listeningPort(stage: "udp_in")
        let started = ContinuousClock.now
        let paced = try runRouterd(
            ["send", "--format", "diode", "--port", "\(port)", "--count", "150", "--rate", "100", "--client-id", "5"],
            environment: ["SECRET_KEY": Self.secret])
        let took = ContinuousClock.now - started
        #expect(paced.status == 0, "\(paced.stdout)\(paced.stderr)")
        #expect(paced.stdout.contains("sent: 150 to 127.0.0.1:\(port)\n"))
        // 150 at 100 a second: the last one is due 1.49 s after the first.
        #expect(took >= .milliseconds(1_450), "\(took)")
        #expect(try routerd.terminate() == 0)

        let stored = fileLines(logs.appendingPathComponent("messages.log")).compactMap(object)
        #expect(stored.allSatisfy { $0["client_id"] as? Int == 5 })
        #expect(Set(stored.compactMap { $0["text"] as? String }) == Set((1...150).map(Self.seedText)))
        // Each token is signed when its message goes: the last one's `iat` is later than the first one's.
        func issuedAt(_ counter: Int) throws -> Int {
            let entry = try #require(stored.first { $0["text"] as? String == Self.seedText(counter) })
            let token = try #require(entry["token"] as? String)
            var payload = String(token.split(separator: ".")[1])
                .replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while payload.count % 4 != 0 { payload += "=" }
            let data = try #require(Data(base64Encoded: payload))
            let claims = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            return try #require(claims["iat"] as? Int)
        }
        #expect(try issuedAt(150) > issuedAt(1))
        #expect(fileLines(logs.appendingPathComponent("rejected.log")).isEmpty)
    }

    @Test func verify_judgesExpiryByWhenTheDatagramArrived_notWhenItWasRead() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logs = directory.appendingPathComponent("logs")
        // Nobody reads stdout at first: the stdout output blocks, its queue of 10 fills, the udp input waits, and
        // later datagrams wait in the socket's receive buffer.
        let config = """
            inputs:
              udp_in: { type: udp, address: 127.0.0.1, port: 0, receive_buffer_bytes: 8388608 }
            filters:
              verified: { type: verify, inputs: [udp_in], secret: "${SECRET_KEY:?set SECRET_KEY}" }
            outputs:
              console: { type: stdout, inputs: [verified], queue_max_events: 10, when_full: block }
              stats: { type: http_stats, inputs: [verified, verified.rejected], address: 127.0.0.1, port: 0 }
              rejected: { type: file, inputs: [verified.rejected], path: "${LOG_DIR}/rejected.log", format: dead_letter }
            """
        let routerd = try RouterdProcess(
            config: config, directory: directory, environment: ["SECRET_KEY": Self.secret, "LOG_DIR": logs.path],
            standardOutput: .heldPipe)
        let port = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")
        let environment = ["SECRET_KEY": Self.secret]
        // 100 messages of 3 KB: far more than the 64 KB pipe and the queue hold.
        let bulk = directory.appendingPathComponent("bulk.txt")
        try (1...100).map { "bulk \($0) " + String(repeating: "x", count: 3_000) }.joined(separator: "\n")
            .write(to: bulk, atomically: true, encoding: .utf8)
        let first = try runRouterd(
            ["send", "--format", "diode", "--port", "\(port)", "--file", bulk.path, "--client-id", "1"],
            environment: environment)
        #expect(first.status == 0, "\(first.stdout)\(first.stderr)")
        usleep(500_000)
        // Valid for 2 s from when they are sent; they reach the socket at once and wait there for 4 s.
        let shortLived = try runRouterd(
            [
                "send", "--format", "diode", "--port", "\(port)", "--count", "20", "--client-id", "9",
                "--token-lifetime", "2s",
            ], environment: environment)
        #expect(shortLived.status == 0, "\(shortLived.stdout)\(shortLived.stderr)")
        sleep(4)
        let stats = try httpGet(port: httpPort, "/stats").json()
        #expect((stats["received"] as? Int ?? 0) < 120, "the input was not held up: \(stats["received"] ?? "-")")

        routerd.startDrainingStdout()
        try waitUntil("all 120 read") {
            (try httpGet(port: httpPort, "/stats").json()["received"] as? Int) == 120 ? true : nil
        }
        #expect(try routerd.terminate() == 0)
        let stored = routerd.stdoutLines().compactMap(object)
        #expect(stored.count == 120)
        #expect(stored.filter { $0["client_id"] as? Int == 9 }.count == 20)
        #expect(fileLines(logs.appendingPathComponent("rejected.log")).isEmpty)
    }

    @Test func sendDiode_withoutASecret_refusesToStart() throws {
        let result = try runRouterd(
            ["send", "--format", "diode", "--port", "9", "--count", "1"], environment: ["SECRET_KEY": ""])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--format diode needs --secret or SECRET_KEY in the environment"))
        let tamper = try runRouterd(["send", "--port", "9", "--count", "1", "--tamper", "checksum"])
        #expect(tamper.status != 0)
        #expect(tamper.stderr.contains("--tamper applies to --format diode only"))
    }

    @Test func validate_whenTheVerifySecretIsEmpty_namesTheStageAndOption() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("router.yaml").path
        try Self.config.replacingOccurrences(of: "\"${SECRET_KEY:?set SECRET_KEY}\"", with: "\"\"")
            .write(toFile: path, atomically: false, encoding: .utf8)
        let result = try runRouterd(["validate", "-c", path], environment: ["LOG_DIR": directory.path])
        #expect(result.status != 0)
        #expect(result.stderr.contains("filters.verified: 'secret' is empty"), "\(result.stderr)")
    }
}
