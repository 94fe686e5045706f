import Foundation
import Router
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The monitoring kit (monitoring/): a real Prometheus, with the shipped scrape config and alerting rules, scraping
/// real routers (the three example tiers and one whose output cannot keep up) under traffic. Every PromQL
/// expression of the Grafana dashboard and of the rules is evaluated through Prometheus's HTTP API and must return
/// data, so a renamed metric or label breaks this test.
@Suite("monitoring kit: Prometheus, the alerting rules and the Grafana dashboard against real routers")
struct MonitoringTests {
    static let monitoring = TestPaths.packageRoot.appendingPathComponent("monitoring")

    /// A real Prometheus on a free loopback port, with its data in `directory`.
    final class Prometheus: @unchecked Sendable {
        let process = Process()
        let port: UInt16
        private let output: PipeReader

        init(config: String, directory: URL) throws {
            let executable = try ExternalTools.find(["prometheus"], package: "prometheus")
            let configURL = directory.appendingPathComponent("prometheus.yml")
            try config.write(to: configURL, atomically: false, encoding: .utf8)
            port = try freeTCPPort()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = [
                "--config.file=\(configURL.path)",
                "--storage.tsdb.path=\(directory.appendingPathComponent("tsdb").path)",
                "--web.listen-address=127.0.0.1:\(port)", "--log.level=warn",
            ]
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            output = PipeReader(pipe)
            try waitUntil("Prometheus to be ready", timeout: 60) { [port] () -> Bool? in
                (try? httpGet(port: port, "/-/ready", timeout: 2))?.status == 200 ? true : nil
            }
        }

        /// `/api/v1/query`: the result vector (or matrix, scalar) of `expression`, or a failure with Prometheus's
        /// error.
        func query(_ expression: String) throws -> [Any] {
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            let encoded = expression.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
            let reply = try get("/api/v1/query?query=\(encoded)")
            let object = try reply.json()
            guard object["status"] as? String == "success", let data = object["data"] as? [String: Any] else {
                throw TestFailure("Prometheus refused \(expression): \(reply.body)")
            }
            if let result = data["result"] as? [Any] { return result }
            return data["result"].map { [$0] } ?? []
        }

        /// GET over HTTP/1.0, so that Prometheus answers with the whole body rather than chunks.
        func get(_ path: String) throws -> HTTPReply {
            let descriptor = try connectLoopback(port: port, timeout: 10)
            defer { close(descriptor) }
            sendAll(descriptor, Array("GET \(path) HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".utf8))
            return try parseReply(receiveAll(descriptor), port: port)
        }

        func stop() {
            if process.isRunning {
                process.terminate()
                process.waitUntilExit()
            }
        }

        var log: String { output.completeLines.joined(separator: "\n") }
    }

    /// Splits an expression into the parts a comparison or a set operator joins at its top level
    /// (`sum(rate(x[5m])) == 0 and sum(increase(x[1h])) > 0` has two measures), leaving out plain numbers.
    static func measures(of expression: String) -> [String] {
        let characters = Array(expression)
        var parts: [String] = []
        var current = ""
        var depth = 0
        var quote: Character?
        var index = 0
        func flush() {
            let part = current.trimmingCharacters(in: .whitespacesAndNewlines)
            if !part.isEmpty, Double(part) == nil { parts.append(part) }
            current = ""
        }
        while index < characters.count {
            let character = characters[index]
            if let open = quote {
                current.append(character)
                if character == open { quote = nil }
                index += 1
                continue
            }
            if character == "\"" || character == "'" {
                quote = character
            } else if "([{".contains(character) {
                depth += 1
            } else if ")]}".contains(character) {
                depth -= 1
            } else if depth == 0 {
                let rest = String(characters[index...])
                if let op = ["==", "!=", ">=", "<=", ">", "<"].first(where: { rest.hasPrefix($0) }) {
                    flush()
                    index += op.count
                    continue
                }
                if let word = [" and ", " or ", " unless "].first(where: { rest.hasPrefix($0) }) {
                    flush()
                    index += word.count
                    continue
                }
            }
            current.append(character)
            index += 1
        }
        flush()
        return parts
    }

    /// Every expression of the shipped rules and dashboard, named by where it is.
    static func shippedExpressions() throws -> [(String, String)] {
        var expressions: [(String, String)] = []
        let rulesPath = monitoring.appendingPathComponent("alerts.yml").path
        let (_, root) = try YAMLLoader.load(path: rulesPath, environment: [:])
        for group in root["groups"]?.value.sequence ?? [] {
            for rule in group["rules"]?.value.sequence ?? [] {
                let name = rule["alert"]?.value.scalar ?? rule["record"]?.value.scalar ?? "?"
                let expr = try #require(rule["expr"]?.value.scalar)
                for measure in measures(of: expr) { expressions.append(("alert \(name)", measure)) }
            }
        }
        let dashboard =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: monitoring.appendingPathComponent("grafana-dashboard.json"))) as? [String: Any]
        for panel in dashboard?["panels"] as? [[String: Any]] ?? [] {
            for target in panel["targets"] as? [[String: Any]] ?? [] {
                guard let expr = target["expr"] as? String else { continue }
                // Grafana's variables, as Grafana fills them in with "All" selected.
                let filled = expr.replacingOccurrences(of: "$__rate_interval", with: "30s")
                    .replacingOccurrences(of: "$tier", with: ".*").replacingOccurrences(of: "$instance", with: ".*")
                expressions.append(("panel '\(panel["title"] as? String ?? "?")'", filled))
            }
        }
        return expressions
    }

    @Test func measures_splitAtTopLevelComparisonsAndSetOperatorsOnly() {
        #expect(Self.measures(of: #"up{job="routerd"} == 0"#) == [#"up{job="routerd"}"#])
        #expect(
            Self.measures(of: #"sum by (a) (rate(x{t=~"u|v"}[5m])) == 0 and sum(increase(x[1h])) > 0"#)
                == [#"sum by (a) (rate(x{t=~"u|v"}[5m]))"#, "sum(increase(x[1h]))"])
        #expect(Self.measures(of: "max(a / b) > 0.8") == ["max(a / b)"])
    }

    @Test func kit_withRealPrometheusScrapingTheExampleTiersUnderTraffic_everyRuleAndPanelExpressionReturnsData()
        throws
    {
        let broker = try RabbitMQNode.shared()
        let database = try TestPostgres.freshDatabase()
        let queue = RabbitMQNode.queueName("monitoring")
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        func folder(_ name: String) throws -> URL {
            let url = directory.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            return url
        }
        let stockDirectory = try folder("stock")
        let stock = try RouterdProcess(
            config: try DiodeTests.example("router.yaml"), directory: stockDirectory,
            environment: [
                "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "0", "DASHBOARD_PORT": "0",
                "LOG_DIR": stockDirectory.appendingPathComponent("logs").path, "FLUSH_TIMEOUT_SEC": "1",
            ])
        let tiers = try DiodeTests.start(broker: broker, queue: queue, database: database)
        defer { try? FileManager.default.removeItem(at: tiers.directory) }
        // A router whose output cannot keep up (its standard output is a pipe nobody reads): it drops, counted.
        let slow = try RouterdProcess(
            config: """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0 }
                outputs:
                  out: { type: stdout, inputs: [udp_in], queue_max_events: 10, when_full: drop_newest }
                  dashboard: { type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0 }
                """, directory: try folder("slow"), standardOutput: .heldPipe)
        defer {
            slow.startDrainingStdout()
            for routerd in [stock, tiers.ingest, tiers.store, slow] { _ = try? routerd.terminate() }
        }

        // The shipped scrape config, pointed at these routers, scraping every second, with the shipped rules.
        var config = try String(contentsOf: Self.monitoring.appendingPathComponent("prometheus.yml"), encoding: .utf8)
        let ports = [
            ("127.0.0.1:8080", try stock.listeningPort(stage: "dashboard")),
            ("127.0.0.1:8081", try tiers.ingest.listeningPort(stage: "dashboard")),
            ("127.0.0.1:8082", try tiers.store.listeningPort(stage: "dashboard")),
        ]
        for (address, port) in ports {
            #expect(config.contains(address))
            config = config.replacingOccurrences(of: address, with: "127.0.0.1:\(port)")
        }
        config = config.replacingOccurrences(of: "scrape_interval: 15s", with: "scrape_interval: 1s")
            .replacingOccurrences(of: "evaluation_interval: 15s", with: "evaluation_interval: 1s")
            .replacingOccurrences(
                of: "  - alerts.yml", with: "  - \(Self.monitoring.appendingPathComponent("alerts.yml").path)")
        config += """
                  - targets: ["127.0.0.1:\(try slow.listeningPort(stage: "dashboard"))"]
                    labels: { tier: slow }

            """
        let prometheus = try Prometheus(config: config, directory: try folder("prometheus"))
        defer { prometheus.stop() }

        // Traffic: INFO and acknowledged ERROR entries with a gap in their sequences, invalid ones, signed and
        // tampered diode messages, and more than the slow router's output takes.
        let client = try UDPClient()
        let stockPort = try stock.listeningPort(stage: "udp_in")
        let slowPort = try slow.listeningPort(stage: "udp_in")
        let deadline = Date().addingTimeInterval(90)
        var sequence = 0
        var missing: [(String, String)] = []
        var round = 0
        repeat {
            round += 1
            for _ in 0..<200 {
                sequence += sequence % 97 == 0 ? 2 : 1
                client.send(
                    seedEntry(sequence: sequence, level: sequence % 10 == 0 ? "ERROR" : "INFO"), port: stockPort)
                client.send(seedEntry(sequence: sequence, level: "INFO"), port: slowPort)
            }
            client.send("not json", port: stockPort)
            if round % 5 == 1 {
                try DiodeTests.send(tiers.port, count: 50, clientID: 1)
                try DiodeTests.send(tiers.port, count: 2, clientID: 2, tamper: "signature")
            }
            usleep(200_000)
            if round % 5 == 0 {
                missing = []
                for (place, expression) in try Self.shippedExpressions() where try prometheus.query(expression).isEmpty
                {
                    missing.append((place, expression))
                }
                if missing.isEmpty { break }
            }
        } while Date() < deadline
        let report = missing.map { "\($0.0): \($0.1)" }.joined(separator: "\n")
        #expect(missing.isEmpty, "expressions without data:\n\(report)\nPrometheus:\n\(prometheus.log)")

        // Prometheus loaded the shipped rules, and scraped all four routers.
        let up = try prometheus.query(#"sum(up{job="routerd"})"#)
        let value = ((up.first as? [String: Any])?["value"] as? [Any])?.last as? String
        #expect(value == "4")
        let rules = try prometheus.get("/api/v1/rules").json()
        let groups = (rules["data"] as? [String: Any])?["groups"] as? [[String: Any]] ?? []
        #expect(groups.flatMap { $0["rules"] as? [[String: Any]] ?? [] }.count == 9)
        // The slow router is dropping, by a reason: what the drops alert's measure reads.
        let drops = try prometheus.query(#"sum by (reason) (routerd_events_dropped_total{tier="slow"}) > 0"#)
        #expect(!drops.isEmpty)
    }
}
