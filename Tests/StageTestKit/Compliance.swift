import Filters
import Foundation
import Inputs
import Logging
import Outputs
package import Router
import RouterAMQP
import RouterHTTPStats
import RouterPostgres
import RouterSupport
import Synchronization

/// The compliance run every registered stage kind gets: built from the example its declaration carries, sent
/// entries, and checked for the standard counters and for settling each batch exactly once. It knows no kind by
/// name: a new kind gets it by being registered with an example.
///
/// The checks return the problems they found (empty when the kind complies), so that the unit tests (kinds that
/// need nothing from outside) and the server tests (kinds that need a broker or a database) assert the same way.
package enum Compliance {
    /// How many entries each traffic run sends, in batches of ``batchSize``.
    package static let entryCount = 100
    package static let batchSize = 25

    /// Every built-in stage kind, in the order routerd registers them.
    package static let builtin: [any Stage.Type] =
        InputStages.builtin + AMQPStages.inputs + FilterStages.builtin + OutputStages.builtin
        + HTTPStatsStages.outputs + AMQPStages.outputs + PostgresStages.outputs

    /// The kinds the compliance run adds to a registry to feed and capture the subject.
    package static let harnessKinds: [any Stage.Type] = [ComplianceFeed.self, ComplianceCapture.self]

    /// The example's environment: a scratch directory (`EXAMPLE_DIR`), a free port (`EXAMPLE_PORT`), and what the
    /// caller gives (the URLs of live servers).
    package static func environment(directory: String, extra: [String: String]) throws -> [String: String] {
        var environment = extra
        environment["EXAMPLE_DIR"] = directory
        environment["EXAMPLE_PORT"] = String(try freePort())
        return environment
    }

    /// A config with the subject built from its example, fed by a feed input (or, for an input subject, read by a
    /// capture), with a capture on each of the subject's ports.
    package static func config(for kind: StageRegistry.Kind, channel: String) -> String {
        let example = kind.declaration.example.options.split(separator: "\n").map { "    \($0)\n" }.joined()
        var yaml = ""
        switch kind.role {
        case .input:
            yaml += "inputs:\n  subject:\n    type: \(kind.declaration.type)\n" + example
            yaml +=
                "outputs:\n  capture_default: {type: compliance_capture, channel: \"\(channel)\", inputs: [subject]}\n"
        case .filter, .output:
            yaml += "inputs:\n  feed: {type: compliance_feed, channel: \"\(channel)\"}\n"
            yaml +=
                "\(kind.role.section):\n  subject:\n    type: \(kind.declaration.type)\n    inputs: [feed]\n" + example
            // Ports the example's options name (a route's) are captured too; a stage without a default port has
            // none to capture.
            let options = RouterConfig.exampleOptions(
                of: kind, environment: ["EXAMPLE_DIR": "/tmp", "EXAMPLE_PORT": "0"])
            let ports = kind.declaration.portNames(for: options ?? StageOptions()).filter { port in
                port == "default"
                    ? kind.role == .filter && kind.declaration.hasDefaultPort : true
            }
            if !ports.isEmpty && kind.role != .output { yaml += "outputs:\n" }
            for port in ports {
                let upstream = port == "default" ? "subject" : "subject.\(port)"
                yaml +=
                    "  capture_\(port): {type: compliance_capture, channel: \"\(channel)\", inputs: [\(upstream)]}\n"
            }
        }
        return yaml
    }

    /// Builds the kind from its example, sends ``entryCount`` entries through it and checks the counters and the
    /// settling. `registry` must hold the kind and ``harnessKinds``.
    package static func run(
        _ kind: StageRegistry.Kind, registry: StageRegistry, environment: [String: String]
    ) -> [String] {
        let channel = ComplianceChannel()
        let yaml = config(for: kind, channel: channel.id)
        let plan: RouterPlan
        let router: Router
        do {
            plan = try RouterConfig.parse(
                ConfigSource(path: "compliance.yaml", text: yaml), environment: environment, registry: registry)
            router = try Router(plan: plan, logger: Logger(label: "compliance") { _ in SwiftLogNoOpLogHandler() })
            try router.start()
        } catch {
            return ["cannot build the example:\n\(error)\n\(yaml)"]
        }
        var problems: [String] = []
        let entries = (0..<entryCount).map(entry)
        let settled = Mutex<[Int: Int]>([:])
        var trackers: [DeliveryTracker] = []
        if kind.role == .input {
            do {
                guard let send = kind.declaration.example.send else {
                    stop(router)
                    return ["the input's example says no way to send it entries (`send`)"]
                }
                try send(entries, environment)
            } catch {
                problems.append("sending the example's entries failed: \(error)")
            }
        } else {
            for (index, start) in stride(from: 0, to: entryCount, by: batchSize).enumerated() {
                let tracker = DeliveryTracker { _ in settled.withLock { $0[index, default: 0] += 1 } }
                var batch = Batch(lines: Array(entries[start..<min(entryCount, start + batchSize)]))
                for event in batch.events.indices { batch.events[event].flags.insert(.tracked) }
                batch.trackers = [tracker]
                trackers.append(tracker)
                channel.send(batch)
            }
        }
        let subject = router.observer.stages.first { $0.name == "subject" }
        let deadline = Date(timeIntervalSinceNow: 20)
        while Date() < deadline {
            let done =
                kind.role == .input
                ? channel.captured["default", default: 0] >= entryCount
                : settled.withLock { $0.count } == trackers.count
            if done { break }
            Thread.sleep(forTimeInterval: 0.02)
        }
        // Everything sent has been answered (or the wait ran out): stop, which drains what is still buffered.
        stop(router)
        guard let subject else { return problems + ["the router has no stage 'subject'"] }
        let counters = subject.counters
        let eventsIn = counters.value("events_in")
        let out = counters.snapshot().filter { $0.key.name == "events_out" }
        let outTotal = out.reduce(0) { $0 + $1.value }
        let dropped = counters.total("events_dropped")
        let discarded = counters.value("events_discarded")
        if kind.role == .input {
            if outTotal != entryCount { problems.append("events_out is \(outTotal), \(entryCount) entries were sent") }
            let captured = channel.captured["default", default: 0]
            if captured != entryCount { problems.append("\(captured) of \(entryCount) entries came out") }
        } else {
            if eventsIn != entryCount { problems.append("events_in is \(eventsIn), \(entryCount) entries were sent") }
            if outTotal + dropped + discarded != eventsIn {
                problems.append(
                    "events_in \(eventsIn) is not events_out \(outTotal) + events_dropped \(dropped) "
                        + "+ events_discarded \(discarded)")
            }
            for (key, value) in out {
                guard let port = key.value, kind.role == .filter || port != "default" else { continue }
                let captured = channel.captured[port, default: 0]
                if captured != value {
                    problems.append("events_out{port=\"\(port)\"} is \(value), captured \(captured)")
                }
            }
            let answers = settled.withLock { $0 }
            for index in trackers.indices where answers[index] != 1 {
                problems.append("batch \(index) was answered \(answers[index] ?? 0) times, not once")
            }
            for (index, tracker) in trackers.enumerated() where tracker.unanswered != 0 {
                problems.append(
                    "batch \(index) was settled \(tracker.unanswered < 0 ? "more than once" : "too few times")")
            }
        }
        if dropped != 0 {
            problems.append(
                "events_dropped is \(dropped): \(counters.snapshot().filter { $0.key.name == "events_dropped" && $0.value > 0 })"
            )
        }
        if case .degraded(let reason) = subject.health.current { problems.append("health is degraded: \(reason)") }
        return problems
    }

    /// One entry of the kind the seeds send.
    package static func entry(_ sequence: Int) -> String {
        #"{"timestamp":"2026-11-22T10:00:00Z","sequence":\#(sequence),"app":"compliance","#
            + #""level":"\#(sequence % 4 == 0 ? "ERROR" : "INFO")","message":"entry \#(sequence)","host":"node-1"}"#
    }

    private static func stop(_ router: Router) {
        let stopped = DispatchSemaphore(value: 0)
        let thread = Thread {
            router.stop()
            stopped.signal()
        }
        thread.start()
        _ = stopped.wait(timeout: .now() + 30)
    }

    /// A port free for both TCP and UDP on 127.0.0.1 (bound, then closed).
    private static func freePort() throws -> Int {
        for _ in 0..<20 {
            let tcp = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(tcp) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(tcp, $0, length) == 0 && getsockname(tcp, $0, &length) == 0
                }
            }
            guard bound else { continue }
            let udp = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(udp) }
            let free = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(udp, $0, length) == 0 }
            }
            if free { return Int(UInt16(bigEndian: address.sin_port)) }
        }
        throw ComplianceError("no free port on 127.0.0.1")
    }
}

/// What went wrong setting a compliance run up.
package struct ComplianceError: Error, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}

/// Where a compliance run's feed finds its batches and its captures count what they got.
final class ComplianceChannel: Sendable {
    private static let channels = Mutex<[String: ComplianceChannel]>([:])

    let id = UUID().uuidString
    private let state = Mutex<(batches: [Batch], captured: [String: Int])>(([], [:]))

    init() {
        ComplianceChannel.channels.withLock { $0[id] = self }
    }

    static func find(_ id: String) -> ComplianceChannel? { channels.withLock { $0[id] } }

    func send(_ batch: Batch) { state.withLock { $0.batches.append(batch) } }

    func next() -> Batch? {
        state.withLock { state in state.batches.isEmpty ? nil : state.batches.removeFirst() }
    }

    func count(_ events: Int, port: String) { state.withLock { $0.captured[port, default: 0] += events } }

    var captured: [String: Int] { state.withLock { $0.captured } }
}

/// Emits the batches of its channel, from its own thread; on stop, first what is still waiting.
final class ComplianceFeed: InputStage {
    static let channel = StageOption<String>.string("channel", "The compliance run's channel.")
    static let declaration = StageDeclaration(
        type: "compliance_feed", summary: "Emits the compliance run's batches.", options: [channel],
        canReply: { _ in true })

    private let source: ComplianceChannel
    private let stopping = Atomic<Bool>(false)

    init(context: StageContext) throws {
        let id = try context.options.value(Self.channel)
        guard let source = ComplianceChannel.find(id) else { throw StageError("no compliance channel '\(id)'") }
        self.source = source
    }

    func run(_ emitter: InputEmitter) throws {
        while true {
            if let batch = source.next() {
                emitter.emit(batch)
            } else if stopping.load(ordering: .acquiring) {
                return
            } else {
                usleep(1000)
            }
        }
    }

    func requestStop() { stopping.store(true, ordering: .releasing) }
}

/// Counts what reaches it by the port it reads (`capture_<port>`), and writes it.
final class ComplianceCapture: OutputStage, OutputWriter {
    static let declaration = StageDeclaration(
        type: "compliance_capture", summary: "Counts what it gets for the compliance run.",
        options: [ComplianceFeed.channel])

    private let channel: ComplianceChannel
    private let port: String

    init(context: StageContext) throws {
        let id = try context.options.value(ComplianceFeed.channel)
        guard let channel = ComplianceChannel.find(id) else { throw StageError("no compliance channel '\(id)'") }
        self.channel = channel
        port = String(context.name.dropFirst("capture_".count))
    }

    func write(_ group: WriteGroup) -> WriteOutcome {
        channel.count(group.eventCount, port: port)
        return .written
    }
}
