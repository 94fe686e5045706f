import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `routerd top` against a real routerd under traffic: in a real terminal (tmux), and through a pipe.
@Suite("routerd top")
struct TopTests {
    static let config = """
        inputs:
          udp_in: { type: udp, address: 127.0.0.1, port: 0 }
        filters:
          valid: { type: validate_json, inputs: [udp_in] }
        outputs:
          archive: { type: file, inputs: [valid], path: archive.log, queue_max_events: 5000 }
          stats: { type: http_stats, inputs: [valid, valid.invalid], address: 127.0.0.1, port: 0 }
        """

    /// Sends entries (and some invalid ones) from a thread of its own until stopped.
    final class Traffic: Sendable {
        private let running = Atomic<Bool>(true)

        init(port: UInt16) throws {
            _ = try UDPClient()  // fails here, not in the thread, when no socket can be made
            let thread = Thread { [self] in
                guard let client = try? UDPClient() else { return }
                var sequence = 0
                while running.load(ordering: .relaxed) {
                    for _ in 0..<50 {
                        sequence += 1
                        client.send(seedEntry(sequence: sequence, level: "INFO"), port: port)
                    }
                    client.send("not json", port: port)
                    usleep(20_000)
                }
            }
            thread.start()
        }

        func stop() { running.store(false, ordering: .relaxed) }
    }

    /// A tmux server of the test's own (`-L`), so that no other tmux session is touched.
    struct Tmux {
        let executable: String
        let socket = "routerd-top-\(UUID().uuidString.prefix(8))"

        /// Runs tmux to completion with posix_spawn and waitpid. Its output goes to a file, not a pipe: the tmux
        /// server that `new-session` starts keeps the descriptors it inherited, so a pipe would never reach its end
        /// (and Foundation's Process was seen not to notice the exit of the tmux client that started the server).
        @discardableResult
        func run(_ arguments: [String]) throws -> (Int32, String) {
            let output = FileManager.default.temporaryDirectory.appendingPathComponent("tmux-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: output) }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, output.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            let argv = ([executable, "-L", socket] + arguments).map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            var pid: pid_t = 0
            let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
            guard spawned == 0 else { throw TestFailure("cannot run tmux: \(String(cString: strerror(spawned)))") }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let exitStatus = (status & 0x7F) == 0 ? (status >> 8) & 0xFF : 128 + (status & 0x7F)
            return (exitStatus, (try? String(contentsOf: output, encoding: .utf8)) ?? "")
        }

        func screen() throws -> String { try run(["capture-pane", "-p", "-t", "top"]).1 }
    }

    @Test func top_inATerminal_showsEveryStageWithLiveRatesAndQuitsOnQ() throws {
        let tmux = Tmux(executable: try ExternalTools.find(["tmux"], package: "tmux"))
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(config: Self.config, directory: directory)
        defer { _ = try? routerd.terminate() }
        let traffic = try Traffic(port: try routerd.listeningPort(stage: "udp_in"))
        defer { traffic.stop() }
        let httpPort = try routerd.listeningPort(stage: "stats")
        defer { _ = try? tmux.run(["kill-server"]) }
        let command = "\(TestPaths.binary) top --url http://127.0.0.1:\(httpPort)"
        let (status, output) = try tmux.run(["new-session", "-d", "-s", "top", "-x", "150", "-y", "30", command])
        #expect(status == 0, "\(output)")

        // The second refresh has rates: a row per stage, with entries per second flowing through udp_in.
        let screen = try waitUntil("top to show rates for udp_in", timeout: 15) { () -> String? in
            let screen = try tmux.screen()
            guard let row = screen.split(separator: "\n").first(where: { $0.hasPrefix("udp_in ") }) else { return nil }
            let cells = row.split(separator: " ", omittingEmptySubsequences: true)
            guard cells.count > 3, let rate = Double(cells[2]), rate > 0 else { return nil }
            return screen
        }
        #expect(screen.contains("routerd top  http://127.0.0.1:\(httpPort)/stats  health: ok"))
        let header = screen.split(separator: "\n").first { $0.hasPrefix("STAGE") }.map(String.init) ?? ""
        #expect(
            header.split(separator: " ") == [
                "STAGE", "TYPE", "IN/s", "OUT/s", "IN", "OUT", "QUEUE", "BUFFER", "HEALTH", "DROPS",
            ])
        for stage in ["udp_in", "valid", "archive", "stats"] {
            #expect(screen.contains("\n\(stage) "), "no row for \(stage):\n\(screen)")
        }
        let archive = screen.split(separator: "\n").first { $0.hasPrefix("archive ") }.map(String.init) ?? ""
        #expect(archive.contains("/5000 "), "the archive row shows its queue: \(archive)")
        #expect(archive.contains(" ok"), "\(archive)")

        // It refreshes: the IN total of udp_in grows between two screens a little over a second apart.
        func total(_ screen: String) -> Int? {
            screen.split(separator: "\n").first { $0.hasPrefix("udp_in ") }
                .flatMap { Int($0.split(separator: " ")[4]) }
        }
        let first = try #require(total(screen))
        try waitUntil("the IN total of udp_in to grow", timeout: 10) {
            (total(try tmux.screen()) ?? 0) > first ? true : nil
        }

        try tmux.run(["send-keys", "-t", "top", "q"])
        try waitUntil("top to quit on q", timeout: 10) {
            try tmux.run(["has-session", "-t", "top"]).0 != 0 ? true : nil
        }
    }

    @Test func top_throughAPipe_printsPlainLinesPerStageAndStopsAfterCount() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(config: Self.config, directory: directory)
        defer { _ = try? routerd.terminate() }
        let traffic = try Traffic(port: try routerd.listeningPort(stage: "udp_in"))
        defer { traffic.stop() }
        let httpPort = try routerd.listeningPort(stage: "stats")
        let result = try runRouterd([
            "top", "--url", "http://127.0.0.1:\(httpPort)", "--count", "2", "--interval", "0.5",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 10, "\(result.stdout)")
        #expect(!result.stdout.contains("\u{1B}"), "no terminal control sequences through a pipe")
        let second = lines.suffix(5)
        #expect(second.first?.contains(" router health=ok received=") == true)
        let valid = try #require(second.first { $0.contains(" stage=valid ") })
        let rate = valid.split(separator: " ").first { $0.hasPrefix("in_per_s=") }.map { $0.dropFirst(9) }
        #expect(Double(rate ?? "") ?? 0 > 0, "\(valid)")
        let drops = valid.split(separator: " ").first { $0.hasPrefix("drops=") }
        #expect(drops == "drops=0")
    }

    @Test func top_whenNoRouterAnswers_saysSoAndKeepsTrying() throws {
        let port = try freeTCPPort()
        let result = try runRouterd(["top", "--url", "http://127.0.0.1:\(port)", "--count", "2", "--interval", "0.2"])
        #expect(result.status == 0)
        #expect(result.stdout == "")
        let complaints = result.stderr.split(separator: "\n")
        #expect(complaints.count == 2)
        #expect(
            complaints.allSatisfy { $0.hasPrefix("routerd top: cannot connect to 127.0.0.1:\(port)") },
            "\(result.stderr)")
    }
}
