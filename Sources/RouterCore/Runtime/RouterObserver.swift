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
    private let configuration = Mutex<(loaded: ConfigGeneration?, lastReload: ReloadAttempt?)>((nil, nil))
    private let reloader = Mutex<(@Sendable () async -> ReloadAttempt)?>(nil)

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

    /// Replaces every stage at once (the runtime does this when a reload applied a new config).
    public func replaceStages(_ statuses: [StageStatus]) {
        registered.withLock { $0 = statuses }
    }

    /// The config the router runs now: its generation (1 at start, one more for each reload that applied), when
    /// it was loaded and the file's SHA-256; nil when the router was not built from a file.
    public var loadedConfig: ConfigGeneration? { configuration.withLock { $0.loaded } }

    /// The latest reload attempt, whether it applied or was refused; nil before the first.
    public var lastReload: ReloadAttempt? { configuration.withLock { $0.lastReload } }

    /// Records the config that now runs (the runtime does this at start and after each applied reload).
    public func recordLoaded(_ generation: ConfigGeneration) {
        configuration.withLock { $0.loaded = generation }
    }

    /// Records a reload attempt.
    public func recordReload(_ attempt: ReloadAttempt) {
        configuration.withLock { $0.lastReload = attempt }
    }

    /// Sets what ``requestReload()`` runs (the process's reloader); nil: reloads are not available.
    public func setReloadHandler(_ handler: (@Sendable () async -> ReloadAttempt)?) {
        reloader.withLock { $0 = handler }
    }

    /// Reloads the config as `SIGHUP` does and returns the attempt once it is done (queued behind a reload that
    /// is running); nil when the process has no reloader (a router embedded without one).
    public func requestReload() async -> ReloadAttempt? {
        guard let handler = reloader.withLock({ $0 }) else { return nil }
        return await handler()
    }

    /// Marks the start of a graceful shutdown.
    public func markDraining() {
        draining.store(true, ordering: .relaxed)
    }

    /// The stages' notes (``StageHealth/note``), `path: note`, for `/health`.
    public var healthNotes: [String] {
        stages.compactMap { status in status.health.note.map { "\(status.path): \($0)" } }
    }

    /// The degraded stages and why, for `/health`.
    public var degradedReasons: [String] {
        stages.flatMap { status -> [String] in
            var reasons: [String] = []
            if case .degraded(let reason) = status.health.current { reasons.append("\(status.path): \(reason)") }
            if let report = status.buffer?.report {
                if report.fill > 0.9 {
                    reasons.append(
                        "\(status.path): disk buffer \(Int(report.fill * 100))% of max_size "
                            + "(\(Units.formatSize(report.bytes)) of \(Units.formatSize(report.maxSize)))")
                }
                if let failure = report.readFailure {
                    reasons.append("\(status.path): disk buffer cannot be read (\(failure)); its entries stay on disk")
                }
            }
            return reasons
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
    /// Its disk buffer, for outputs with `buffer: {type: disk}`.
    public var buffer: (any DiskBufferReporting)?

    /// Makes a status.
    public init(
        name: String, type: String, role: StageRole, counters: StageCounters, health: StageHealth,
        queue: OutputQueue? = nil, buffer: (any DiskBufferReporting)? = nil
    ) {
        self.name = name
        self.type = type
        self.role = role
        self.counters = counters
        self.health = health
        self.queue = queue
        self.buffer = buffer
    }

    /// `outputs.server_log`.
    public var path: String { "\(role.section).\(name)" }
}

/// What a disk buffer holds and what it met, for `/stats`, `/metrics`, `/health` and `routerd buffer inspect`.
public struct DiskBufferReport: Sendable, Equatable {
    /// Damage found in the buffer's files.
    public struct Damage: Sendable, Equatable {
        /// Torn records cut off the end of the newest segment at the open (a crash in the middle of a write).
        public var cutRecords = 0
        /// Their bytes.
        public var cutBytes = 0
        /// Damaged stretches skipped (a record whose checksum failed, up to the next good one).
        public var skippedRecords = 0
        /// Their bytes.
        public var skippedBytes = 0
        /// Entries lost in skipped stretches (from the event numbers of the good records around them).
        public var lostEvents = 0

        /// No damage.
        public init() {}
    }

    /// The buffer's directory.
    public var path: String
    /// Bytes of segment files.
    public var bytes: Int
    /// `max_size`.
    public var maxSize: Int
    /// Entries held: appended and not yet settled by the output.
    public var events: Int
    /// Records (batches) held.
    public var records: Int
    /// Segment files.
    public var segments: Int
    /// Receive time of the oldest entry held (ns since the epoch), nil when empty.
    public var oldestNanos: Int64?
    /// Receive time of the newest entry held, nil when empty.
    public var newestNanos: Int64?
    /// Damage found.
    public var damage: Damage
    /// Entries read again at the open that the previous run had handed to the output without their settlement
    /// reaching the ledger: the only entries that can arrive twice.
    public var replayedEvents: Int
    /// Entries dropped because the buffer was full (`when_full: drop_newest`, or at shutdown).
    public var droppedFull: Int
    /// Appends wait for room (`max_size` reached or the disk full).
    public var isFull: Bool
    /// Why the buffer cannot read what it holds (an I/O error on a segment), or nil: the entries stay on disk and
    /// the output gets nothing more from it until routerd restarts.
    public var readFailure: String?

    /// Makes a report.
    public init(
        path: String, bytes: Int, maxSize: Int, events: Int, records: Int, segments: Int, oldestNanos: Int64?,
        newestNanos: Int64?, damage: Damage, replayedEvents: Int, droppedFull: Int, isFull: Bool,
        readFailure: String? = nil
    ) {
        self.readFailure = readFailure
        self.path = path
        self.bytes = bytes
        self.maxSize = maxSize
        self.events = events
        self.records = records
        self.segments = segments
        self.oldestNanos = oldestNanos
        self.newestNanos = newestNanos
        self.damage = damage
        self.replayedEvents = replayedEvents
        self.droppedFull = droppedFull
        self.isFull = isFull
    }

    /// Fill as a fraction of `max_size`.
    public var fill: Double { maxSize > 0 ? Double(bytes) / Double(maxSize) : 0 }
}

/// A disk buffer as the observer sees it.
public protocol DiskBufferReporting: AnyObject, Sendable {
    /// What it holds now (a short lock).
    var report: DiskBufferReport { get }
}

/// One generation of the config a router runs.
public struct ConfigGeneration: Sendable, Equatable {
    /// 1 for the config routerd started with, one more for each reload that applied.
    public var number: Int
    /// When it was loaded, in nanoseconds since the Unix epoch.
    public var loadedAtNanos: Int64
    /// The config file's path.
    public var path: String
    /// The SHA-256 of the file's bytes, in lowercase hex (what `sha256sum` prints).
    public var sha256: String

    /// Makes a generation record.
    public init(number: Int, loadedAtNanos: Int64, path: String, sha256: String) {
        self.number = number
        self.loadedAtNanos = loadedAtNanos
        self.path = path
        self.sha256 = sha256
    }
}

/// One reload attempt: when, what triggered it, and either what it changed or why it was refused.
public struct ReloadAttempt: Sendable, Equatable {
    /// When it ended, in nanoseconds since the Unix epoch.
    public var atNanos: Int64
    /// `SIGHUP`, `http`, `watch`.
    public var trigger: String
    /// Whether the new config runs now.
    public var applied: Bool
    /// The generation running after the attempt.
    public var generation: Int
    /// Every error, rendered `file:line:column: error: ...` with the source line, when it was refused.
    public var errors: [String]
    /// Stage paths (`outputs.archive`) by what happened to them: `added`, `removed`, `changed`, `kept`.
    public var stages: [String: [String]]

    /// Makes a record.
    public init(
        atNanos: Int64, trigger: String, applied: Bool, generation: Int, errors: [String] = [],
        stages: [String: [String]] = [:]
    ) {
        self.atNanos = atNanos
        self.trigger = trigger
        self.applied = applied
        self.generation = generation
        self.errors = errors
        self.stages = stages
    }
}
