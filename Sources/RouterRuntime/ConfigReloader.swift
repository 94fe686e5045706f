internal import Crypto
public import Logging
import RouterConfig
public import RouterCore
public import RouterGraph
import RouterSupport
internal import ServiceLifecycle
internal import Synchronization

/// Reloads a running router's config file: on `SIGHUP`, `POST /reload` and `--watch-config`.
///
/// Each reload reads and checks the file exactly as `routerd validate` does. A file with mistakes changes
/// nothing: every error is logged with its `file:line:column` and recorded in ``RouterObserver/lastReload`` (which
/// `/stats` shows). A valid file is applied with ``Router/reload(_:)``, which keeps the stages that did not
/// change; the log says which stages were added, removed, changed and kept.
///
/// Reloads never overlap: a request that comes while one runs waits for it, and every request waiting then is
/// answered by one more reload, so none is lost and the file is read again after the last request came.
public final class ConfigReloader: Sendable {
    private let router: Router
    private let path: String
    private let registry: StageRegistry
    private let environment: @Sendable () -> [String: String]
    private let logger: Logger
    private let notifier: SystemdNotifier
    private let queue = Mutex<Queue>(Queue())
    private let globals: Mutex<StageOptions>
    private let services = Mutex<StageServiceRunner?>(nil)

    private typealias Request = (trigger: String, reply: @Sendable (ReloadAttempt) -> Void)

    private struct Queue {
        var running = false
        var waiting: [Request] = []
    }

    /// Makes the reloader for `router`, which was built from `plan`, read from `path`; `environment` is read
    /// again at each reload (for `${VAR}`). Records generation 1 in the router's observer, and makes
    /// ``RouterObserver/requestReload()`` (the `http_stats` `POST /reload`) run reloads here.
    public init(
        router: Router, plan: RouterPlan, path: String, registry: StageRegistry, logger: Logger,
        notifier: SystemdNotifier = SystemdNotifier(environment: [:]),
        environment: @escaping @Sendable () -> [String: String]
    ) {
        self.router = router
        self.path = path
        self.registry = registry
        self.environment = environment
        self.logger = logger
        self.notifier = notifier
        globals = Mutex(plan.globals)
        router.observer.recordLoaded(
            ConfigGeneration(
                number: 1, loadedAtNanos: wallClockNanos(), path: path,
                sha256: Self.sha256(Array((plan.source?.text ?? "").utf8))))
        router.observer.setReloadHandler { [weak self] in
            guard let self else {
                return ReloadAttempt(atNanos: wallClockNanos(), trigger: "http", applied: false, generation: 0)
            }
            return await self.reload(trigger: "http")
        }
    }

    /// Reloads and returns the attempt, after the reload that runs now (if any) and one more.
    public func reload(trigger: String) async -> ReloadAttempt {
        await withCheckedContinuation { (reply: CheckedContinuation<ReloadAttempt, Never>) in
            enqueue(trigger) { reply.resume(returning: $0) }
        }
    }

    /// ``reload(trigger:)`` for a thread outside Swift concurrency: blocks the calling thread until the attempt is
    /// answered, and needs no thread of the concurrency pool.
    public func reloadAndWait(trigger: String) -> ReloadAttempt {
        let answer = AttemptBox()
        enqueue(trigger) { answer.set($0) }
        return answer.wait()
    }

    /// Starts a reload and returns at once (for signals and file watches); the outcome is logged.
    public func reloadInBackground(trigger: String) {
        enqueue(trigger) { _ in }
    }

    /// Queues a request; the reload thread starts when none runs, and answers every request waiting when a reload
    /// begins with that reload.
    private func enqueue(_ trigger: String, _ reply: @escaping @Sendable (ReloadAttempt) -> Void) {
        let startWorker = queue.withLock { queue -> Bool in
            queue.waiting.append((trigger, reply))
            guard !queue.running else { return false }
            queue.running = true
            return true
        }
        guard startWorker else { return }
        let worker = WorkerThread(name: "reload") { [self] in self.drain() }
        do {
            try worker.start()
        } catch {
            drain()
        }
    }

    /// Lets the router's service start and stop the services of stages a reload adds or removes.
    func attach(_ runner: StageServiceRunner) {
        services.withLock { $0 = runner }
    }

    /// Runs reloads while requests wait: every request waiting when one starts is answered by it.
    private func drain() {
        while true {
            let batch = queue.withLock { queue -> [Request] in
                let batch = queue.waiting
                queue.waiting = []
                if batch.isEmpty { queue.running = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            let triggers = Array(Set(batch.map(\.trigger))).sorted().joined(separator: ",")
            let attempt = reloadNow(trigger: triggers)
            for request in batch { request.reply(attempt) }
        }
    }

    private func reloadNow(trigger: String) -> ReloadAttempt {
        notifier.reloading()
        defer { notifier.ready(status: "running generation \(router.observer.loadedConfig?.number ?? 0)") }
        let started = monotonicNanos()
        let generation = router.observer.loadedConfig?.number ?? 0
        logger.info("reloading the config", metadata: ["trigger": "\(trigger)", "path": "\(path)"])
        let plan: RouterPlan
        let changes: ReloadChanges
        do throws(ConfigErrors) {
            let source = try YAMLLoader.readSource(path: path)
            plan = try RouterConfig.parse(source, environment: environment(), registry: registry)
            changes = try router.reload(plan)
        } catch {
            for diagnostic in error.diagnostics {
                logger.error("config error", metadata: ["error": "\(diagnostic.description)"])
            }
            logger.error(
                "reload refused; the running config is unchanged",
                metadata: [
                    "trigger": "\(trigger)", "errors": "\(error.diagnostics.count)", "generation": "\(generation)",
                ])
            let attempt = ReloadAttempt(
                atNanos: wallClockNanos(), trigger: trigger, applied: false, generation: generation,
                errors: error.diagnostics.map(\.description))
            router.observer.recordReload(attempt)
            return attempt
        }
        services.withLock { $0 }?.apply(changes)
        let number = generation + 1
        let digest = Self.sha256(Array((plan.source?.text ?? "").utf8))
        router.observer.recordLoaded(
            ConfigGeneration(number: number, loadedAtNanos: wallClockNanos(), path: path, sha256: digest))
        let previousGlobals = globals.withLock { previous in
            defer { previous = plan.globals }
            return previous
        }
        for (name, value) in plan.globals.values.sorted(by: { $0.key < $1.key })
        where previousGlobals.values[name] != value {
            logger.warning(
                "router option changed; it applies when routerd restarts",
                metadata: ["option": "router.\(name)", "value": "\(value)"])
        }
        let stages = [
            "added": changes.added, "removed": changes.removed, "changed": changes.changed, "kept": changes.kept,
        ]
        var metadata: Logger.Metadata = [
            "trigger": "\(trigger)", "generation": "\(number)", "sha256": "\(digest)",
            "duration_ms": "\((monotonicNanos() - started) / 1_000_000)",
        ]
        for (key, names) in stages { metadata[key] = "\(names.joined(separator: ","))" }
        if changes.droppedWhileRetiring > 0 {
            metadata["events_lost"] = "\(changes.droppedWhileRetiring)"
            logger.error("config reloaded; retired outputs dropped entries while draining", metadata: metadata)
        } else {
            if changes.isEmpty {
                logger.info("config reloaded; no stage changed", metadata: metadata)
            } else {
                logger.info("config reloaded", metadata: metadata)
            }
        }
        let attempt = ReloadAttempt(
            atNanos: wallClockNanos(), trigger: trigger, applied: true, generation: number, stages: stages)
        router.observer.recordReload(attempt)
        return attempt
    }

    static func sha256(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}

/// Runs each stage's services (``ServiceProviding``: the `http_stats` servers) in a service group of its own, so
/// that a reload can start the services of a stage it adds and stop those of a stage it removes.
final class StageServiceRunner: Sendable {
    private let logger: Logger
    private let running = Mutex<[Int: (group: ServiceGroup, task: Task<Void, Never>)]>([:])

    init(logger: Logger) {
        self.logger = logger
    }

    func start(id: Int, services: [any Service]) {
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map {
                    // A stage's service that ends (a server that cannot serve says so itself) leaves the rest running.
                    .init(service: $0, successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore)
                }, logger: logger))
        // Detached: a group run in a task that inherits the router service's task-locals would follow the process
        // group's graceful shutdown and stop the dashboards at its start, not after the router drained.
        let task = Task.detached { _ = try? await group.run() }
        running.withLock { $0[id] = (group, task) }
    }

    func stop(id: Int) async {
        guard let entry = running.withLock({ $0.removeValue(forKey: id) }) else { return }
        await entry.group.triggerGracefulShutdown()
        await entry.task.value
    }

    func stopAll() async {
        let ids = running.withLock { Array($0.keys) }
        for id in ids { await stop(id: id) }
    }

    /// Starts what a reload added (first, so that a replaced dashboard answers on its new port before the old one
    /// stops) and stops what it retired.
    func apply(_ changes: ReloadChanges) {
        for started in changes.startedServices { start(id: started.id, services: started.services) }
        let retired = changes.retiredServices
        guard !retired.isEmpty else { return }
        Task { for id in retired { await self.stop(id: id) } }
    }
}

/// One reload's answer, waited for by a thread.
private final class AttemptBox: @unchecked Sendable {
    // Safe to share: `attempt` is only touched with `lock` held.
    private let lock = ConditionLock()
    private var attempt: ReloadAttempt?

    func set(_ value: ReloadAttempt) {
        lock.withLock {
            attempt = value
            lock.broadcast()
        }
    }

    func wait() -> ReloadAttempt {
        lock.lock()
        defer { lock.unlock() }
        while true {
            if let attempt { return attempt }
            lock.wait()
        }
    }
}
