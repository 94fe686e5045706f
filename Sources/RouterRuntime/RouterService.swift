public import Logging
import RouterConfig
import RouterCore
import RouterGraph
import RouterSupport
public import ServiceLifecycle
public import UnixSignals

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs a ``Router`` as a swift-service-lifecycle service: starts it, waits for the group's graceful shutdown,
/// then stops it (inputs first, then the outputs drain).
///
/// Put it last in the ``ServiceGroup``, after ``Router/services`` (the `http_stats` servers): the group shuts
/// services down in reverse order, so the router drains while the dashboard still answers (`/health` says
/// `draining`), and the servers stop once it has. Set the group's `maximumGracefulShutdownDuration` to the
/// router's `shutdown_timeout`: when the drain takes longer, the group cancels this service, which says how many
/// events were not written and exits with status 1. When the drain ends but an output had to drop entries (its
/// destination still failing after its `drain_timeout`), ``run()`` logs how many and throws ``ShutdownLoss``.
public struct RouterService: Service {
    private let router: Router
    private let logger: Logger
    private let notifier: SystemdNotifier
    private let stageServices: StageServiceRunner?

    /// Wraps a built router. With `runsStageServices`, the service runs the stages' services itself (each stage's
    /// in a group of its own, stopped after the router drained), and starts and stops them as `reloader`'s reloads
    /// add and remove stages; then do not also put ``Router/services`` in the group. `notifier` tells systemd when
    /// the router is ready and when it stops.
    public init(
        router: Router, logger: Logger, reloader: ConfigReloader? = nil, runsStageServices: Bool = false,
        notifier: SystemdNotifier = SystemdNotifier(environment: [:])
    ) {
        self.router = router
        self.logger = logger
        self.notifier = notifier
        if runsStageServices {
            let runner = StageServiceRunner(logger: logger)
            reloader?.attach(runner)
            stageServices = runner
        } else {
            stageServices = nil
        }
    }

    /// Starts the router and runs until graceful shutdown; then drains.
    public func run() async throws {
        if let stageServices {
            for stage in router.servicesByStage { stageServices.start(id: stage.id, services: stage.services) }
        }
        try router.start()
        logger.info("started", metadata: ["stages": "\(router.observer.stages.count)"])
        notifier.ready(status: "running generation \(router.observer.loadedConfig?.number ?? 1)")
        try? await gracefulShutdown()
        notifier.stopping()
        let started = monotonicNanos()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Stopping joins the stages' threads: off the cooperative pool.
                let stopper = WorkerThread(name: "shutdown") { [router] in
                    router.stop()
                    continuation.resume()
                }
                do {
                    try stopper.start()
                } catch {
                    router.stop()
                    continuation.resume()
                }
            }
        } onCancel: { [router, logger] in
            guard !router.observer.isStopped else { return }
            logger.error(
                "shutdown timed out; exiting with events still queued",
                metadata: ["events_not_written": "\(router.unwrittenEvents)"])
            _exit(1)
        }
        // The dashboards answered through the drain; now they stop.
        await stageServices?.stopAll()
        let drainMillis = (monotonicNanos() - started) / 1_000_000
        let drops = router.droppedAtShutdown
        guard !drops.isEmpty else {
            logger.info("stopped", metadata: ["drain_ms": "\(drainMillis)"])
            return
        }
        let total = drops.values.reduce(0, +)
        let byOutput = drops.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
        logger.error(
            "stopped; entries were dropped at shutdown",
            metadata: ["drain_ms": "\(drainMillis)", "events_lost": "\(total)", "by_output": "\(byOutput)"])
        throw ShutdownLoss(droppedByOutput: drops)
    }
}

/// A shutdown that drained but had to drop entries (an output's destination still failing after its
/// `drain_timeout`): how many, by output. `routerd` exits with status 3 on it.
public struct ShutdownLoss: Error, CustomStringConvertible {
    /// Entries dropped while stopping, by output name.
    public var droppedByOutput: [String: Int]

    /// Entries dropped while stopping, in all.
    public var total: Int { droppedByOutput.values.reduce(0, +) }

    /// `stopped with 25 entries dropped at shutdown (outputs.to_broker: 25)`.
    public var description: String {
        let outputs = droppedByOutput.sorted { $0.key < $1.key }.map { "outputs.\($0.key): \($0.value)" }
        return "stopped with \(total) entries dropped at shutdown (" + outputs.joined(separator: ", ") + ")"
    }
}

/// Turns the first SIGTERM or SIGINT into the group's graceful shutdown and exits at once on the second, saying
/// how many events were not written; SIGUSR1 reopens every file the outputs write (after logrotate moved them);
/// SIGHUP reopens them too and reloads the config (with a ``ConfigReloader``). The one signal trap of a running
/// router: the ``ServiceGroup`` itself is made without signals and owns the shutdown that follows.
public struct ShutdownSignals: Sendable {
    private let signals: UnixSignalsSequence

    /// Traps the signals now, before anything starts, so that a signal that comes at once is not lost.
    public init(_ trapped: [UnixSignal] = [.sigterm, .sigint, .sigusr1, .sighup]) async {
        signals = await UnixSignalsSequence(trapping: trapped)
    }

    /// Watches until the process ends: the first SIGTERM or SIGINT triggers `group`'s graceful shutdown, a second
    /// exits with status 1; SIGHUP asks `reloader` for a reload (queued behind one that runs).
    public func watch(
        _ group: ServiceGroup, router: Router, logger: Logger, reloader: ConfigReloader? = nil
    ) -> Task<Void, Never> {
        Task { [signals] in
            var seen = 0
            for await signal in signals {
                if signal == .sigusr1 || signal == .sighup {
                    let stages = router.reopenFiles()
                    logger.info("reopening files", metadata: ["signal": "\(signal)", "stages": "\(stages)"])
                    if signal == .sighup {
                        if let reloader {
                            reloader.reloadInBackground(trigger: "SIGHUP")
                        } else {
                            logger.warning("SIGHUP: this router has no config file to reload")
                        }
                    }
                    continue
                }
                seen += 1
                if seen == 1 {
                    logger.info("signal received; draining", metadata: ["signal": "\(signal)"])
                    await group.triggerGracefulShutdown()
                } else {
                    logger.warning(
                        "second signal; exiting at once",
                        metadata: ["signal": "\(signal)", "events_not_written": "\(router.unwrittenEvents)"])
                    _exit(1)
                }
            }
        }
    }
}
