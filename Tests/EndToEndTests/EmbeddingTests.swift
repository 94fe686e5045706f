import Foundation
import Testing

/// examples/embedding, built by `make test` as a library user builds it (a package of its own that depends on
/// routerd by path): three custom stages mixed with built-in ones, run from its own YAML file.
@Suite("embedding example")
struct EmbeddingTests {
    static let example = TestPaths.packageRoot.appendingPathComponent("examples/embedding")
    static var binary: String { example.appendingPathComponent(".build/debug/embedded-router").path }

    @Test func embeddedRouter_entriesFromUDPAndStdin_comeOutTaggedAfterTheRuntimeRetriedTheFailingWrites() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.binary) else {
            Issue.record(
                "\(Self.binary) is missing: `make test` builds it (swift build --package-path examples/embedding)")
            return
        }
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let collected = directory.appendingPathComponent("collected.jsonl")
        let stdin = Pipe()
        let router = try RouterdProcess(
            config: try String(contentsOf: Self.example.appendingPathComponent("router.yaml"), encoding: .utf8),
            directory: directory,
            environment: [
                "PORT": "0", "OUT": collected.path, "DEAD": directory.appendingPathComponent("dead.log").path,
            ],
            executable: Self.binary, configArguments: { [$0] }, standardInput: stdin)
        let port = try router.listeningPort(stage: "udp_in")
        let client = try UDPClient()
        for sequence in 1...20 { client.send(seedEntry(sequence: sequence, level: "INFO", app: "udp"), port: port) }
        let lines = (1...10).map { seedEntry(sequence: $0, level: "ERROR", app: "stdin") + "\n" }.joined()
        stdin.fileHandleForWriting.write(Data(lines.utf8))
        try stdin.fileHandleForWriting.close()

        let written = try waitUntil("30 entries in the custom output's file") { () -> [String]? in
            let lines = fileLines(collected)
            return lines.count >= 30 ? lines : nil
        }
        #expect(try router.terminate() == 0)
        #expect(written.count == 30)
        // The custom filter changed every entry, and nothing else about it.
        for line in written {
            #expect(line.hasSuffix(#","tagged_by":"embedding-example"}"#), "\(line)")
            #expect(line.hasPrefix(#"{"timestamp":"#), "\(line)")
        }
        let keys = written.compactMap { line -> String? in
            guard let sequence = sequenceOf(line) else { return nil }
            return (line.contains(#""app":"udp""#) ? "udp-" : "stdin-") + String(sequence)
        }
        #expect(Set(keys) == Set((1...20).map { "udp-\($0)" } + (1...10).map { "stdin-\($0)" }))
        // The custom output failed its first two writes; the runtime held the entries, retried and said so.
        #expect(router.logs("write failed; holding entries and retrying").count == 2)
        let recovered = try #require(router.logs("writing again").first)
        #expect(recovered["stage"] as? String == "collected")
        let counters = try #require(
            fileLines(router.stdoutURL).compactMap { line in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]
            }.first { $0["stage"] as? String == "collected" })
        #expect(counters["events_in"] as? Int == 30)
        #expect(counters["events_out{port=default}"] as? Int == 30)
        #expect(counters["failed_writes"] as? Int == 2)
        #expect(counters.filter { $0.key.hasPrefix("events_dropped") }.allSatisfy { $0.value as? Int == 0 })
    }

    @Test func readme_showsTheExamplesOwnCode() throws {
        let readme = try String(
            contentsOf: TestPaths.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let source = try String(
            contentsOf: Self.example.appendingPathComponent("Sources/embedded-router/FlakyFile.swift"),
            encoding: .utf8)
        let start = try #require(source.range(of: "final class FlakyFile")).lowerBound
        let output = String(source[start...]).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(readme.contains(output), "README's embedding section shows FlakyFile.swift as it is")
    }
}
