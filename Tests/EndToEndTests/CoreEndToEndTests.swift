import Foundation
import Testing

@Suite("routerd binary: core")
struct CoreEndToEndTests {
    @Test func udpToStdout_whenSIGTERMRightAfterSending_printsEveryDatagramAndExitsZero() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = """
            inputs:
              udp_in: { type: udp, address: 127.0.0.1, port: 0, receive_buffer_bytes: 16MiB }
            outputs:
              out: { type: stdout, inputs: [udp_in] }
            """
        let routerd = try RouterdProcess(config: config, directory: directory)
        let port = try routerd.listeningPort(stage: "udp_in")
        let client = try UDPClient()
        let datagrams = (0..<10_000).map { "{\"n\":\($0)}\n" }
        client.send(datagrams, port: port)
        // SIGTERM at once: whatever the kernel already accepted must still come out.
        let status = try routerd.terminate()
        #expect(status == 0)
        let printed = fileLines(routerd.stdoutURL)
        #expect(printed.count == 10_000)
        #expect(Set(printed) == Set((0..<10_000).map { "{\"n\":\($0)}" }))
        let drops = routerd.logs("stopped")
        #expect(drops.count == 1)
    }

    @Test func validate_whenConfigHasSeveralMistakes_reportsEachWithLineAndColumn() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("router.yaml").path
        try """
        inputs:
          udp_in: { type: udp, port: 99999 }
        filters:
          errors: { type: match_levl, inputs: [udp_in] }
        outputs:
          archive:
            type: rotating_file
            inputs: [udp_inn]
            path: /tmp/x.log
            max_sise: 10MiB
        """.write(toFile: path, atomically: false, encoding: .utf8)
        let result = try runRouterd(["validate", "-c", path])
        #expect(result.status != 0)
        let expected = """
            \(path):2:30: error: inputs.udp_in: option 'port' must be between 0 and 65535, got 99999
              udp_in: { type: udp, port: 99999 }
                                         ^
            \(path):4:19: error: filters.errors: unknown filter type 'match_levl' (did you mean 'match_level'?)
              errors: { type: match_levl, inputs: [udp_in] }
                              ^
            \(path):8:14: error: outputs.archive: unknown upstream 'udp_inn' (did you mean 'udp_in'?)
                inputs: [udp_inn]
                         ^
            \(path):10:5: error: outputs.archive: unknown option 'max_sise' (did you mean 'max_size'?)
                max_sise: 10MiB
                ^

            """
        #expect(result.stderr == expected)
    }

    @Test func validate_whenConfigIsGood_printsOkAndExitsZero() throws {
        let result = try runRouterd(
            ["validate", "-c", TestPaths.packageRoot.appendingPathComponent("examples/router.yaml").path])
        #expect(result.status == 0)
        #expect(result.stdout.contains(": ok (1 inputs, 3 filters,"))
    }

    @Test func stages_asJSON_listsEveryStageWithItsOptions() throws {
        let result = try runRouterd(["stages", "--format", "json"])
        #expect(result.status == 0)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let stages = try #require(object["stages"] as? [[String: Any]])
        let types = Set(stages.compactMap { $0["type"] as? String })
        for expected in ["udp", "validate_json", "match_level", "ack", "rotating_file", "file", "stdout"] {
            #expect(types.contains(expected), "missing stage \(expected)")
        }
        let udp = try #require(stages.first { $0["type"] as? String == "udp" })
        let options = try #require(udp["options"] as? [[String: Any]])
        let port = try #require(options.first { $0["name"] as? String == "port" })
        #expect(port["default"] as? Int == 5514)
        #expect((port["description"] as? String)?.isEmpty == false)
    }

    @Test func docsStagesMarkdown_isCurrentWithTheDeclarations() throws {
        let result = try runRouterd(["stages", "--format", "markdown"])
        #expect(result.status == 0)
        let committed = try String(
            contentsOf: TestPaths.packageRoot.appendingPathComponent("docs/stages.md"), encoding: .utf8)
        #expect(committed == result.stdout, "docs/stages.md is stale: run `make docs`")
    }

    @Test func graph_printsEveryStageWithItsUpstreams() throws {
        let example = TestPaths.packageRoot.appendingPathComponent("examples/router.yaml").path
        let text = try runRouterd(["graph", "-c", example])
        #expect(text.status == 0)
        #expect(text.stdout.contains("outputs.server_log (rotating_file) <- errors.unmatched\n"))
        let dot = try runRouterd(["graph", "-c", example, "--format", "dot"])
        #expect(dot.stdout.hasPrefix("digraph routerd {"))
        #expect(dot.stdout.contains("\"errors\" -> \"server_log\" [label=\"unmatched\"];"))
    }

    @Test func run_whenStageCannotStart_namesTheStageAndExitsNonZero() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let blocker = try UDPClient()
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(blocker.descriptor, $0, &length) }
        }
        let taken = UInt16(bigEndian: address.sin_port)
        let config = """
            inputs:
              udp_in: { type: udp, address: 127.0.0.1, port: \(taken) }
            outputs:
              out: { type: stdout, inputs: [udp_in] }
            """
        let routerd = try RouterdProcess(config: config, directory: directory)
        let status = try routerd.waitForExit()
        #expect(status == 1)
        #expect(
            routerd.logLines.joined().contains("error: inputs.udp_in: cannot start: cannot bind UDP 127.0.0.1:\(taken)")
        )
    }

    @Test func udpWorkers_shareOnePortAndReceiveFromEverySender() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = """
            inputs:
              udp_in: { type: udp, address: 127.0.0.1, port: 0, workers: 3 }
            outputs:
              out: { type: stdout, inputs: [udp_in] }
            """
        let routerd = try RouterdProcess(config: config, directory: directory)
        let port = try routerd.listeningPort(stage: "udp_in")
        #expect(routerd.logs("listening").first?["workers"] as? String == "3")
        var expected: Set<String> = []
        for sender in 0..<8 {
            let client = try UDPClient()
            let datagrams = (0..<500).map { "{\"sender\":\(sender),\"n\":\($0)}" }
            expected.formUnion(datagrams)
            client.send(datagrams, port: port)
        }
        #expect(try routerd.terminate() == 0)
        #expect(Set(fileLines(routerd.stdoutURL)) == expected)
        #expect(fileLines(routerd.stdoutURL).count == expected.count)
    }

    /// A router whose one output writes to a FIFO nobody reads (its open(2) blocks, so a graceful drain cannot
    /// finish by itself), holding one entry; `router` is put above the stages.
    private func stuckRouter(in directory: URL, router: String = "") throws -> RouterdProcess {
        let fifo = directory.appendingPathComponent("stuck.fifo").path
        #expect(mkfifo(fifo, 0o644) == 0)
        let config =
            router + """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0 }
                outputs:
                  stuck: { type: file, inputs: [udp_in], path: \(fifo) }
                """
        let routerd = try RouterdProcess(config: config, directory: directory)
        let port = try routerd.listeningPort(stage: "udp_in")
        try UDPClient().send("{\"n\":1}", port: port)
        usleep(200_000)
        return routerd
    }

    @Test func secondSignal_duringADrainThatCannotFinish_exitsAtOnce() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try stuckRouter(in: directory)
        kill(routerd.process.processIdentifier, SIGTERM)
        try routerd.waitForLog("inputs stopped; draining outputs")
        #expect(routerd.process.isRunning)
        kill(routerd.process.processIdentifier, SIGTERM)
        let status = try routerd.waitForExit(timeout: 10)
        #expect(status == 1)
        let exitLine = try #require(routerd.logs("second signal; exiting at once").first)
        #expect(exitLine["events_not_written"] as? String == "1")
    }

    @Test func shutdown_thatTakesLongerThanShutdownTimeout_exitsOneAndSaysWhatWasNotWritten() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try stuckRouter(in: directory, router: "router:\n  shutdown_timeout: 1s\n")
        let started = Date()
        kill(routerd.process.processIdentifier, SIGTERM)
        let status = try routerd.waitForExit(timeout: 10)
        #expect(status == 1)
        #expect(Date().timeIntervalSince(started) < 5)
        let exitLine = try #require(routerd.logs("shutdown timed out; exiting with events still queued").first)
        #expect(exitLine["events_not_written"] as? String == "1")
    }

    @Test func kernelDrops_whileTheInputWaitsOnAFullQueue_showInStatsAndHealth() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // The output cannot write (a FIFO nobody reads) and its queue holds 5: the input waits on it, the socket's
        // small buffer fills, and the kernel drops the rest.
        let fifo = directory.appendingPathComponent("stuck.fifo").path
        #expect(mkfifo(fifo, 0o644) == 0)
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0, receive_buffer_bytes: 4096 }
                outputs:
                  stuck: { type: file, inputs: [udp_in], path: \(fifo), queue_max_events: 5 }
                  stats: { type: http_stats, inputs: [udp_in], address: 127.0.0.1, port: 0, when_full: drop_newest }
                """, directory: directory)
        defer {
            kill(routerd.process.processIdentifier, SIGKILL)
            _ = try? routerd.waitForExit(timeout: 10)
        }
        let udpPort = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")
        try UDPClient().send((1...2000).map { seedEntry(sequence: $0, level: "INFO") }, port: udpPort)
        let drops = try waitUntil("kernel_drops to show while the input waits", timeout: 5) { () -> Int? in
            let stages = try httpGet(port: httpPort, "/stats").json()["stages"] as? [[String: Any]] ?? []
            let udp = stages.first { $0["name"] as? String == "udp_in" }?["counters"] as? [String: Any]
            let value = udp?["kernel_drops"] as? Int ?? 0
            return value > 0 ? value : nil
        }
        #expect(drops > 0)
        let health = try waitUntil("/health to name the kernel's drops", timeout: 5) { () -> [String]? in
            let reasons = try httpGet(port: httpPort, "/health").json()["reasons"] as? [String] ?? []
            return reasons.contains { $0.hasPrefix("inputs.udp_in: the kernel dropped ") } ? reasons : nil
        }
        #expect(!health.isEmpty)
    }
}
