// filter-bench: what the filters of a config cost per entry, in-process, on one thread, with no sockets or
// outputs: the figure the end-to-end `make bench` cannot isolate (there the receive path, the outputs and the
// scheduler are in every number). It builds the named filters of a config as the runtime does, sends generated
// entries shaped like `routerd loadtest`'s (1% ERROR) through them in batches, and prints the CPU time per entry
// of the whole chain and of each stage, best of several rounds.
//
//   swift run -c release filter-bench examples/bench-route.yaml valid tidy by_team errors
//
// Each filter receives everything the previous one sent to any of its ports.

import Filters
import Foundation
import Inputs
import Logging
import Outputs
import Router
import RouterAMQP
import RouterHTTPStats
import RouterPostgres

#if canImport(Glibc)
    import Glibc
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 2 else {
    FileHandle.standardError.write(
        Data("usage: filter-bench CONFIG FILTER [FILTER...]  (ENTRIES=N, ROUNDS=N, BATCH=N)\n".utf8))
    exit(2)
}
let environment = ProcessInfo.processInfo.environment
let entries = Int(environment["ENTRIES"] ?? "") ?? 1_000_000
let rounds = Int(environment["ROUNDS"] ?? "") ?? 5
let batchSize = Int(environment["BATCH"] ?? "") ?? 256

let registry = try StageRegistry(
    InputStages.builtin + AMQPStages.inputs + FilterStages.builtin + OutputStages.builtin + HTTPStatsStages.outputs
        + AMQPStages.outputs + PostgresStages.outputs)
let path = arguments[0]

func loadPlan() -> RouterPlan {
    do {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        return try RouterConfig.parse(
            ConfigSource(path: path, text: text), environment: environment, registry: registry)
    } catch {
        FileHandle.standardError.write(Data("\(error)\n".utf8))
        exit(2)
    }
}
let plan = loadPlan()
let logger = Logger(label: "filter-bench", factory: { _ in SwiftLogNoOpLogHandler() })

var chain: [(name: String, filter: any FilterStage, ports: Int)] = []
for name in arguments.dropFirst() {
    guard let stage = plan.stage(name), stage.kind.role == .filter else {
        FileHandle.standardError.write(Data("filter-bench: '\(name)' is not a filter of \(path)\n".utf8))
        exit(2)
    }
    let context = StageContext(
        name: stage.name, type: stage.kind.declaration.type, options: stage.options, logger: logger,
        counters: StageCounters(
            stage: stage.name, type: stage.kind.declaration.type, declaration: stage.kind.declaration,
            ports: stage.kind.declaration.portNames(for: stage.options)),
        health: StageHealth(), router: RouterObserver())
    guard let filter = try stage.kind.stageType.init(context: context) as? any FilterStage else { exit(2) }
    chain.append((name, filter, stage.kind.declaration.portNames(for: stage.options).count))
}

/// The entries of one round, in batches, shaped like `routerd loadtest`'s.
func makeBatches() -> [Batch] {
    var batches: [Batch] = []
    var batch = Batch(receivedAtNanos: 1_795_000_000_000_000_000)
    let sender = SenderAddress.ipv4(127, 0, 0, 1, port: 40_000)
    for sequence in 1...entries {
        let level = sequence % 100 == 0 ? "ERROR" : "INFO"
        let line =
            #"{"timestamp":"2026-12-02T00:44:56.508037Z","sequence":\#(sequence),"app":"loadtest-0","level":"\#(level)","#
            + #""message":"load test entry: the quick brown fox jum","host":"vm"}"#
        batch.append(Array(line.utf8), sender: sender)
        if batch.count == batchSize {
            batches.append(batch)
            batch = Batch(receivedAtNanos: 1_795_000_000_000_000_000 + Int64(sequence) * 5_000)
        }
    }
    if !batch.isEmpty { batches.append(batch) }
    return batches
}

func threadCPUNanos() -> Int64 {
    var spec = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &spec)
    return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
}

let input = makeBatches()
var best = [Int64](repeating: .max, count: chain.count)
var bestTotal = Int64.max
for _ in 0..<rounds {
    // Batch by batch through the whole chain, as the runtime runs filters, so that memory is reused as it is there.
    var spent = [Int64](repeating: 0, count: chain.count)
    for batch in input {
        var current = [batch]
        for (index, stage) in chain.enumerated() {
            var next: [Batch] = []
            let start = threadCPUNanos()
            for batch in current {
                var output = FilterOutput(portCount: stage.ports)
                stage.filter.process(batch, into: &output)
                for port in output.ports { next.append(contentsOf: port) }
            }
            spent[index] += threadCPUNanos() - start
            current = next
        }
    }
    for index in spent.indices { best[index] = min(best[index], spent[index]) }
    bestTotal = min(bestTotal, spent.reduce(0, +))
}
func perEntry(_ nanos: Int64) -> String { String(format: "%7.1f ns/entry", Double(nanos) / Double(entries)) }
print("filter-bench \(path): \(entries) entries, batches of \(batchSize), best of \(rounds) rounds")
for (index, stage) in chain.enumerated() {
    print("  \(stage.name.padding(toLength: 16, withPad: " ", startingAt: 0)) \(perEntry(best[index]))")
}
print("  \("chain".padding(toLength: 16, withPad: " ", startingAt: 0)) \(perEntry(bestTotal))")
