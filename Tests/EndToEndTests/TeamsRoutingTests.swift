import Foundation
import Testing

/// examples/teams.yaml run by the real binary: route, modify and throttle, with every entry counted in every output.
@Suite("routerd binary: teams routing", .serialized)
struct TeamsRoutingTests {
    static var teamsConfig: String {
        (try? String(
            contentsOf: TestPaths.packageRoot.appendingPathComponent("examples/teams.yaml"), encoding: .utf8)) ?? ""
    }

    private func entry(_ sequence: Int, app: String, host: String, message: String = "ok", extra: String = "")
        -> String
    {
        "{\"timestamp\":\"2026-11-22T10:00:00Z\",\"sequence\":\(sequence),\"app\":\"\(app)\",\"level\":\"INFO\","
            + "\"message\":\"\(message)\",\"hostname\":\"\(host)\",\"token\":\"secret-\(sequence)\"\(extra)}"
    }

    private func objects(_ url: URL) -> [[String: Any]] {
        fileLines(url).compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
        }
    }

    @Test func teams_routesEveryEntryToExactlyOneFileAndChangesItAsConfigured() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logs = directory.appendingPathComponent("logs")
        let routerd = try RouterdProcess(
            config: Self.teamsConfig, directory: directory,
            environment: [
                "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0", "LOG_DIR": logs.path, "SHARED_LIMIT": "50",
            ])
        let port = try routerd.listeningPort(stage: "udp_in")
        var datagrams: [String] = []
        var expected: [String: Set<Int>] = [:]
        for sequence in 0..<1_000 {
            switch sequence % 10 {
            case 0:
                datagrams.append(entry(sequence, app: "billing", host: "b1", message: "paid with 4111111111111111"))
                expected["billing", default: []].insert(sequence)
            case 1:
                datagrams.append(entry(sequence, app: "invoices", host: "b2"))
                expected["billing", default: []].insert(sequence)
            case 2:
                datagrams.append(entry(sequence, app: "web", host: "w1", message: "Login FAILED for bob"))
                expected["auth", default: []].insert(sequence)
            case 3:
                datagrams.append(entry(sequence, app: "web", host: "w1", extra: ",\"duration_ms\":1500"))
                expected["slow", default: []].insert(sequence)
            case 4:
                datagrams.append("not json \(sequence)")
                expected["invalid", default: []].insert(sequence)
            default:
                // 500 shared entries from one storming host: the first 50 in the window pass.
                datagrams.append(entry(sequence, app: "web", host: "storm", extra: ",\"duration_ms\":20"))
                expected["storm", default: []].insert(sequence)
            }
        }
        let started = Date()
        try UDPClient().send(datagrams, port: port)
        let sendSeconds = Date().timeIntervalSince(started)
        #expect(try routerd.terminate() == 0)

        let billing = objects(logs.appendingPathComponent("billing.log"))
        let auth = objects(logs.appendingPathComponent("auth.log"))
        let slow = objects(logs.appendingPathComponent("slow.log"))
        let shared = objects(logs.appendingPathComponent("shared.log"))
        let deadLetters = fileLines(logs.appendingPathComponent("dead-letter.log"))
        func sequences(_ objects: [[String: Any]]) -> Set<Int> { Set(objects.compactMap { $0["sequence"] as? Int }) }
        #expect(sequences(billing) == expected["billing"])
        #expect(billing.count == expected["billing"]?.count)
        #expect(sequences(auth) == expected["auth"])
        #expect(auth.count == expected["auth"]?.count)
        #expect(sequences(slow) == expected["slow"])
        #expect(slow.count == expected["slow"]?.count)
        // Every entry is in exactly one file: the storm's excess and the invalid ones are dead letters.
        let storm = expected["storm"]?.count ?? 0
        #expect(sequences(shared).isSubset(of: expected["storm"] ?? []))
        #expect(shared.count + deadLetters.count == storm + (expected["invalid"]?.count ?? 0))
        #expect(
            billing.count + auth.count + slow.count + shared.count + deadLetters.count == datagrams.count,
            "every entry is written exactly once")
        if sendSeconds < 0.5 {
            #expect(shared.count == 50, "one window's limit for the storming host")
        }
        #expect(deadLetters.filter { $0.contains("throttled") || $0.contains("storm") }.count == storm - shared.count)
        // tidy's changes, on every written entry.
        for object in billing + auth + slow + shared {
            #expect(object["token"] == nil)
            #expect(object["hostname"] == nil && object["host"] is String)
            #expect((object["sender"] as? String)?.hasPrefix("127.0.0.1:") == true)
            #expect(object["received_at"] is String)
        }
        #expect(billing.contains { ($0["message"] as? String) == "paid with [card]" })
    }
}
