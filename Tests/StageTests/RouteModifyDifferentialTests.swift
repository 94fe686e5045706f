import Foundation
import Router
import Testing

@testable import Filters

/// `route`'s decisions and `modify`'s output against the reference evaluator in
/// Tests/Differential/route_modify_reference.py, over generated conditions, changes and entries.
///
/// 200,000 entries by default; `ROUTERD_DIFF_ENTRIES=5000000 swift test --filter RouteModifyDifferential` for
/// millions, `ROUTERD_DIFF_SEED` for another draw.
@Suite("route and modify against the Python reference")
struct RouteModifyDifferentialTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Differential/route_modify_reference.py").path

    @Test func routeAndModify_overGeneratedEntries_agreeWithThePythonReference() throws {
        let environment = ProcessInfo.processInfo.environment
        let entries = Int(environment["ROUTERD_DIFF_ENTRIES"] ?? "") ?? 200_000
        let seed = environment["ROUTERD_DIFF_SEED"] ?? "14"
        let cases = max(10, min(200, entries / 5_000))
        let directory = try TemporaryDirectory()
        try python([
            "generate", "--seed", seed, "--cases", String(cases), "--entries", String(entries),
            "--out", directory.path,
        ])
        let registry = try StageRegistry(StageHarness.builtin)
        for index in 0..<cases {
            let base = "\(directory.path)/case-\(index)"
            let yaml = try String(contentsOfFile: base + ".yaml", encoding: .utf8)
            let plan = try RouterConfig.parse(
                ConfigSource(path: "case-\(index).yaml", text: yaml), environment: [:], registry: registry)
            let routeOptions = try #require(plan.stage("r")).options
            let modifyOptions = try #require(plan.stage("m")).options
            let route = try Route(
                context: try StageHarness.context(for: Route.self, name: "r", options: routeOptions.values))
            let modify = try Modify(
                context: try StageHarness.context(for: Modify.self, name: "m", options: modifyOptions.values))
            let stepByStep = try Modify(
                context: try StageHarness.context(for: Modify.self, name: "m", options: modifyOptions.values),
                stepByStep: true)
            let ports = Route.declaration.portNames(for: routeOptions)
            let lines = try String(contentsOfFile: base + ".jsonl", encoding: .utf8).split(
                separator: "\n", omittingEmptySubsequences: false
            ).dropLast()
            var decisions = [[String]](repeating: [], count: lines.count)
            var outputs = [String](repeating: "MISSING", count: lines.count)
            var start = 0
            while start < lines.count {
                var batch = Batch(receivedAtNanos: 1_795_000_000_000_000_000)
                for position in start..<min(lines.count, start + 256) {
                    batch.append(Array(lines[lines.startIndex + position].utf8), sender: Self.sender(position))
                }
                var routed = FilterOutput(portCount: ports.count)
                route.process(batch, into: &routed)
                for (port, batches) in routed.ports.enumerated() {
                    for portBatch in batches {
                        for event in portBatch.events { decisions[Self.index(event.sender)].append(ports[port]) }
                    }
                }
                var modified = FilterOutput(portCount: 2)
                modify.process(batch, into: &modified)
                var stepped = FilterOutput(portCount: 2)
                stepByStep.process(batch, into: &stepped)
                #expect(
                    Self.texts(modified) == Self.texts(stepped),
                    "case \(index): one pass and step by step differ (one pass: \(modify.editsInOnePass))")
                for (port, batches) in modified.ports.enumerated() {
                    for portBatch in batches {
                        for event in portBatch.events {
                            outputs[Self.index(event.sender)] = port == 0 ? portBatch.text(of: event) : "FAILED"
                        }
                    }
                }
                start += 256
            }
            // The reference lists ports in the order the routes are written, as route checks them.
            let order = Dictionary(uniqueKeysWithValues: ports.enumerated().map { ($1, $0) })
            let routeText = decisions.map {
                $0.sorted { order[$0, default: 0] < order[$1, default: 0] }.joined(separator: ",")
            }
            try (routeText.joined(separator: "\n") + "\n").write(
                toFile: base + ".route", atomically: false, encoding: .utf8)
            try (outputs.joined(separator: "\n") + "\n").write(
                toFile: base + ".modify", atomically: false, encoding: .utf8)
        }
        let verdict = try python(["check", "--out", directory.path], allowFailure: true)
        #expect(verdict.status == 0, "\(verdict.output)")
    }

    /// Each port's entries as text, with the reason and detail of each.
    static func texts(_ output: FilterOutput) -> [[String]] {
        output.ports.map { batches in
            batches.flatMap { batch in
                batch.events.map { event in
                    batch.text(of: event) + " \(event.reason) \(batch.detail(of: event) ?? "")"
                }
            }
        }
    }

    /// Entry `index`'s sender, which carries the index through both stages (senders survive every change).
    static func sender(_ index: Int) -> SenderAddress {
        .ipv4(
            10, UInt8((index >> 16) & 255), UInt8((index >> 8) & 255), UInt8(index & 255),
            port: UInt16(1000 + index % 50_000))
    }

    static func index(_ sender: SenderAddress) -> Int { Int(sender.low & 0xFF_FFFF) }

    @discardableResult
    private func python(_ arguments: [String], allowFailure: Bool = false) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        if !allowFailure && process.terminationStatus != 0 {
            Issue.record("python3 \(arguments.first ?? "") failed: \(output)")
        }
        return (process.terminationStatus, output)
    }
}
