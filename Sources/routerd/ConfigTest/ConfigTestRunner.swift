import Foundation
import Logging
import Router
import Synchronization

/// What one stage port, or one output, received during a test: each entry's bytes and the reason it carries.
struct CapturedEntry {
    var bytes: [UInt8]
    var reason: String?
    var detail: String?
}

/// One reply the `ack` filter sent to a test's sender.
struct CapturedReply {
    var positive: Bool
    var sequence: Int64
    var reason: String?
}

/// Runs a config's filters in-process on test entries: inputs are not started and outputs are replaced by captures,
/// so no socket, file or broker is touched. Each case gets new filter instances (a `throttle` starts empty).
struct ConfigTestGraph {
    let plan: RouterPlan
    private let byName: [String: Int]
    /// Per stage index, per port index: the stage indices that read it.
    private let consumers: [[[Int]]]
    private let portNames: [[String]]

    init(plan: RouterPlan) {
        self.plan = plan
        var byName: [String: Int] = [:]
        for (index, stage) in plan.stages.enumerated() { byName[stage.name] = index }
        let portNames = plan.stages.map { $0.kind.declaration.portNames(for: $0.options) }
        var consumers = portNames.map { ports in [[Int]](repeating: [], count: ports.count) }
        for (index, stage) in plan.stages.enumerated() {
            for upstream in stage.upstreams {
                guard let source = byName[upstream.stage], upstream.port < consumers[source].count else { continue }
                consumers[source][upstream.port].append(index)
            }
        }
        self.byName = byName
        self.consumers = consumers
        self.portNames = portNames
    }

    /// `errors_now`, `valid` (its default port) or `valid.invalid`: nil when the config has no such stage or port.
    func resolve(target: String) -> (stage: Int, port: Int)? {
        if let stage = byName[target] { return (stage, 0) }
        guard let dot = target.lastIndex(of: ".") else { return nil }
        guard let stage = byName[String(target[..<dot])],
            let port = portNames[stage].firstIndex(of: String(target[target.index(after: dot)...])), port > 0
        else { return nil }
        return (stage, port)
    }

    /// The stage names a test may name, for "did you mean".
    var targetNames: [String] {
        plan.stages.enumerated().flatMap { index, stage in
            [stage.name] + portNames[index].dropFirst().map { "\(stage.name).\($0)" }
        }
    }

    func role(of stage: Int) -> StageRole { plan.stages[stage].kind.role }

    /// The result of feeding one case's entries.
    struct Outcome {
        /// What each output received, by stage index.
        var outputs: [Int: [CapturedEntry]] = [:]
        /// What left each stage port, by "stage index, port index".
        var ports: [String: [CapturedEntry]] = [:]
        var replies: [CapturedReply] = []

        func captured(stage: Int, port: Int, role: StageRole) -> [CapturedEntry] {
            role == .output && port == 0 ? outputs[stage] ?? [] : ports["\(stage).\(port)"] ?? []
        }
    }

    /// Builds the filters anew and runs `entries` into `feed`.
    func run(_ test: ConfigTestCase, feed: Int, failing: [Int: String]) throws -> Outcome {
        let logger = Logger(label: "routerd-test") { _ in SwiftLogNoOpLogHandler() }
        let observer = RouterObserver()
        var filters: [Int: any FilterStage] = [:]
        for (index, stage) in plan.stages.enumerated() where stage.kind.role == .filter {
            let context = StageContext(
                name: stage.name, type: stage.kind.declaration.type, options: stage.options, logger: logger,
                counters: StageCounters(
                    stage: stage.name, type: stage.kind.declaration.type, declaration: stage.kind.declaration,
                    ports: portNames[index]),
                health: StageHealth(), router: observer, location: stage.location)
            do {
                guard let filter = try stage.kind.stageType.init(context: context) as? any FilterStage else {
                    continue
                }
                filters[index] = filter
            } catch {
                throw ConfigErrors([
                    plan.source?.diagnostic("cannot start: \(error)", at: stage.location, path: stage.path)
                        ?? Diagnostic(location: stage.location, path: stage.path, message: "\(error)", sourceLine: nil)
                ])
            }
        }
        let channel = CaptureReplyChannel()
        var batch = Batch(receivedAtNanos: test.receivedAtNanos)
        for entry in test.entries { batch.append(entry, sender: test.sender) }
        let feedStage = plan.stages[feed]
        if feedStage.kind.role == .filter || feedStage.kind.declaration.canReply(feedStage.options) {
            batch.replyChannel = channel
        }
        var pass = Pass(graph: self, filters: filters, failing: failing)
        if feedStage.kind.role == .input {
            pass.leave(batch, stage: feed, port: 0)
        } else {
            pass.deliver(batch, to: feed)
        }
        for tracker in pass.createdTrackers { tracker.releaseCreationHold() }
        for (output, delivered) in pass.delivered {
            delivered.settle(failing[output].map { .failed($0) } ?? .written)
        }
        var outcome = pass.outcome
        outcome.replies = channel.replies
        return outcome
    }

    /// One synchronous pass through the graph, as the runtime's dispatch makes it.
    private struct Pass {
        let graph: ConfigTestGraph
        let filters: [Int: any FilterStage]
        let failing: [Int: String]
        var outcome = Outcome()
        var createdTrackers: [DeliveryTracker] = []
        var delivered: [(Int, Batch)] = []

        mutating func leave(_ batch: Batch, stage: Int, port: Int) {
            outcome.ports["\(stage).\(port)", default: []].append(contentsOf: Self.capture(batch))
            let consumers = graph.consumers[stage][port]
            if consumers.isEmpty {
                // As the runtime does: an ack upstream answers these as not stored, whatever the rest of the batch.
                batch.markDropped(batch.events, reason: DeliveryTracker.notRoutedReason)
                return
            }
            for consumer in consumers { deliver(batch, to: consumer) }
        }

        mutating func deliver(_ batch: Batch, to stage: Int) {
            if graph.role(of: stage) == .output {
                for tracker in batch.trackers { tracker.beginDelivery() }
                outcome.outputs[stage, default: []].append(contentsOf: Self.capture(batch))
                delivered.append((stage, batch))
                return
            }
            guard let filter = filters[stage] else { return }
            var output = FilterOutput(portCount: graph.portNames[stage].count)
            filter.process(batch, into: &output)
            createdTrackers.append(contentsOf: output.createdTrackers)
            for (port, batches) in output.ports.enumerated() {
                for portBatch in batches { leave(portBatch, stage: stage, port: port) }
            }
        }

        static func capture(_ batch: Batch) -> [CapturedEntry] {
            batch.events.map { event in
                CapturedEntry(
                    bytes: batch.withBytes(of: event) { Array($0) },
                    reason: event.reason == .none ? nil : event.reason.name, detail: batch.detail(of: event))
            }
        }
    }
}

/// The socket `ack` answers through, in a test: it keeps the replies.
private final class CaptureReplyChannel: ReplyChannel {
    private let sent = Mutex<[CapturedReply]>([])

    func sendReplies(_ replies: [(payload: [UInt8], to: SenderAddress)]) {
        let parsed = replies.compactMap { reply -> CapturedReply? in
            guard let object = try? JSONSerialization.jsonObject(with: Data(reply.payload)) as? [String: Any],
                let positive = object["ack"] as? Bool, let sequence = (object["sequence"] as? NSNumber)?.int64Value
            else { return nil }
            return CapturedReply(positive: positive, sequence: sequence, reason: object["reason"] as? String)
        }
        sent.withLock { $0.append(contentsOf: parsed) }
    }

    var replies: [CapturedReply] { sent.withLock { $0 } }
}
