import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Reloading the config of the real binary while it runs: SIGHUP, `routerd reload`, `POST /reload`,
/// `--watch-config`, under load, with broken files, and with systemd's notify socket.
@Suite("routerd binary: reload", .serialized)
struct ReloadTests {
    /// The stock topology (examples/router.yaml), with the dashboard's queue blocking instead of dropping, so that
    /// its loss ledger sees every entry the router accepted.
    static func stockConfig() throws -> String {
        let stock = try String(
            contentsOf: TestPaths.packageRoot.appendingPathComponent("examples/router.yaml"), encoding: .utf8)
        let config = stock.replacingOccurrences(of: "when_full: drop_newest", with: "when_full: block")
        #expect(config != stock)
        return config
    }

    /// Replaces `old` with `new` in `text`, recording a failure when `old` is not there (so a variant that
    /// silently equals its base cannot pass).
    static func replacing(_ old: String, with new: String, in text: String) -> String {
        #expect(text.contains(old), "the config does not contain \(old)")
        return text.replacingOccurrences(of: old, with: new)
    }

    /// Writes the config as an editor that saves atomically does: a new file renamed over the old one.
    static func save(_ text: String, to url: URL) throws {
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    /// The outcomes of reloads so far, as logged: applied and refused.
    static func reloadOutcomes(_ routerd: RouterdProcess) -> Int {
        routerd.logs("config reloaded").count + routerd.logs("config reloaded; no stage changed").count
            + routerd.logs("reload refused; the running config is unchanged").count
    }

    /// Sends SIGHUP and waits for the reload's outcome in the log.
    static func reload(_ routerd: RouterdProcess, timeout: Double = 60) throws {
        let before = reloadOutcomes(routerd)
        kill(routerd.process.processIdentifier, SIGHUP)
        try waitUntil("the reload's outcome in the log", timeout: timeout) {
            reloadOutcomes(routerd) > before ? true : nil
        }
    }

    /// The sum of every series of a counter in a `/stats` stage (a number, or `{label: {value: count}}`).
    static func total(_ stage: [String: Any], _ counter: String) -> Int {
        guard let counters = stage["counters"] as? [String: Any], let value = counters[counter] else { return 0 }
        if let number = value as? Int { return number }
        guard let labelled = value as? [String: [String: Int]] else { return 0 }
        return labelled.values.flatMap(\.values).reduce(0, +)
    }

    static func stage(_ name: String, in stats: [String: Any]) throws -> [String: Any] {
        let stages = try #require(stats["stages"] as? [[String: Any]])
        return try #require(stages.first { $0["name"] as? String == name }, "no stage \(name) in /stats")
    }

    /// Sequences by app of every loadtest entry in `logs/server.log` and its archives.
    static func sequencesByApp(in logs: URL) throws -> [String: [Int]] {
        var byApp: [String: [Int]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: logs.path) where name.hasPrefix("server.log") {
            for line in fileLines(logs.appendingPathComponent(name)) {
                guard let data = line.data(using: .utf8),
                    let entry = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                    let app = entry["app"] as? String, let sequence = entry["sequence"] as? Int
                else {
                    Issue.record("not a loadtest entry in \(name): \(line.prefix(200))")
                    continue
                }
                byApp[app, default: []].append(sequence)
            }
        }
        return byApp
    }

    @Test func reload_tenTimesUnderLoadOfTheStockTopology_losesNoDatagramAndNoEntry() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logs = directory.appendingPathComponent("logs")
        let udpPort = try freeUDPPort()
        let dashboardPort = try freeTCPPort()
        let base = try Self.stockConfig()
        let routerd = try RouterdProcess(
            config: base, directory: directory,
            environment: [
                "SERVER_HOST": "127.0.0.1", "SERVER_PORT": "\(udpPort)", "DASHBOARD_PORT": "\(dashboardPort)",
                "LOG_DIR": logs.path, "RCVBUF_SIZE": "\(1 << 30)", "FLUSH_TIMEOUT_SEC": "1",
            ])
        defer { _ = try? routerd.terminate() }
        #expect(try routerd.listeningPort(stage: "udp_in") == udpPort)
        _ = try routerd.listeningPort(stage: "dashboard")
        let configURL = directory.appendingPathComponent("router.yaml")

        let copy = """

              copy:
                type: file
                inputs: [valid]
                path: "${LOG_DIR}/copy.log"

            """
        let copy2 = """

              copy2:
                type: rotating_file
                inputs: [valid]
                path: "${LOG_DIR}/copy2.log"
                flush_count: 1000

            """
        let smaller = Self.replacing(
            "max_size: \"${MAX_LOG_SIZE_MB:-100}MiB\"", with: "max_size: 64MiB",
            in: Self.replacing("flush_count: \"${FLUSH_COUNT:-100}\"", with: "flush_count: 500", in: base))
        let broken = Self.replacing(
            "    port: \"${SERVER_PORT:-5514}\"\n", with: "    port: \"${SERVER_PORT:-5514}\"\n    port: 9\n",
            in: Self.replacing("max_archives: 10", with: "max_archives: 10\n    flush_cuont: 5", in: smaller))
        let biggerBuffer = Self.replacing(
            "send_buffer_bytes: \"${SNDBUF_SIZE:-1048576}\"", with: "send_buffer_bytes: 4MiB", in: smaller)
        let slowerFlush = Self.replacing(
            "flush_interval: \"${FLUSH_TIMEOUT_SEC:-5}s\"", with: "flush_interval: 2s", in: biggerBuffer)
        let deadLetters = Self.replacing(
            "format: dead_letter\n    flush_count: 100", with: "format: dead_letter\n    flush_count: 50",
            in: slowerFlush)
        let steps: [(what: String, config: String, applies: Bool)] = [
            ("add a file output", base + copy, true),
            ("change server_log's rotation", smaller + copy, true),
            ("a broken file", broken + copy, false),
            ("remove the file output", smaller, true),
            ("change the udp input's send buffer", biggerBuffer, true),
            ("add a rotating_file output", biggerBuffer + copy2, true),
            ("change server_log's flush interval", slowerFlush + copy2, true),
            ("remove the rotating_file output", slowerFlush, true),
            ("change dead_letters' flush count", deadLetters, true),
            ("back to the stock file", base, true),
        ]

        // 100,000 entries/s offered by two workers for about 10 s; the reloads run meanwhile. The receive buffer
        // (1 GiB) holds what a debug build on a busy machine has not read yet, so that a loss can only come from
        // the reloads.
        let total = 1_000_000
        let result = Mutex<CommandResult?>(nil)
        let sender = Thread {
            let outcome = try? runRouterd([
                "loadtest", "--port", "\(udpPort)", "--rate", "100000", "--workers", "2", "--total", "\(total)",
                "--ack-wait", "60s", "--json",
            ])
            result.withLock { $0 = outcome }
        }
        sender.start()
        try waitUntil("entries flowing", timeout: 30) {
            let stats = try httpGet(port: dashboardPort, "/stats").json()
            return (stats["received"] as? Int ?? 0) > 50_000 ? true : nil
        }
        var reloadsDuringLoad = 0
        for step in steps {
            try Self.save(step.config, to: configURL)
            try Self.reload(routerd)
            let stats = try httpGet(port: dashboardPort, "/stats").json()
            if (stats["received"] as? Int ?? 0) < total { reloadsDuringLoad += 1 }
            let config = try #require(stats["config"] as? [String: Any])
            let last = try #require(config["last_reload"] as? [String: Any])
            #expect(last["applied"] as? Bool == step.applies, "\(step.what): \(last["errors"] ?? "")")
        }
        try waitUntil("the loadtest to finish", timeout: 120) { result.withLock { $0 } }
        let load = try #require(result.withLock { $0 })
        #expect(load.status == 0, "\(load.stderr)")
        let report = try #require(
            try JSONSerialization.jsonObject(with: Data(load.stdout.utf8)) as? [String: Any], "\(load.stdout)")
        #expect(report["sent"] as? Int == total)
        print("reload under load: achieved \(report["achieved_rate"] ?? "?") entries/s, \(reloadsDuringLoad) reloads")
        #expect(report["errors_acked"] as? Int == report["errors_sent"] as? Int)
        // Most reloads happen while the load runs (the test is about that); it is not a timing assertion.
        #expect(reloadsDuringLoad >= 5, "only \(reloadsDuringLoad) reloads happened during the load")

        // Once the dashboard has counted every entry, everything before it in the graph has run on them too.
        let counted = try? waitUntil("the dashboard to count every entry", timeout: 60) { () -> [String: Any]? in
            let stats = try httpGet(port: dashboardPort, "/stats").json()
            return stats["received"] as? Int == total ? stats : nil
        }
        let stats = try counted ?? httpGet(port: dashboardPort, "/stats").json()
        #expect(stats["received"] as? Int == total)
        let ledger = try #require(stats["ledger"] as? [String: Any])
        let totals = try #require(ledger["totals"] as? [String: Int])
        #expect(totals["received"] == total)
        #expect(totals["missing"] == 0)
        #expect(totals["duplicates"] == 0)
        let udp = try Self.stage("udp_in", in: stats)
        #expect(Self.total(udp, "datagrams") == total)
        #expect(Self.total(udp, "kernel_drops") == 0)
        for output in ["errors_now", "server_log", "dead_letters", "dashboard"] {
            #expect(Self.total(try Self.stage(output, in: stats), "events_dropped") == 0, "\(output)")
        }
        let config = try #require(stats["config"] as? [String: Any])
        #expect(config["generation"] as? Int == 10)
        let refused = routerd.logs("reload refused; the running config is unchanged")
        #expect(refused.count == 1)
        let errors = routerd.logs("config error").compactMap { $0["error"] as? String }
        let duplicateLine =
            try #require(
                broken.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0 == "    port: 9" }) + 1
        #expect(
            errors.contains { $0.hasPrefix("\(configURL.path):\(duplicateLine):5: error: duplicate key 'port'") },
            "\(errors)")
        #expect(errors.contains { $0.contains("unknown option 'flush_cuont'") }, "\(errors)")
        // The send buffer changed on the socket the input already had: the same port, never closed.
        let listening = routerd.logs("listening").filter { $0["stage"] as? String == "udp_in" }
        #expect(listening.count == 3)
        #expect(listening.allSatisfy { ($0["address"] as? String)?.hasSuffix(":\(udpPort)") == true })

        #expect(try routerd.terminate() == 0)
        let byApp = try Self.sequencesByApp(in: logs)
        #expect(byApp.keys.sorted() == ["loadtest-0", "loadtest-1"])
        for (app, sequences) in byApp {
            #expect(sequences.count == total / 2, "\(app)")
            #expect(sequences.sorted() == Array(1...(total / 2)), "\(app): lost or duplicated entries")
        }
        // The outputs that came and went wrote each entry they were given once.
        for name in ["copy.log", "copy2.log"] {
            let lines = fileLines(logs.appendingPathComponent(name))
            #expect(!lines.isEmpty, "\(name)")
            #expect(Set(lines).count == lines.count, "\(name) has duplicates")
        }
    }

    @Test func reload_withABrokenFile_logsEveryErrorKeepsTheGraphAndShowsTheAttemptInStats() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let dashboardPort = try freeTCPPort()
        let pidFile = directory.appendingPathComponent("routerd.pid")
        let config = """
            inputs:
              udp_in: { type: udp, address: 127.0.0.1, port: 0 }
            outputs:
              log: { type: file, inputs: [udp_in], path: "${LOG_DIR}/out.log" }
              dash: { type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: \(dashboardPort) }

            """
        let routerd = try RouterdProcess(
            config: config, directory: directory, environment: ["LOG_DIR": directory.path],
            extraArguments: ["--pid-file", pidFile.path])
        defer { _ = try? routerd.terminate() }
        let port = try routerd.listeningPort(stage: "udp_in")
        _ = try routerd.listeningPort(stage: "dash")
        let configURL = directory.appendingPathComponent("router.yaml")
        let stats = try httpGet(port: dashboardPort, "/stats").json()
        let loaded = try #require(stats["config"] as? [String: Any])
        #expect(loaded["generation"] as? Int == 1)
        #expect(loaded["path"] as? String == configURL.path)
        let shasum = try Spawn.run("/usr/bin/sha256sum", [configURL.path])
        #expect(loaded["sha256"] as? String == shasum.output.split(separator: " ").first.map(String.init))
        #expect(loaded["last_reload"] is NSNull)

        let broken = """
            inputs:
              udp_in: { type: udp, address: 127.0.0.1, port: 0 }
            outputs:
              log: { type: file, inputs: [udp_in], path: "${LOG_DIR}/out.log" }
              log: { type: stdout, inputs: [udp_in] }
              dash: { type: http_stats, inputs: [udp_in, nowhere], address: 127.0.0.1, port: \(dashboardPort) }

            """
        try Self.save(broken, to: configURL)
        let validate = try runRouterd(["validate", "-c", configURL.path], environment: ["LOG_DIR": directory.path])
        let expected = """
            \(configURL.path):5:3: error: duplicate key 'log' (first defined at line 4)
              log: { type: stdout, inputs: [udp_in] }
              ^
            \(configURL.path):6:46: error: outputs.dash: unknown upstream 'nowhere'; stages that can feed it: udp_in
              dash: { type: http_stats, inputs: [udp_in, nowhere], address: 127.0.0.1, port: \(dashboardPort) }
                                                         ^

            """
        #expect(validate.status == 1)
        #expect(validate.stderr == expected)

        let signalled = try runRouterd(["reload", "--pid-file", pidFile.path])
        #expect(signalled.status == 0, "\(signalled.stderr)")
        #expect(signalled.stdout == "sent SIGHUP to routerd (pid \(routerd.process.processIdentifier))\n")
        try routerd.waitForLog("reload refused; the running config is unchanged")
        let logged = routerd.logs("config error").compactMap { $0["error"] as? String }
        #expect(logged.joined(separator: "\n") + "\n" == expected)

        let after = try httpGet(port: dashboardPort, "/stats").json()
        let attempt = try #require((after["config"] as? [String: Any])?["last_reload"] as? [String: Any])
        #expect(attempt["applied"] as? Bool == false)
        #expect(attempt["trigger"] as? String == "SIGHUP")
        #expect(attempt["generation"] as? Int == 1)
        #expect((attempt["errors"] as? [String])?.joined(separator: "\n") == logged.joined(separator: "\n"))
        #expect(attempt["at"] is String)
        #expect((after["config"] as? [String: Any])?["generation"] as? Int == 1)

        // The running graph is the one it was: same socket, same file.
        let client = try UDPClient()
        client.send(seedEntry(sequence: 1, level: "INFO"), port: port)
        try waitUntil("the entry in the file") {
            fileLines(directory.appendingPathComponent("out.log")).count == 1 ? true : nil
        }
        #expect(try routerd.terminate() == 0)
    }

    @Test func postReload_onADashboardWithReloadAPI_appliesTheChangeAndAnswersWithIt() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let dashboardPort = try freeTCPPort()
        func config(extra: String, reloadAPI: Bool = true) -> String {
            """
            inputs:
              udp_in: { type: udp, address: 127.0.0.1, port: 0 }
            outputs:
              dash: { type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: \(dashboardPort), reload_api: \(reloadAPI) }
            \(extra)
            """
        }
        let routerd = try RouterdProcess(
            config: config(extra: ""), directory: directory, environment: ["LOG_DIR": directory.path])
        defer { _ = try? routerd.terminate() }
        let port = try routerd.listeningPort(stage: "udp_in")
        _ = try routerd.listeningPort(stage: "dash")
        let configURL = directory.appendingPathComponent("router.yaml")
        let client = try UDPClient()
        for sequence in 1...5 { client.send(seedEntry(sequence: sequence, level: "INFO"), port: port) }
        try waitUntil("five entries counted") {
            try httpGet(port: dashboardPort, "/stats").json()["received"] as? Int == 5 ? true : nil
        }

        try Self.save(
            config(extra: "  log: { type: file, inputs: [udp_in], path: \"${LOG_DIR}/out.log\" }\n"), to: configURL)
        let applied = try httpRequest(port: dashboardPort, "POST", "/reload", timeout: 60)
        #expect(applied.status == 200, "\(applied.body)")
        let body = try applied.json()
        #expect(body["applied"] as? Bool == true)
        #expect(body["trigger"] as? String == "http")
        #expect(body["generation"] as? Int == 2)
        let stages = try #require(body["stages"] as? [String: [String]])
        #expect(
            stages == [
                "added": ["outputs.log"], "removed": [], "changed": [], "kept": ["inputs.udp_in", "outputs.dash"],
            ])
        let logged = try routerd.waitForLog("config reloaded")
        #expect(logged.first?["added"] as? String == "outputs.log")
        #expect(logged.first?["kept"] as? String == "inputs.udp_in,outputs.dash")

        // The kept dashboard's counts continue; the new output writes what comes now.
        for sequence in 6...8 { client.send(seedEntry(sequence: sequence, level: "INFO"), port: port) }
        try waitUntil("three entries in the new file") {
            fileLines(directory.appendingPathComponent("out.log")).count == 3 ? true : nil
        }
        try waitUntil("eight entries counted") {
            try httpGet(port: dashboardPort, "/stats").json()["received"] as? Int == 8 ? true : nil
        }

        try Self.save("inputs: {}\n", to: configURL)
        let refused = try httpRequest(port: dashboardPort, "POST", "/reload", timeout: 60)
        #expect(refused.status == 422)
        let refusal = try refused.json()
        #expect(refusal["applied"] as? Bool == false)
        #expect(refusal["generation"] as? Int == 2)
        #expect((refusal["errors"] as? [String])?.isEmpty == false)

        // A reload that changes nothing costs nothing: the same stages, no counter reset.
        try Self.save(
            config(extra: "  log: { type: file, inputs: [udp_in], path: \"${LOG_DIR}/out.log\" }\n"), to: configURL)
        let unchanged = try httpRequest(port: dashboardPort, "POST", "/reload", timeout: 60).json()
        #expect(
            (unchanged["stages"] as? [String: [String]])?["kept"] == ["inputs.udp_in", "outputs.dash", "outputs.log"])
        #expect(try httpGet(port: dashboardPort, "/stats").json()["received"] as? Int == 8)
        #expect(try routerd.terminate() == 0)
    }

    @Test func reload_whenTheUDPPortChanges_bindsTheNewPortAndTheOldOneStopsReceiving() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try freeUDPPort()
        let second = try freeUDPPort()
        func config(_ port: UInt16) -> String {
            """
            inputs:
              udp_in: { type: udp, address: 127.0.0.1, port: \(port) }
            outputs:
              log: { type: file, inputs: [udp_in], path: "${LOG_DIR}/out.log" }

            """
        }
        let routerd = try RouterdProcess(
            config: config(first), directory: directory, environment: ["LOG_DIR": directory.path])
        defer { _ = try? routerd.terminate() }
        #expect(try routerd.listeningPort(stage: "udp_in") == first)
        let client = try UDPClient()
        client.send(seedEntry(sequence: 1, level: "INFO"), port: first)
        try Self.save(config(second), to: directory.appendingPathComponent("router.yaml"))
        try Self.reload(routerd)
        let changed = try #require(routerd.logs("config reloaded").first)
        #expect(changed["changed"] as? String == "inputs.udp_in")
        #expect(changed["kept"] as? String == "outputs.log")
        let listening = routerd.logs("listening").compactMap { $0["address"] as? String }
        #expect(listening == ["127.0.0.1:\(first)", "127.0.0.1:\(second)"])
        client.send(seedEntry(sequence: 2, level: "INFO"), port: second)
        try waitUntil("both entries in the file") {
            fileLines(directory.appendingPathComponent("out.log")).count == 2 ? true : nil
        }
        // The old port is closed: binding it succeeds now.
        let probe = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(probe) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = first.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(probe, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        #expect(bound == 0, "the old port is still bound")
        #expect(try routerd.terminate() == 0)
    }

    @Test func watchConfig_anAtomicSave_reloadsOnceAfterTheChangesSettle() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = """
            inputs:
              udp_in: { type: udp, address: 127.0.0.1, port: 0 }
            outputs:
              log: { type: file, inputs: [udp_in], path: "${LOG_DIR}/out.log" }

            """
        let routerd = try RouterdProcess(
            config: config, directory: directory, environment: ["LOG_DIR": directory.path],
            extraArguments: ["--watch-config"])
        defer { _ = try? routerd.terminate() }
        let port = try routerd.listeningPort(stage: "udp_in")
        try routerd.waitForLog("watching the config file")
        // Another file in the directory changing is not the config changing.
        try "x".write(to: directory.appendingPathComponent("other.txt"), atomically: true, encoding: .utf8)
        try Self.save(
            config + "  copy: { type: file, inputs: [udp_in], path: \"${LOG_DIR}/copy.log\" }\n",
            to: directory.appendingPathComponent("router.yaml"))
        let reloaded = try routerd.waitForLog("config reloaded")
        #expect(reloaded.first?["trigger"] as? String == "watch")
        #expect(reloaded.first?["added"] as? String == "outputs.copy")
        let client = try UDPClient()
        client.send(seedEntry(sequence: 1, level: "INFO"), port: port)
        try waitUntil("the entry in both files") {
            fileLines(directory.appendingPathComponent("copy.log")).count == 1
                && fileLines(directory.appendingPathComponent("out.log")).count == 1 ? true : nil
        }
        #expect(Self.reloadOutcomes(routerd) == 1)
        #expect(try routerd.terminate() == 0)
    }

    @Test func systemdNotify_readyReloadingAndStoppingReachTheNotifySocket() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let socketPath = directory.appendingPathComponent("notify.sock").path
        let listener = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(listener) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in socketPath.utf8.enumerated() { raw[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        try #require(bound == 0, "bind \(socketPath): \(String(cString: strerror(errno)))")
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(listener, &buffer, buffer.count, 0)
            return count > 0 ? String(decoding: buffer[..<count], as: UTF8.self) : nil
        }
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0 }
                outputs:
                  log: { type: file, inputs: [udp_in], path: "${LOG_DIR}/out.log" }

                """, directory: directory, environment: ["LOG_DIR": directory.path, "NOTIFY_SOCKET": socketPath])
        defer { _ = try? routerd.terminate() }
        #expect(receive() == "READY=1\nSTATUS=running generation 1")
        kill(routerd.process.processIdentifier, SIGHUP)
        let reloading = try #require(receive())
        #expect(reloading.hasPrefix("RELOADING=1\nMONOTONIC_USEC="))
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let nowMicros = Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
        let stamp = reloading.split(separator: "\n").first { $0.hasPrefix("MONOTONIC_USEC=") }
            .flatMap { Int64($0.dropFirst("MONOTONIC_USEC=".count)) }
        let micros = try #require(stamp)
        #expect(micros <= nowMicros && micros > nowMicros - 20_000_000)
        #expect(receive() == "READY=1\nSTATUS=running generation 2")
        kill(routerd.process.processIdentifier, SIGTERM)
        #expect(receive() == "STOPPING=1\nSTATUS=draining")
        #expect(try routerd.waitForExit() == 0)
    }
}
