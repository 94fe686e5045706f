import RouterSupport
internal import Synchronization

/// A read-only view of a running router: its stages, their counters, queues and health.
///
/// Given to every stage through ``StageContext/router``, so that reporting stages (`http_stats`) see the whole
/// router. Reading it takes a short lock per stage, never on the hot path.
public final class RouterObserver: Sendable {
    /// When the router was made, in nanoseconds since the Unix epoch.
    public let startedAtNanos: Int64
    /// When the router was made, on the monotonic clock (for uptime and rates).
    public let startedAtMonotonicNanos: Int64
    private let registered = Mutex<[StageStatus]>([])
    private let draining = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)

    /// Makes an observer with no stages yet.
    public init() {
        startedAtNanos = wallClockNanos()
        startedAtMonotonicNanos = monotonicNanos()
    }

    /// Every stage, in graph order.
    public var stages: [StageStatus] { registered.withLock { $0 } }

    /// Whether a graceful shutdown is under way.
    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Whether a graceful shutdown has finished.
    public var isStopped: Bool { stopped.load(ordering: .acquiring) }

    /// Marks the end of a graceful shutdown.
    public func markStopped() {
        stopped.store(true, ordering: .releasing)
    }

    /// Seconds since the router was made.
    public var uptimeSeconds: Double { Double(monotonicNanos() - startedAtMonotonicNanos) / 1e9 }

    /// Adds a stage (the runtime does this while building).
    public func register(_ status: StageStatus) {
        registered.withLock { $0.append(status) }
    }

    /// Marks the start of a graceful shutdown.
    public func markDraining() {
        draining.store(true, ordering: .relaxed)
    }

    /// The degraded stages and why, for `/health`.
    public var degradedReasons: [String] {
        stages.compactMap { status in
            if case .degraded(let reason) = status.health.current { return "\(status.path): \(reason)" }
            return nil
        }
    }
}

/// One stage as seen by the observer.
public struct StageStatus: Sendable {
    /// The stage's name.
    public var name: String
    /// Its kind.
    public var type: String
    /// Its role.
    public var role: StageRole
    /// Its counters.
    public var counters: StageCounters
    /// Its health.
    public var health: StageHealth
    /// Its queue, for outputs.
    public var queue: OutputQueue?

    /// Makes a status.
    public init(
        name: String, type: String, role: StageRole, counters: StageCounters, health: StageHealth,
        queue: OutputQueue? = nil
    ) {
        self.name = name
        self.type = type
        self.role = role
        self.counters = counters
        self.health = health
        self.queue = queue
    }

    /// `outputs.server_log`.
    public var path: String { "\(role.section).\(name)" }
}
