import Foundation
import Testing

/// One datagram of the known mix, and what it should count as.
private struct MixEntry {
    var host: String
    var app: String
    var sequence: Int
    var level: String
    var message: String

    var datagram: String { seedEntry(sequence: sequence, level: level, app: app, host: host, message: message) }
}

/// Sender node-1/web: 1...20 with 7 and 8 lost, 12 sent twice, and 15 sent after 17.
/// Ledger: 19 received, 2 missing (7, 8), 1 duplicate (12), 1 out of order (15, which fills its gap).
private let webOrder = [1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 12, 13, 14, 16, 17, 15, 18, 19, 20]
private let scriptMessage = "<script>alert('x')</script> & <b>bold</b>"

private let webEntries: [MixEntry] = webOrder.map { sequence in
    switch sequence {
    case 1: MixEntry(host: "node-1", app: "web", sequence: 1, level: "DEBUG", message: "starting")
    case 3: MixEntry(host: "node-1", app: "web", sequence: 3, level: "WARNING", message: "slow request")
    case 5: MixEntry(host: "node-1", app: "web", sequence: 5, level: "ERROR", message: "db timeout")
    case 10: MixEntry(host: "node-1", app: "web", sequence: 10, level: "ERROR", message: scriptMessage)
    default: MixEntry(host: "node-1", app: "web", sequence: sequence, level: "INFO", message: "ok \(sequence)")
    }
}

/// Sender node-2/api: 1...10 in order, nothing lost.
private let apiEntries: [MixEntry] = (1...10).map { sequence in
    switch sequence {
    case 4: MixEntry(host: "node-2", app: "api", sequence: 4, level: "warn", message: "retrying")
    case 9: MixEntry(host: "node-2", app: "api", sequence: 9, level: "CRITICAL", message: "disk full")
    default: MixEntry(host: "node-2", app: "api", sequence: sequence, level: "INFO", message: "served \(sequence)")
    }
}

private let invalidDatagrams = ["not json at all", "{\"level\":\"INFO\",\"message\":\"no other fields\"}", "[1,2,3]"]

@Suite("routerd binary: http_stats dashboard, /stats, /health, /metrics", .serialized)
struct DashboardTests {
    private func config(directory: URL, extraOutputs: String = "") -> String {
        """
        inputs:
          udp_in: { type: udp, address: 127.0.0.1, port: 0 }
        filters:
          valid: { type: validate_json, inputs: [udp_in] }
        outputs:
          stats:
            type: http_stats
            inputs: [valid, valid.invalid]
            address: 127.0.0.1
            port: 0
            recent_errors: 5
          archive: { type: file, inputs: [valid], path: "\(directory.path)/archive.log" }
        \(extraOutputs)
        """
    }

    @Test func endpoints_afterAKnownMix_reportExactNumbersAndTheBrowserShowsThemLive() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(config: config(directory: directory), directory: directory)
        let udpPort = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")
        let client = try UDPClient()

        // Phase 1: the web sender and the invalid datagrams; the browser opens on that.
        client.send(webEntries.map(\.datagram) + invalidDatagrams, port: udpPort)
        try waitForReceived(22, port: httpPort)
        let browser = try DashboardBrowser(url: "http://127.0.0.1:\(httpPort)/")
        let first = try browser.waitForTotal(22)
        #expect(first["missing"] as? String == "2")
        #expect(first["marker"] as? String == "same-page")

        // Phase 2: the api sender; the same page must pick it up on a refresh.
        client.send(apiEntries.map(\.datagram), port: udpPort)
        try waitForReceived(32, port: httpPort)
        try waitUntil("the archive to hold 29 entries") {
            fileLines(directory.appendingPathComponent("archive.log")).count == 29 ? true : nil
        }

        let stats = try httpGet(port: httpPort, "/stats")
        #expect(stats.status == 200)
        #expect(stats.headers["content-type"] == "application/json")
        let json = try stats.json()
        #expect(json["schema"] as? Int == 1)
        #expect(json["stage"] as? String == "stats")
        #expect(json["received"] as? Int == 32)
        #expect(json["invalid"] as? Int == 3)
        #expect(json["rate_window_seconds"] as? Int == 10)
        #expect((json["rate_per_second"] as? Double ?? 0) > 0)
        #expect((json["uptime_seconds"] as? Double ?? 0) > 0)
        let levels = try #require(json["levels"] as? [String: Int])
        #expect(levels == ["DEBUG": 1, "INFO": 23, "WARNING": 2, "ERROR": 2, "CRITICAL": 1, "UNKNOWN": 0])
        #expect((json["health"] as? [String: Any])?["status"] as? String == "ok")

        let recent = try #require(json["recent_errors"] as? [String: Any])
        #expect(recent["capacity"] as? Int == 5)
        #expect(recent["seen"] as? Int == 3)
        let errors = try #require(recent["entries"] as? [[String: Any]])
        #expect(errors.map { $0["sequence"] as? Int } == [9, 10, 5])
        #expect(errors.map { $0["level"] as? String } == ["CRITICAL", "ERROR", "ERROR"])
        #expect(errors.map { $0["host"] as? String } == ["node-2", "node-1", "node-1"])
        #expect(errors.map { $0["app"] as? String } == ["api", "web", "web"])
        #expect(errors.map { $0["message"] as? String } == ["disk full", scriptMessage, "db timeout"])
        #expect(errors.allSatisfy { $0["timestamp"] as? String == "2026-11-22T10:00:00.123456Z" })

        let ledger = try #require(json["ledger"] as? [String: Any])
        #expect(ledger["window"] as? Int == 4096)
        #expect(ledger["senders"] as? Int == 2)
        #expect(ledger["evictions"] as? Int == 0)
        #expect(ledger["unsequenced"] as? Int == 0)
        let totals = try #require(ledger["totals"] as? [String: Int])
        #expect(
            totals == [
                "received": 29, "missing": 2, "duplicates": 1, "out_of_order": 1, "too_old": 0, "restarts": 0,
            ])
        let senders = try #require(ledger["entries"] as? [[String: Any]])
        #expect(senders.count == 2)
        let web = try #require(senders.first)
        #expect(web["host"] as? String == "node-1")
        #expect(web["app"] as? String == "web")
        #expect(web["received"] as? Int == 19)
        #expect(web["missing"] as? Int == 2)
        #expect(web["duplicates"] as? Int == 1)
        #expect(web["out_of_order"] as? Int == 1)
        #expect(web["newest_sequence"] as? Int == 20)
        let api = try #require(senders.last)
        #expect(api["host"] as? String == "node-2")
        #expect(api["received"] as? Int == 10)
        #expect(api["missing"] as? Int == 0)
        #expect(api["newest_sequence"] as? Int == 10)

        let stages = try #require(json["stages"] as? [[String: Any]])
        #expect(stages.map { $0["name"] as? String } == ["udp_in", "valid", "stats", "archive"])
        let udpCounters = try #require(stages[0]["counters"] as? [String: Any])
        #expect(udpCounters["datagrams"] as? Int == 32)
        #expect(udpCounters["kernel_drops"] as? Int == 0)
        let validCounters = try #require(stages[1]["counters"] as? [String: Any])
        #expect((validCounters["events_out"] as? [String: [String: Int]])?["port"] == ["default": 29, "invalid": 3])
        let invalidReasons = (validCounters["invalid"] as? [String: [String: Int]])?["reason"]
        #expect(invalidReasons?["not_json"] == 1)
        #expect(invalidReasons?["missing_field"] == 1)
        #expect(invalidReasons?["not_object"] == 1)
        #expect(stages[3]["role"] as? String == "output")
        let archiveQueue = try #require(stages[3]["queue"] as? [String: Any])
        #expect(archiveQueue["capacity"] as? Int == 20000)
        #expect(archiveQueue["when_full"] as? String == "block")
        #expect((stages[3]["counters"] as? [String: Any])?["events_in"] as? Int == 29)

        // The page, refreshed in place (the marker set after the first load is still there).
        let page = try browser.waitForTotal(32)
        #expect(page["marker"] as? String == "same-page")
        #expect((page["refreshes"] as? Int ?? 0) >= 2)
        #expect(page["missing"] as? String == "2")
        #expect(page["errors_seen"] as? String == "3")
        #expect(page["status"] as? String == "ok")
        #expect(
            page["levels"] as? [String: String] == [
                "DEBUG": "1", "INFO": "23", "WARNING": "2", "ERROR": "2", "CRITICAL": "1",
            ])
        let rows = try #require(page["errors"] as? [[String]])
        #expect(rows.count == 3)
        #expect(rows.first == ["2026-11-22T10:00:00.123456Z", "CRITICAL", "9", "node-2", "api", "disk full"])
        // The message shows as text: escaped in the HTML, and no element was made from it.
        #expect(rows.dropFirst().first?.last == scriptMessage)
        let errorsHTML = page["errors_html"] as? String ?? ""
        #expect(errorsHTML.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"))
        #expect(!errorsHTML.contains("<script>"))
        #expect(!errorsHTML.contains("<b>"))
        #expect(page["script_elements_in_tables"] as? Int == 0)
        let ledgerRows = try #require(page["ledger"] as? [[String]])
        #expect(ledgerRows.first?.prefix(6) == ["node-1", "web", "19", "2", "1", "1"])

        let health = try httpGet(port: httpPort, "/health")
        #expect(health.status == 200)
        #expect(health.body == "{\"status\":\"ok\"}")

        let metrics = try httpGet(port: httpPort, "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.headers["content-type"]?.hasPrefix("text/plain; version=0.0.4") == true)
        let (promtoolStatus, promtoolOutput) = try ExternalTools.promtoolCheck(metrics.body)
        #expect(promtoolStatus == 0, "promtool check metrics: \(promtoolOutput)")
        let lines = Set(metrics.body.split(separator: "\n").map(String.init))
        for expected in [
            "routerd_datagrams_total{stage=\"udp_in\",type=\"udp\"} 32",
            "routerd_kernel_drops_total{stage=\"udp_in\",type=\"udp\"} 0",
            "routerd_events_out_total{stage=\"valid\",type=\"validate_json\",port=\"invalid\"} 3",
            "routerd_invalid_total{stage=\"valid\",type=\"validate_json\",reason=\"not_json\"} 1",
            "routerd_events_in_total{stage=\"archive\",type=\"file\"} 29",
            "routerd_queue_capacity_events{stage=\"archive\",type=\"file\"} 20000.0",
            "routerd_rotations_total{stage=\"archive\",type=\"file\"} 0",
            "routerd_ledger_received_total{stage=\"stats\"} 29",
            "routerd_ledger_duplicates_total{stage=\"stats\"} 1",
            "routerd_ledger_out_of_order_total{stage=\"stats\"} 1",
            "routerd_ledger_missing{stage=\"stats\"} 2.0",
            "routerd_ledger_senders{stage=\"stats\"} 2.0",
            "routerd_stage_healthy{stage=\"archive\",type=\"file\",role=\"output\"} 1.0",
            "routerd_draining 0.0",
            "# TYPE routerd_events_dropped_total counter",
            "# TYPE process_cpu_seconds_total counter",
        ] {
            #expect(lines.contains(expected), "missing from /metrics: \(expected)")
        }
        let rss = lines.first { $0.hasPrefix("process_resident_memory_bytes ") }
        #expect((rss?.split(separator: " ").last.flatMap { Double($0) } ?? 0) > 1_000_000)

        let dashboard = try httpGet(port: httpPort, "/")
        #expect(dashboard.status == 200)
        #expect(dashboard.headers["content-type"] == "text/html; charset=utf-8")
        #expect(!dashboard.body.contains("http://") && !dashboard.body.contains("https://"))

        #expect(try routerd.terminate() == 0)
        #expect(fileLines(directory.appendingPathComponent("archive.log")).count == 29)
    }

    @Test func page_whenEveryFieldOfAnEntryHoldsMarkupAndScript_showsItAsTextAndRunsNothing() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(
            config: config(directory: directory).replacingOccurrences(
                of: "recent_errors: 5", with: "recent_errors: 50"),
            directory: directory)
        let udpPort = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")
        // Each payload, had it reached the markup, would record that it ran (or, for the style, hide the page).
        func payloads(_ field: String) -> [String] {
            let run = "(window.__xssRan=window.__xssRan||[]).push('\(field)')"
            return [
                "<script>\(run)</script>", "<img src=x onerror=\"\(run)\">", "\"><svg onload=\"\(run)\">",
                "</td></tr><iframe srcdoc=\"<script>parent.\(run)</script>\"></iframe>",
                "<a href=\"javascript:\(run)\">x</a>", "<style>body{display:none}</style><b>\(field)</b>",
            ]
        }
        let fields = ["timestamp", "host", "app", "message"]
        let hostile = (0..<6).map { index in
            Dictionary(uniqueKeysWithValues: fields.map { ($0, payloads($0)[index]) })
        }
        var datagrams: [String] = []
        for (index, entry) in hostile.enumerated() {
            var object: [String: Any] = entry
            object["sequence"] = index + 1
            object["level"] = "ERROR"
            datagrams.append(String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
        }
        // And a level that is markup: counted as UNKNOWN, shown nowhere as markup.
        datagrams.append(
            seedEntry(sequence: 1, level: "<img src=x onerror=alert(1)>", app: "other", message: "level"))
        try UDPClient().send(datagrams, port: udpPort)
        try waitForReceived(datagrams.count, port: httpPort)

        let browser = try DashboardBrowser(url: "http://127.0.0.1:\(httpPort)/")
        let page = try browser.waitForTotal(datagrams.count)
        let rows = try #require(page["errors"] as? [[String]])
        #expect(rows.count == hostile.count)
        // Newest first: each cell shows the payload as text, exactly.
        for (row, entry) in zip(rows, hostile.reversed()) {
            #expect(row.count == 6)
            #expect(row[0] == entry["timestamp"])
            #expect(row[3] == entry["host"])
            #expect(row[4] == entry["app"])
            #expect(row[5] == entry["message"])
        }
        let ledgerHosts = Set((page["ledger"] as? [[String]] ?? []).compactMap(\.first))
        #expect(ledgerHosts.isSuperset(of: hostile.compactMap { $0["host"] }))
        #expect(page["injected_elements"] as? Int == 0)
        #expect((page["xss_ran"] as? [Any])?.isEmpty == true, "payloads ran: \(page["xss_ran"] ?? "?")")
        #expect((page["csp_violations"] as? [Any])?.isEmpty == true, "CSP violations: \(page["csp_violations"] ?? "?")")
        #expect(page["status"] as? String == "ok")
        #expect(try routerd.terminate() == 0)
    }

    @Test func health_duringAGracefulShutdown_says503DrainingUntilTheDrainEnds() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Nobody reads routerd's stdout until the test says so: the stdout output blocks, and holds the drain open.
        let config = """
            inputs:
              udp_in: { type: udp, address: 127.0.0.1, port: 0 }
            filters:
              valid: { type: validate_json, inputs: [udp_in] }
            outputs:
              stats: { type: http_stats, inputs: [valid], address: 127.0.0.1, port: 0 }
              console: { type: stdout, inputs: [valid], queue_max_events: 100000 }
            """
        let routerd = try RouterdProcess(config: config, directory: directory, standardOutput: .heldPipe)
        let udpPort = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")
        let client = try UDPClient()
        let count = 3000
        client.send(
            (1...count).map { seedEntry(sequence: $0, level: "INFO", message: String(repeating: "x", count: 100)) },
            port: udpPort)
        try waitForReceived(count, port: httpPort)
        #expect(try httpGet(port: httpPort, "/health").body == "{\"status\":\"ok\"}")

        kill(routerd.process.processIdentifier, SIGTERM)
        let draining = try waitUntil("/health to say draining") { () -> HTTPReply? in
            let reply = try httpGet(port: httpPort, "/health")
            return reply.status == 503 ? reply : nil
        }
        #expect(draining.body == "{\"status\":\"draining\"}")
        let stats = try httpGet(port: httpPort, "/stats").json()
        #expect((stats["health"] as? [String: Any])?["status"] as? String == "draining")
        #expect(stats["received"] as? Int == count)
        let metrics = try httpGet(port: httpPort, "/metrics").body
        #expect(metrics.contains("\nrouterd_draining 1.0\n"))

        routerd.startDrainingStdout()
        #expect(try routerd.waitForExit() == 0)
        #expect(routerd.stdoutLines().count == count)
    }

    @Test func health_whenAnOutputFailsAndDrops_saysDegradedWithReasonsButStays200() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Writes to /dev/full fail (ENOSPC): the output holds entries, then drops past queue_max_events.
        let extra = "  broken: { type: file, inputs: [valid], path: /dev/full, queue_max_events: 5, drain_timeout: 1s }"
        let routerd = try RouterdProcess(
            config: config(directory: directory, extraOutputs: extra), directory: directory)
        let udpPort = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")
        let client = try UDPClient()
        for sequence in 1...40 {
            client.send(seedEntry(sequence: sequence, level: "INFO"), port: udpPort)
            usleep(2_000)
        }
        try waitForReceived(40, port: httpPort)
        let health = try waitUntil("/health to report the drops") { () -> HTTPReply? in
            let reply = try httpGet(port: httpPort, "/health")
            return reply.body.contains("events dropped in the last 10 s") ? reply : nil
        }
        #expect(health.status == 200)
        let body = try health.json()
        #expect(body["status"] as? String == "degraded")
        let reasons = try #require(body["reasons"] as? [String])
        #expect(reasons.contains { $0.hasPrefix("outputs.broken: ") && $0.contains("No space left on device") })
        #expect(
            reasons.contains {
                $0.hasPrefix("outputs.broken: ") && $0.hasSuffix(" events dropped in the last 10 s (held_full)")
            })
        #expect(!reasons.contains { $0.hasPrefix("outputs.archive") })

        let metrics = try httpGet(port: httpPort, "/metrics").body
        #expect(metrics.contains("\nrouterd_degraded 1.0\n"))
        #expect(metrics.contains("\nrouterd_stage_healthy{stage=\"broken\",type=\"file\",role=\"output\"} 0.0\n"))
        let (promtoolStatus, promtoolOutput) = try ExternalTools.promtoolCheck(metrics)
        #expect(promtoolStatus == 0, "promtool check metrics: \(promtoolOutput)")
        // /dev/full never takes the entries it holds: the shutdown drops them after its drain_timeout, says so and
        // exits 3.
        #expect(try routerd.terminate() == 3)
        let stopped = try #require(routerd.logs("stopped; entries were dropped at shutdown").first)
        #expect((stopped["by_output"] as? String)?.hasPrefix("broken=") == true, "\(stopped)")
    }

    @Test func start_whenThePortIsTaken_failsBeforeAnythingRunsAndNamesTheStage() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try RouterdProcess(config: config(directory: directory), directory: directory)
        let taken = try first.listeningPort(stage: "stats")
        let path = directory.appendingPathComponent("second.yaml").path
        try """
        inputs:
          udp_in: { type: udp, address: 127.0.0.1, port: 0 }
        outputs:
          stats: { type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: \(taken) }
        """.write(toFile: path, atomically: false, encoding: .utf8)
        let second = try runRouterd(["-c", path])
        #expect(second.status != 0)
        #expect(
            second.stderr.contains(
                "outputs.stats: cannot start: cannot bind 127.0.0.1:\(taken): Address already in use"))
        #expect(try first.terminate() == 0)
    }

    private func waitForReceived(_ count: Int, port: UInt16) throws {
        try waitUntil("/stats to count \(count) entries") { () -> Bool? in
            try httpGet(port: port, "/stats").json()["received"] as? Int == count ? true : nil
        }
    }
}
