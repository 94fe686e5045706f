public import Logging
public import RouterConfig
public import RouterCore
public import RouterGraph
import RouterSupport
public import ServiceLifecycle
internal import Synchronization

/// A running graph: stages built from a ``RouterPlan``, threads for inputs and outputs, and the dispatch that
/// carries batches from inputs through filters to output queues.
///
/// Lifecycle: ``init(plan:logger:)`` builds every stage (binding sockets, opening files) and reports every
/// failure at once; ``start()`` starts outputs, then inputs; ``stop()`` stops inputs (which emit what they already
/// received), then closes output queues in graph order and waits until every output has flushed and closed. An
/// output that feeds other stages through a port (`store.rejected`) is drained before the outputs downstream of it
/// are closed, so that what it hands on while it drains is still written.
public final class Router: Sendable {
    /// What the router's stages look like from outside.
    public let observer: RouterObserver
    private let nodes: [Node]
    private let logger: Logger
    private let threads = Mutex<(inputs: [WorkerThread], outputs: [(tier: Int, thread: WorkerThread)])>(([], []))
    private let state = Mutex<LifecycleState>(.built)
    private let shutdownDrops = Mutex<[String: Int]>([:])

    private enum LifecycleState { case built, running, stopping, stopped }

    /// Builds every stage of the plan. Throws ``ConfigErrors`` naming each stage that could not be built.
    public init(plan: RouterPlan, logger: Logger, observer: RouterObserver = RouterObserver()) throws(ConfigErrors) {
        self.observer = observer
        self.logger = logger
        var index: [String: Int] = [:]
        for (position, stage) in plan.stages.enumerated() { index[stage.name] = position }
        var consumers = plan.stages.map {
            [[Int]](repeating: [], count: $0.kind.declaration.portNames(for: $0.options).count)
        }
        for (position, stage) in plan.stages.enumerated() {
            for upstream in stage.upstreams {
                guard let source = index[upstream.stage] else { continue }
                consumers[source][upstream.port].append(position)
            }
        }
        // An output's tier counts the outputs it is fed through (by their ports), so that stop() closes the queues
        // of tier 0 first, drains them, and only then closes the queues they feed.
        var tiers = [Int](repeating: 0, count: plan.stages.count)
        for (position, stage) in plan.stages.enumerated() {
            for upstream in stage.upstreams {
                guard let source = index[upstream.stage] else { continue }
                let throughOutput = plan.stages[source].kind.role == .output ? 1 : 0
                tiers[position] = max(tiers[position], tiers[source] + throughOutput)
            }
        }
        var built: [Node] = []
        var failures: [Diagnostic] = []
        for (position, stage) in plan.stages.enumerated() {
            let portNames = stage.kind.declaration.portNames(for: stage.options)
            let counters = StageCounters(
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
                instance = try stage.kind.stageType.init(context: context)
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
            built.append(
                Node(
                    name: stage.name, path: stage.path, stage: instance, queue: queue, buffered: buffered,
                    consumers: consumers[position], context: context, tier: tiers[position]))
            observer.register(
                StageStatus(
                    name: stage.name, type: stage.kind.declaration.type, role: stage.kind.role, counters: counters,
                    health: health, queue: queue, buffer: buffered?.buffer))
        }
        guard failures.isEmpty else { throw ConfigErrors(failures) }
        nodes = built
    }

    /// Opens the disk buffer of an output with `buffer: {type: disk}` (nil for the memory queue), reporting what
    /// the open found damaged.
    private static func openBuffer(
        stage: StagePlan, plan: RouterPlan, front: OutputQueue, context: StageContext
    ) throws -> BufferedSource? {
        let tree = try stage.options.value(BufferSettings.option)
        let (settings, problems) = BufferSettings.parse(tree)
        guard problems.isEmpty, settings.kind == .disk else { return nil }
        let dataDirectory = (try? plan.globals.value(RouterGlobals.dataDirectory)) ?? "data"
        let path = settings.path ?? dataDirectory + "/" + stage.name
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
        var outputThreads: [(tier: Int, thread: WorkerThread)] = []
        var inputThreads: [WorkerThread] = []
        for (position, node) in nodes.enumerated() where node.queue != nil {
            node.ports.connect { [weak self] batch, port in self?.emit(batch, port: port, from: position) }
        }
        for node in nodes {
            guard let output = node.stage as? any OutputStage, let queue = node.queue else { continue }
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
            outputThreads.append((node.tier, thread))
        }
        for (position, node) in nodes.enumerated() {
            guard let input = node.stage as? any InputStage else { continue }
            let emitter = InputEmitter { [self] batch in self.emit(batch, from: position) }
            let thread = WorkerThread(name: "in-\(node.name)") { [logger = node.logger, health = node.health] in
                do {
                    try input.run(emitter)
                } catch {
                    health.set(.degraded("stopped: \(error)"))
                    logger.error("input stopped", metadata: ["error": "\(error)"])
                }
            }
            try thread.start()
            inputThreads.append(thread)
        }
        threads.withLock { $0 = (inputThreads, outputThreads) }
    }

    /// Stops gracefully and waits: inputs first (each emits what it has already received), then outputs drain their
    /// queues, flush and close. Safe to call more than once; later calls return at once.
    public func stop() {
        let proceed = state.withLock { state -> Bool in
            guard state == .running || state == .built else { return false }
            state = .stopping
            return true
        }
        guard proceed else { return }
        let dropsBefore = outputDrops()
        observer.markDraining()
        let (inputThreads, outputThreads) = threads.withLock { $0 }
        // Inputs blocked on a full queue must be able to emit what they received and stop: the queues take it
        // all now, and each output's drain_timeout bounds how long it tries to write it.
        for node in nodes { node.queue?.beginShutdown() }
        for node in nodes { (node.stage as? any InputStage)?.requestStop() }
        for thread in inputThreads { thread.join() }
        logger.info(
            "inputs stopped; draining outputs",
            metadata: ["queued_events": "\(queuedEvents)", "unwritten_events": "\(unwrittenEvents)"])
        for tier in Set(outputThreads.map(\.tier)).sorted() {
            for node in nodes where node.tier == tier { node.queue?.close() }
            for output in outputThreads where output.tier == tier { output.thread.join() }
        }
        let dropsAfter = outputDrops()
        shutdownDrops.withLock { drops in
            for (name, count) in dropsAfter where count > dropsBefore[name, default: 0] {
                drops[name] = count - dropsBefore[name, default: 0]
            }
        }
        state.withLock { $0 = .stopped }
        observer.markStopped()
    }

    /// Asks every stage that writes files to reopen them (``FileReopening``), as `SIGUSR1` does after an external
    /// log rotation; returns how many stages were asked.
    @discardableResult
    public func reopenFiles() -> Int {
        var count = 0
        for node in nodes {
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
        for node in nodes where node.queue != nil { drops[node.name] = node.counters.total("events_dropped") }
        return drops
    }

    /// The services the stages run in the process's ``ServiceGroup`` (``ServiceProviding``), in graph order. Run
    /// them in the group before the ``RouterService``, so that they are shut down after the router drained.
    public var services: [any Service] {
        nodes.flatMap { ($0.stage as? any ServiceProviding)?.services ?? [] }
    }

    /// Events waiting in every output queue.
    public var queuedEvents: Int {
        nodes.reduce(0) { $0 + ($1.queue?.depth ?? 0) }
    }

    /// Events handed to outputs and neither written nor counted as dropped yet: queued, buffered or being
    /// written. What an immediate exit would lose.
    public var unwrittenEvents: Int {
        nodes.reduce(0) { total, node in
            guard node.queue != nil else { return total }
            // An output counts what it wrote on its default port and what it handed on on its other ports.
            let handled = node.eventsOut.reduce(0) { $0 + $1.value }
            return total + max(0, node.eventsIn.value - handled - node.counters.total("events_dropped"))
        }
    }

    private func emit(_ batch: Batch, from position: Int) {
        let node = nodes[position]
        node.eventsIn.add(batch.count)
        node.eventsOut[0].add(batch.count)
        forward(batch, to: node.consumers[0], discardedBy: node)
    }

    /// What an output's ``PortEmitter`` does: the batch leaves the output through `port` as it would leave a filter.
    private func emit(_ batch: Batch, port: Int, from position: Int) {
        let node = nodes[position]
        guard port > 0, port < node.consumers.count else { return }
        node.eventsOut[port].add(batch.count)
        forward(batch, to: node.consumers[port], discardedBy: node)
    }

    private func forward(_ batch: Batch, to consumers: [Int], discardedBy node: Node) {
        if consumers.isEmpty {
            node.discarded.add(batch.count)
            return
        }
        for consumer in consumers { deliver(batch, to: consumer) }
    }

    private func deliver(_ batch: Batch, to position: Int) {
        let node = nodes[position]
        if let queue = node.queue {
            node.eventsIn.add(batch.count)
            queue.push(batch)
            return
        }
        guard let filter = node.stage as? any FilterStage else { return }
        node.eventsIn.add(batch.count)
        var output = FilterOutput(portCount: node.consumers.count)
        filter.process(batch, into: &output)
        for (port, batches) in output.ports.enumerated() {
            for portBatch in batches {
                node.eventsOut[port].add(portBatch.count)
                forward(portBatch, to: node.consumers[port], discardedBy: node)
            }
        }
        for tracker in output.createdTrackers { tracker.releaseCreationHold() }
    }
}

/// A built stage and its wiring.
private final class Node: Sendable {
    let name: String
    let path: String
    let stage: any Stage
    let queue: OutputQueue?
    let buffered: BufferedSource?
    let consumers: [[Int]]
    let context: StageContext
    let eventsIn: Counter
    let eventsOut: [Counter]
    let discarded: Counter
    /// For outputs: how many outputs feed this one through their ports, at most, along one path.
    let tier: Int

    init(
        name: String, path: String, stage: any Stage, queue: OutputQueue?, buffered: BufferedSource?,
        consumers: [[Int]], context: StageContext, tier: Int
    ) {
        self.name = name
        self.path = path
        self.stage = stage
        self.queue = queue
        self.buffered = buffered
        self.consumers = consumers
        self.context = context
        self.tier = tier
        let counters = context.counters
        eventsIn = counters.counter("events_in")
        let ports = type(of: stage).declaration.portNames(for: context.options)
        eventsOut = ports.map { counters.counter("events_out", label: "port", value: $0) }
        discarded = counters.counter("events_discarded")
    }

    var health: StageHealth { context.health }
    var logger: Logger { context.logger }
    var counters: StageCounters { context.counters }
    /// How an output reaches its own ports.
    var ports: PortEmitter { context.ports }
}
