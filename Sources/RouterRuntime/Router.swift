public import Logging
public import RouterConfig
public import RouterCore
public import RouterGraph
import RouterSupport
public import ServiceLifecycle
internal import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A running graph: stages built from a ``RouterPlan``, threads for inputs and outputs, and the dispatch that
/// carries batches from inputs through filters to output queues.
///
/// Lifecycle: ``init(plan:logger:)`` builds every stage (binding sockets, opening files) and reports every
/// failure at once; ``start()`` starts outputs, then inputs; ``stop()`` stops inputs (which emit what they already
/// received), then closes output queues in graph order and waits until every output has flushed and closed. An
/// output that feeds other stages through a port (`store.rejected`) is drained before the outputs downstream of it
/// are closed, so that what it hands on while it drains is still written.
///
/// ``reload(_:)`` applies a new plan to the running graph by stage name: stages whose type, options and inputs are
/// the same keep running untouched; the others are built, started, switched to, and the ones they replace (or that
/// are gone) stopped as ``stop()`` stops them. Batches pass each input's ``DispatchGate``, which a reload takes to
/// switch the wiring, so that no batch is in flight towards an output while it is retired.
public final class Router: Sendable {
    /// What the router's stages look like from outside.
    public let observer: RouterObserver
    private let logger: Logger
    private let current: Mutex<Generation>
    private let state = Mutex<LifecycleState>(.built)
    private let shutdownDrops = Mutex<[String: Int]>([:])
    /// Held by ``reload(_:)`` and ``stop()`` while they run, so that they never overlap.
    private let transitions = Mutex<Void>(())

    private enum LifecycleState { case built, running, stopping, stopped }

    /// Builds every stage of the plan. Throws ``ConfigErrors`` naming each stage that could not be built.
    public init(plan: RouterPlan, logger: Logger, observer: RouterObserver = RouterObserver()) throws(ConfigErrors) {
        self.observer = observer
        self.logger = logger
        let nodes = try Self.build(plan.stages, plan: plan, previous: [:], observer: observer, logger: logger)
        let generation = Generation(plan: plan, nodes: nodes)
        for node in nodes { node.gate?.switchTo(generation.wiring) }
        current = Mutex(generation)
        observer.replaceStages(nodes.map(\.status))
    }

    /// Builds the stages of `stages`; `previous` holds, by name, the running stage each one replaces (whose
    /// counters it continues, and whose resources it may take over: ``Replacing``).
    private static func build(
        _ stages: [StagePlan], plan: RouterPlan, previous: [String: Node], observer: RouterObserver, logger: Logger
    ) throws(ConfigErrors) -> [Node] {
        var built: [Node] = []
        var failures: [Diagnostic] = []
        for stage in stages {
            let portNames = stage.kind.declaration.portNames(for: stage.options)
            let replaced = previous[stage.name]
            // A replacement of the same kind continues the counters of the stage it replaces, so /metrics stays
            // continuous across a reload.
            let counters =
                replaced.flatMap { $0.type == stage.kind.declaration.type ? $0.counters : nil }
                ?? StageCounters(
                    stage: stage.name, type: stage.kind.declaration.type,
                    declaration: stage.kind.declaration, ports: portNames)
            let health = StageHealth()
            var stageLogger = logger
            stageLogger[metadataKey: "stage"] = "\(stage.name)"
            stageLogger[metadataKey: "type"] = "\(stage.kind.declaration.type)"
            let ports =
                stage.kind.role == .output ? PortEmitter(portNames: portNames) : .unconnected
            let context = StageContext(
                name: stage.name, type: stage.kind.declaration.type, options: stage.options, logger: stageLogger,
                counters: counters, health: health, router: observer, location: stage.location, ports: ports)
            let instance: any Stage
            do {
                if let replaced, let replacing = stage.kind.stageType as? any Replacing.Type,
                    let replacement = try replacing.replacement(context: context, previous: replaced.stage)
                {
                    instance = replacement
                } else {
                    instance = try stage.kind.stageType.init(context: context)
                }
            } catch {
                let message = "cannot start: \(error)"
                failures.append(
                    plan.source?.diagnostic(message, at: stage.location, path: stage.path)
                        ?? Diagnostic(location: stage.location, path: stage.path, message: message, sourceLine: nil))
                continue
            }
            var queue: OutputQueue?
            var buffered: BufferedSource?
            if stage.kind.role == .output {
                do {
                    let front = try OutputQueue(options: stage.options, counters: counters)
                    queue = front
                    buffered = try Router.openBuffer(stage: stage, plan: plan, front: front, context: context)
                } catch {
                    let message = "\(error)"
                    failures.append(
                        plan.source?.diagnostic(message, at: stage.location, path: stage.path)
                            ?? Diagnostic(location: stage.location, path: stage.path, message: message, sourceLine: nil)
                    )
                    continue
                }
            }
            built.append(Node(plan: stage, stage: instance, queue: queue, buffered: buffered, context: context))
        }
        guard failures.isEmpty else { throw ConfigErrors(failures) }
        return built
    }

    /// The disk buffer settings and directory of an output with `buffer: {type: disk}`; nil for the memory queue.
    private static func bufferSettings(stage: StagePlan, plan: RouterPlan) -> (BufferSettings, String)? {
        let tree = (try? stage.options.value(BufferSettings.option)) ?? nil
        let (settings, problems) = BufferSettings.parse(tree)
        guard problems.isEmpty, settings.kind == .disk else { return nil }
        let dataDirectory = (try? plan.globals.value(RouterGlobals.dataDirectory)) ?? "data"
        return (settings, settings.path ?? dataDirectory + "/" + stage.name)
    }

    /// Opens the disk buffer of an output with `buffer: {type: disk}` (nil for the memory queue), reporting what
    /// the open found damaged.
    private static func openBuffer(
        stage: StagePlan, plan: RouterPlan, front: OutputQueue, context: StageContext
    ) throws -> BufferedSource? {
        guard let (settings, path) = bufferSettings(stage: stage, plan: plan) else { return nil }
        let buffer: DiskBuffer
        do {
            buffer = try DiskBuffer(directory: path, settings: settings)
        } catch {
            throw StageError("cannot open the disk buffer at \(path): \(error)")
        }
        let report = buffer.snapshot
        let damage = report.damage
        if damage != DiskBufferReport.Damage() {
            context.logger.warning(
                "disk buffer damaged; the damage is cut off or skipped and counted",
                metadata: [
                    "buffer": "\(path)", "records_cut": "\(damage.cutRecords)", "bytes_cut": "\(damage.cutBytes)",
                    "records_skipped": "\(damage.skippedRecords)", "bytes_skipped": "\(damage.skippedBytes)",
                    "events_lost": "\(damage.lostEvents)",
                ])
        }
        if report.events > 0 {
            context.logger.notice(
                "disk buffer holds entries from before; delivering them first",
                metadata: [
                    "buffer": "\(path)", "events": "\(report.events)", "bytes": "\(report.bytes)",
                    "events_replayed": "\(report.replayedEvents)",
                ])
        }
        return try BufferedSource(buffer: buffer, front: front, context: context)
    }

    /// Starts every output's thread, then every input's.
    public func start() throws {
        try state.withLock { state in
            guard state == .built else { throw StageError("the router was already started") }
            state = .running
        }
        let nodes = current.withLock { $0.nodes }
        for node in nodes where node.queue != nil { try startOutput(node) }
        for node in nodes where node.stage is any InputStage { try startInput(node) }
    }

    private func startOutput(_ node: Node) throws {
        guard let output = node.stage as? any OutputStage, let queue = node.queue, let gate = node.gate else { return }
        node.ports.connect { [weak self, weak node] batch, port in
            guard let self, let node else { return }
            gate.dispatch { wiring in self.emit(batch, port: port, from: node, wiring) }
        }
        try node.buffered?.start()
        let thread = WorkerThread(name: "out-\(node.name)") {
            [logger = node.logger, health = node.health, context = node.context, buffered = node.buffered] in
            do {
                try output.drive(queue: buffered ?? queue, context: context)
            } catch {
                health.set(.degraded("stopped: \(error)"))
                if buffered != nil {
                    // The disk buffer keeps taking, and keeps what it holds for the next start.
                    logger.error(
                        "output stopped; its disk buffer keeps what it holds",
                        metadata: ["error": "\(error)", "events_lost": "0"])
                } else {
                    let lost = queue.fail(reason: "output stopped: \(error)")
                    logger.error(
                        "output stopped",
                        metadata: ["error": "\(error)", "events_lost": "\(lost)"])
                }
            }
            buffered?.finish()
        }
        try thread.start()
        node.thread.withLock { $0 = thread }
    }

    private func startInput(_ node: Node) throws {
        guard let input = node.stage as? any InputStage, let gate = node.gate else { return }
        let emitter = InputEmitter { [self, unowned node] batch in
            gate.dispatch { wiring in self.emit(batch, from: node, wiring) }
        }
        let thread = WorkerThread(name: "in-\(node.name)") { [logger = node.logger, health = node.health] in
            do {
                try input.run(emitter)
            } catch {
                health.set(.degraded("stopped: \(error)"))
                logger.error("input stopped", metadata: ["error": "\(error)"])
            }
        }
        try thread.start()
        node.thread.withLock { $0 = thread }
    }

    /// Stops gracefully and waits: inputs first (each emits what it has already received), then outputs drain their
    /// queues, flush and close. Safe to call more than once; later calls return at once. Waits for a reload that
    /// is under way to finish first.
    public func stop() {
        transitions.withLock { _ in stopLocked() }
    }

    private func stopLocked() {
        let proceed = state.withLock { state -> Bool in
            guard state == .running || state == .built else { return false }
            state = .stopping
            return true
        }
        guard proceed else { return }
        let generation = current.withLock { $0 }
        let nodes = generation.nodes
        let dropsBefore = outputDrops()
        observer.markDraining()
        // Inputs blocked on a full queue must be able to emit what they received and stop: the queues take it
        // all now, and each output's drain_timeout bounds how long it tries to write it.
        for node in nodes { node.queue?.beginShutdown() }
        let inputs = nodes.filter { $0.stage is any InputStage }
        for node in inputs { (node.stage as? any InputStage)?.requestStop() }
        for node in inputs { node.join() }
        logger.info(
            "inputs stopped; draining outputs",
            metadata: ["queued_events": "\(queuedEvents)", "unwritten_events": "\(unwrittenEvents)"])
        drainOutputs(nodes.filter { $0.queue != nil }, tiers: generation.wiring.tiers)
        let dropsAfter = outputDrops()
        shutdownDrops.withLock { drops in
            for (name, count) in dropsAfter where count > dropsBefore[name, default: 0] {
                drops[name] = count - dropsBefore[name, default: 0]
            }
        }
        state.withLock { $0 = .stopped }
        observer.markStopped()
    }

    /// Closes the outputs' queues tier by tier (an output fed through another's port after that one), waiting
    /// for each tier's threads to drain, flush and close.
    private func drainOutputs(_ outputs: [Node], tiers: [ObjectIdentifier: Int]) {
        let tierOf = { (node: Node) in tiers[ObjectIdentifier(node), default: 0] }
        for tier in Set(outputs.map(tierOf)).sorted() {
            let closing = outputs.filter { tierOf($0) == tier }
            for node in closing { node.queue?.close() }
            for node in closing { node.join() }
        }
    }

    /// Applies `plan` to the running graph and says what changed, by stage name.
    ///
    /// A stage whose type, options and inputs are the same as in the running plan is kept: its thread, sockets,
    /// queue and counters go on untouched. The others are built first (so that a port that cannot be bound fails
    /// the reload and changes nothing: the error is thrown as ``ConfigErrors``); then new outputs start, new inputs
    /// start, every input switches to the new wiring, and the stages that were replaced or removed stop as
    /// ``stop()`` stops them: inputs emit what they hold, outputs drain their queues, flush and close. A stage that
    /// was changed continues its counters. A plan that changes nothing does nothing.
    public func reload(_ plan: RouterPlan) throws(ConfigErrors) -> ReloadChanges {
        try transitions.withLock { _ throws(ConfigErrors) -> ReloadChanges in try reloadLocked(plan) }
    }

    private func reloadLocked(_ plan: RouterPlan) throws(ConfigErrors) -> ReloadChanges {
        let running = state.withLock { $0 }
        guard running == .running || running == .built else {
            throw ConfigErrors([
                Diagnostic(location: nil, path: nil, message: "the router is stopping", sourceLine: nil)
            ])
        }
        let old = current.withLock { $0 }
        var byName: [String: Node] = [:]
        for node in old.nodes { byName[node.name] = node }
        var changes = ReloadChanges()
        var toBuild: [StagePlan] = []
        var replaced: [String: Node] = [:]
        for stage in plan.stages {
            guard let existing = byName[stage.name] else {
                changes.added.append(stage.path)
                toBuild.append(stage)
                continue
            }
            if existing.isSame(as: stage) {
                changes.kept.append(stage.path)
            } else {
                changes.changed.append(stage.path)
                toBuild.append(stage)
                replaced[stage.name] = existing
            }
        }
        // A disk buffer is one directory that one output holds at a time: a replacement cannot open it while the
        // output it replaces still drains into it. Such a change is refused, and says how to apply it.
        let heldBuffers = plan.stages.compactMap { stage -> Diagnostic? in
            guard let existing = replaced[stage.name], let held = existing.buffered?.buffer.directory,
                let (_, path) = Self.bufferSettings(stage: stage, plan: plan), path == held
            else { return nil }
            let message =
                "a reload cannot change a disk-buffered output in place (its buffer at \(held) stays in use while "
                + "it drains); restart routerd to apply this change: the buffer keeps what it holds"
            return plan.source?.diagnostic(message, at: stage.location, path: stage.path)
                ?? Diagnostic(location: stage.location, path: stage.path, message: message, sourceLine: nil)
        }
        guard heldBuffers.isEmpty else { throw ConfigErrors(heldBuffers) }
        let newNames = Set(plan.stages.map(\.name))
        let removed = old.nodes.filter { !newNames.contains($0.name) }
        changes.removed = removed.map(\.path)
        guard !toBuild.isEmpty || !removed.isEmpty else { return changes }

        let built = try Self.build(toBuild, plan: plan, previous: replaced, observer: observer, logger: logger)
        var builtByName: [String: Node] = [:]
        for node in built { builtByName[node.name] = node }
        let nodes = plan.stages.compactMap { builtByName[$0.name] ?? byName[$0.name] }
        let generation = Generation(plan: plan, nodes: nodes)
        for node in built { node.gate?.switchTo(generation.wiring) }
        let retired = removed + replaced.values
        if running == .running {
            do {
                for node in built where node.queue != nil { try startOutput(node) }
                for node in built where node.stage is any InputStage { try startInput(node) }
            } catch {
                // Threads that cannot be made: what did start is stopped again, and the old graph runs on.
                retire(built, tiers: generation.wiring.tiers)
                throw ConfigErrors([
                    Diagnostic(location: nil, path: nil, message: "cannot start: \(error)", sourceLine: nil)
                ])
            }
        }
        // From here on every batch from a kept stage takes the new wiring; a batch already on its way finishes
        // first (the gate waits for it), so nothing goes to a retired output after it is closed.
        for node in nodes where builtByName[node.name] == nil { node.gate?.switchTo(generation.wiring) }
        current.withLock { $0 = generation }
        observer.replaceStages(nodes.map(\.status))
        for node in replaced.values { (node.stage as? any Replacing)?.replacementStarted() }
        let dropsBefore = retired.map { $0.counters.total("events_dropped") }.reduce(0, +)
        retire(retired, tiers: old.wiring.tiers)
        changes.droppedWhileRetiring = retired.map { $0.counters.total("events_dropped") }.reduce(0, +) - dropsBefore
        changes.startedServices = built.compactMap { node in
            guard let services = (node.stage as? any ServiceProviding)?.services, !services.isEmpty else {
                return nil
            }
            return (node.id, services)
        }
        changes.retiredServices = retired.compactMap { node in
            (node.stage as? any ServiceProviding).map { _ in node.id }
        }
        return changes
    }

    /// Stops stages that left the graph, as ``stop()`` does: inputs first, then outputs by tier.
    private func retire(_ nodes: [Node], tiers: [ObjectIdentifier: Int]) {
        let inputs = nodes.filter { $0.stage is any InputStage }
        for node in inputs { (node.stage as? any InputStage)?.requestStop() }
        for node in inputs { node.join() }
        drainOutputs(nodes.filter { $0.queue != nil }, tiers: tiers)
        // A retired stage's gate no longer points at the graph, so that the stage and its sockets are freed.
        for node in nodes { node.gate?.switchTo(Wiring.empty) }
    }

    /// Asks every stage that writes files to reopen them (``FileReopening``), as `SIGUSR1` does after an external
    /// log rotation; returns how many stages were asked.
    @discardableResult
    public func reopenFiles() -> Int {
        var count = 0
        for node in current.withLock({ $0.nodes }) {
            guard let stage = node.stage as? any FileReopening else { continue }
            stage.reopenFiles()
            count += 1
        }
        return count
    }

    /// The entries each output had to drop while the router stopped (its destination still failing when its
    /// `drain_timeout` ended, or an output that failed), by output name; empty when the shutdown lost nothing.
    public var droppedAtShutdown: [String: Int] {
        shutdownDrops.withLock { $0 }
    }

    private func outputDrops() -> [String: Int] {
        var drops: [String: Int] = [:]
        for node in current.withLock({ $0.nodes }) where node.queue != nil {
            drops[node.name] = node.counters.total("events_dropped")
        }
        return drops
    }

    /// The services the stages run in the process's ``ServiceGroup`` (``ServiceProviding``), in graph order. Run
    /// them in the group before the ``RouterService``, so that they are shut down after the router drained; or let
    /// the ``RouterService`` run them (``RouterService/init(router:logger:reloader:runsStageServices:)``), which
    /// also starts and stops them as reloads add and remove their stages.
    public var services: [any Service] {
        current.withLock { $0.nodes }.flatMap { ($0.stage as? any ServiceProviding)?.services ?? [] }
    }

    /// The services of each stage that has some, by the stage's run id (for ``RouterService``).
    var servicesByStage: [(id: Int, services: [any Service])] {
        current.withLock { $0.nodes }.compactMap { node in
            guard let services = (node.stage as? any ServiceProviding)?.services, !services.isEmpty else {
                return nil
            }
            return (node.id, services)
        }
    }

    /// Events waiting in every output queue.
    public var queuedEvents: Int {
        current.withLock { $0.nodes }.reduce(0) { $0 + ($1.queue?.depth ?? 0) }
    }

    /// Events handed to outputs and neither written nor counted as dropped yet: queued, buffered or being
    /// written. What an immediate exit would lose.
    public var unwrittenEvents: Int {
        current.withLock { $0.nodes }.reduce(0) { total, node in
            guard node.queue != nil else { return total }
            // An output counts what it wrote on its default port and what it handed on on its other ports.
            let handled = node.eventsOut.reduce(0) { $0 + $1.value }
            return total + max(0, node.eventsIn.value - handled - node.counters.total("events_dropped"))
        }
    }

    private func emit(_ batch: Batch, from node: Node, _ wiring: Wiring) {
        node.eventsIn.add(batch.count)
        node.eventsOut[0].add(batch.count)
        forward(batch, to: wiring.consumers(of: node, port: 0), discardedBy: node, wiring)
    }

    /// What an output's ``PortEmitter`` does: the batch leaves the output through `port` as it would leave a filter.
    private func emit(_ batch: Batch, port: Int, from node: Node, _ wiring: Wiring) {
        guard port > 0, port < node.eventsOut.count else { return }
        node.eventsOut[port].add(batch.count)
        forward(batch, to: wiring.consumers(of: node, port: port), discardedBy: node, wiring)
    }

    private func forward(_ batch: Batch, to consumers: [Node], discardedBy node: Node, _ wiring: Wiring) {
        if consumers.isEmpty {
            node.discarded.add(batch.count)
            // An ack upstream must not answer "stored" for these because others of its batch were.
            batch.markDropped(batch.events, reason: DeliveryTracker.notRoutedReason)
            return
        }
        for consumer in consumers { deliver(batch, to: consumer, wiring) }
    }

    private func deliver(_ batch: Batch, to node: Node, _ wiring: Wiring) {
        if let queue = node.queue {
            node.eventsIn.add(batch.count)
            queue.push(batch)
            return
        }
        guard let filter = node.stage as? any FilterStage else { return }
        node.eventsIn.add(batch.count)
        var output = FilterOutput(portCount: node.eventsOut.count)
        filter.process(batch, into: &output)
        for (port, batches) in output.ports.enumerated() {
            for portBatch in batches {
                node.eventsOut[port].add(portBatch.count)
                forward(portBatch, to: wiring.consumers(of: node, port: port), discardedBy: node, wiring)
            }
        }
        for tracker in output.createdTrackers { tracker.releaseCreationHold() }
    }
}

/// What a reload did, by stage path (`outputs.archive`).
public struct ReloadChanges: Sendable {
    /// Stages that are new.
    public var added: [String] = []
    /// Stages that are gone (stopped and drained).
    public var removed: [String] = []
    /// Stages whose type, options or inputs changed (replaced; the old one drained).
    public var changed: [String] = []
    /// Stages that run on untouched.
    public var kept: [String] = []
    /// Entries the retired outputs had to drop while they drained (0 when nothing was lost).
    public var droppedWhileRetiring = 0
    /// Services of the stages that started, by the stage's run id.
    var startedServices: [(id: Int, services: [any Service])] = []
    /// Run ids of the stages with services that stopped.
    var retiredServices: [Int] = []

    /// Whether the reload changed nothing.
    public var isEmpty: Bool { added.isEmpty && removed.isEmpty && changed.isEmpty }
}

/// One running generation of the graph: its plan, its stages in plan order and how they are wired.
private struct Generation: Sendable {
    let plan: RouterPlan
    let nodes: [Node]
    let wiring: Wiring

    init(plan: RouterPlan, nodes: [Node]) {
        self.plan = plan
        self.nodes = nodes
        wiring = Wiring(plan: plan, nodes: nodes)
    }
}

/// Who consumes each port of each stage, for one generation; and each output's tier (how many outputs feed it
/// through their ports, at most, along one path), so that a stop closes the queues of tier 0 first, drains them,
/// and only then closes the queues they feed.
final class Wiring: Sendable {
    private let consumers: [ObjectIdentifier: [[Node]]]
    let tiers: [ObjectIdentifier: Int]

    static let empty = Wiring()

    private init() {
        consumers = [:]
        tiers = [:]
    }

    fileprivate init(plan: RouterPlan, nodes: [Node]) {
        var byName: [String: Node] = [:]
        for node in nodes { byName[node.name] = node }
        var consumers: [ObjectIdentifier: [[Node]]] = [:]
        for node in nodes { consumers[ObjectIdentifier(node)] = Array(repeating: [], count: node.eventsOut.count) }
        var tiers: [ObjectIdentifier: Int] = [:]
        for stage in plan.stages {
            guard let node = byName[stage.name] else { continue }
            for upstream in stage.upstreams {
                guard let source = byName[upstream.stage], upstream.port < source.eventsOut.count else { continue }
                consumers[ObjectIdentifier(source)]?[upstream.port].append(node)
                let throughOutput = source.queue != nil ? 1 : 0
                tiers[ObjectIdentifier(node)] = max(
                    tiers[ObjectIdentifier(node), default: 0],
                    tiers[ObjectIdentifier(source), default: 0] + throughOutput)
            }
        }
        self.consumers = consumers
        self.tiers = tiers
    }

    /// The stages reading `port` of `node`.
    @inline(__always)
    func consumers(of node: Node, port: Int) -> [Node] {
        guard let ports = consumers[ObjectIdentifier(node)], port < ports.count else { return [] }
        return ports[port]
    }
}

/// Where a stage's batches enter the graph: the wiring they follow, behind a few locks that a reload takes one by
/// one to switch it. A thread takes one of the stripes (by its thread id) for as long as its batch runs through
/// the filters into the output queues, so that `udp` workers seldom wait for each other, and a reload that switches
/// the wiring knows, once it has held every stripe, that no batch still follows the old one.
final class DispatchGate: Sendable {
    private static let stripeCount = 8
    private let stripes: [Stripe]

    private final class Stripe: Sendable {
        let wiring = Mutex<Wiring>(Wiring.empty)
    }

    init() {
        stripes = (0..<DispatchGate.stripeCount).map { _ in Stripe() }
    }

    /// Runs `body` with the current wiring, holding this thread's stripe.
    @inline(__always)
    func dispatch(_ body: (Wiring) -> Void) {
        #if canImport(Glibc)
            let thread = UInt64(pthread_self())
        #else
            let thread = UInt64(UInt(bitPattern: pthread_self()))
        #endif
        let hash = thread &* 0x9E37_79B9_7F4A_7C15
        let stripe = stripes[Int(truncatingIfNeeded: hash >> 61) % DispatchGate.stripeCount]
        stripe.wiring.withLock { wiring in body(wiring) }
    }

    /// Switches every stripe to `wiring`; returns once no batch follows the previous one.
    func switchTo(_ wiring: Wiring) {
        for stripe in stripes { stripe.wiring.withLock { $0 = wiring } }
    }
}

/// A built stage: its instance, queue, counters and thread, which a reload keeps as one unit or retires as one.
final class Node: Sendable {
    private static let nextID = Atomic<Int>(1)

    /// Unique for the process's life: tells a replaced stage from its replacement.
    let id: Int
    let name: String
    let path: String
    let type: String
    let role: StageRole
    let stage: any Stage
    let queue: OutputQueue?
    let buffered: BufferedSource?
    let context: StageContext
    let eventsIn: Counter
    let eventsOut: [Counter]
    let discarded: Counter
    /// For inputs and outputs: where the batches they emit enter the graph.
    let gate: DispatchGate?
    let thread = Mutex<WorkerThread?>(nil)
    private let options: [String: OptionValue]
    private let upstreams: [Upstream]

    init(plan: StagePlan, stage: any Stage, queue: OutputQueue?, buffered: BufferedSource?, context: StageContext) {
        id = Node.nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        name = plan.name
        path = plan.path
        type = plan.kind.declaration.type
        role = plan.kind.role
        self.stage = stage
        self.queue = queue
        self.buffered = buffered
        self.context = context
        options = plan.options.values
        upstreams = plan.upstreams
        gate = plan.kind.role == .filter ? nil : DispatchGate()
        let counters = context.counters
        eventsIn = counters.counter("events_in")
        let ports = Swift.type(of: stage).declaration.portNames(for: context.options)
        eventsOut = ports.map { counters.counter("events_out", label: "port", value: $0) }
        discarded = counters.counter("events_discarded")
    }

    /// Whether `plan` describes this stage as it runs: same role, type, options and inputs.
    func isSame(as plan: StagePlan) -> Bool {
        plan.kind.role == role && plan.kind.declaration.type == type && plan.options.values == options
            && plan.upstreams == upstreams
    }

    /// Waits for the stage's thread, if it has one.
    func join() {
        thread.withLock { $0 }?.join()
    }

    var status: StageStatus {
        StageStatus(
            name: name, type: type, role: role, counters: counters, health: health, queue: queue,
            buffer: buffered?.buffer)
    }

    var health: StageHealth { context.health }
    var logger: Logger { context.logger }
    var counters: StageCounters { context.counters }
    /// How an output reaches its own ports.
    var ports: PortEmitter { context.ports }
}
