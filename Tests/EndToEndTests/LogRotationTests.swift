import Foundation
import Testing

/// External log rotation of the files routerd writes: the real `logrotate` with packaging/logrotate.d/routerd
/// (`create` mode and SIGUSR1) under load, and `copytruncate`.
@Suite("routerd binary: external log rotation", .serialized)
struct LogRotationTests {
    /// Every line of `logs/server.log*`, plain or gzipped, by file name.
    static func rotatedLines(_ logs: URL) throws -> [String: [String]] {
        var lines: [String: [String]] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: logs.path) where name.hasPrefix("server.log") {
            let url = logs.appendingPathComponent(name)
            if name.hasSuffix(".gz") {
                let result = try Spawn.run("/bin/gzip", ["-dc", url.path])
                #expect(result.status == 0, "\(result.output)")
                lines[name] = result.output.split(separator: "\n").map(String.init)
            } else {
                lines[name] = fileLines(url)
            }
        }
        return lines
    }

    @Test func logrotate_createModeWithTheShippedConfig_underLoad_losesTearsAndDuplicatesNothing() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logs = directory.appendingPathComponent("logs")
        let pidFile = directory.appendingPathComponent("routerd.pid")
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0, receive_buffer_bytes: 16777216 }
                outputs:
                  server_log: { type: file, inputs: [udp_in], path: "${LOG_DIR}/server.log" }
                """, directory: directory, environment: ["LOG_DIR": logs.path],
            extraArguments: ["--pid-file", pidFile.path])
        let port = try routerd.listeningPort(stage: "udp_in")
        let pid = try String(contentsOf: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(pid == "\(routerd.process.processIdentifier)")

        // The shipped config, pointed at this test's directories (and files owned by whoever runs the test).
        let shipped = try String(
            contentsOf: TestPaths.packageRoot.appendingPathComponent("packaging/logrotate.d/routerd"), encoding: .utf8)
        let config = shipped.replacingOccurrences(of: "/var/log/routerd", with: logs.path)
            .replacingOccurrences(of: "/run/routerd/routerd.pid", with: pidFile.path)
            .replacingOccurrences(of: "create 0640 routerd routerd", with: "create 0640")
        #expect(config != shipped)
        let configURL = directory.appendingPathComponent("logrotate.conf")
        try config.write(to: configURL, atomically: true, encoding: .utf8)
        let state = directory.appendingPathComponent("logrotate.state").path

        // 20,000 entries over about 4 s, rotated three times meanwhile.
        let total = 20_000
        let sender = Thread {
            guard let client = try? UDPClient() else { return }
            for start in stride(from: 1, through: total, by: 50) {
                client.send(
                    (start..<min(start + 50, total + 1)).map { seedEntry(sequence: $0, level: "INFO") }, port: port)
                usleep(10_000)
            }
        }
        sender.start()
        for _ in 0..<3 {
            usleep(1_000_000)
            let rotated = try Spawn.run("/usr/sbin/logrotate", ["-f", "-s", state, configURL.path])
            #expect(rotated.status == 0, "\(rotated.output)")
        }
        try waitUntil("every entry written", timeout: 30) { () -> Bool? in
            let count = try Self.rotatedLines(logs).values.reduce(0) { $0 + $1.count }
            return count >= total ? true : nil
        }
        #expect(try routerd.terminate() == 0)
        #expect(routerd.logs("reopening files").count == 3)
        #expect(!FileManager.default.fileExists(atPath: pidFile.path), "the pid file is removed at exit")

        let files = try Self.rotatedLines(logs)
        #expect(files.keys.sorted() == ["server.log", "server.log.1", "server.log.2.gz", "server.log.3.gz"])
        #expect(files.values.allSatisfy { !$0.isEmpty }, "each rotation got part of the stream")
        let sequences = files.values.flatMap { $0 }.map { sequenceOf($0) }
        #expect(!sequences.contains(nil), "no torn or foreign line")
        #expect(sequences.compactMap { $0 }.sorted() == Array(1...total), "each entry exactly once")
    }

    @Test func copytruncate_theFileIsCutInPlace_routerdWritesOnAtItsNewEndWithoutRotatingEarly() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let logs = directory.appendingPathComponent("logs")
        let routerd = try RouterdProcess(
            config: """
                inputs:
                  udp_in: { type: udp, address: 127.0.0.1, port: 0 }
                outputs:
                  server_log:
                    type: rotating_file
                    inputs: [udp_in]
                    path: "${LOG_DIR}/server.log"
                    flush_count: 1
                    max_size: 100KiB
                """, directory: directory, environment: ["LOG_DIR": logs.path])
        let port = try routerd.listeningPort(stage: "udp_in")
        let client = try UDPClient()
        let log = logs.appendingPathComponent("server.log")
        // About 80 KB, then what logrotate's copytruncate does: copy the file, cut it to 0 in place.
        client.send(
            (1...600).map { seedEntry(sequence: $0, level: "INFO", message: String(repeating: "a", count: 30)) },
            port: port)
        try waitUntil("600 lines") { fileLines(log).count == 600 ? true : nil }
        let copy = logs.appendingPathComponent("server.log.copy")
        try FileManager.default.copyItem(at: log, to: copy)
        #expect(truncate(log.path, 0) == 0)
        // Another 60 KB: past max_size only for a writer that did not see the cut.
        client.send(
            (601...1000).map { seedEntry(sequence: $0, level: "INFO", message: String(repeating: "b", count: 30)) },
            port: port)
        try waitUntil("400 new lines") { fileLines(log).count == 400 ? true : nil }
        #expect(try routerd.terminate() == 0)
        let data = try Data(contentsOf: log)
        #expect(!data.contains(0), "no hole of NUL bytes where the cut-away data was")
        #expect(fileLines(log).compactMap(sequenceOf) == Array(601...1000))
        #expect(fileLines(copy).compactMap(sequenceOf) == Array(1...600))
        #expect(!FileManager.default.fileExists(atPath: log.path + ".1"), "no rotation: the file holds 60 KB")
    }
}
