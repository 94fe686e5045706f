public import RouterCore
import RouterSupport
import Synchronization

/// The state `http_stats` shares between its stage thread (the writer, once per batch) and its HTTP handlers
/// (the readers): the ``StatsModel`` behind a mutex, and the samples of drop counters `/health` compares with.
public final class StatsStore: Sendable {
    /// How far back `/health` looks for drops.
    public static let dropWindowNanos: Int64 = 10_000_000_000

    /// The router being reported on.
    public let router: RouterObserver
    /// Levels whose entries go into the recent-errors ring.
    public let errorLevels: Set<Level>
    private let model: Mutex<StatsModel>
    private let dropSamples: Mutex<[DropSample]>

    /// Makes a store for a router.
    public init(router: RouterObserver, recentErrors: Int, errorLevels: Set<Level>, ledgerMaxSenders: Int) {
        self.router = router
        self.errorLevels = errorLevels
        model = Mutex(StatsModel(recentErrors: recentErrors, ledgerMaxSenders: ledgerMaxSenders))
        dropSamples = Mutex([DropSample(atNanos: monotonicNanos(), totals: [:])])
    }

    /// A copy of the model, taken under the lock.
    public var snapshot: StatsModel { model.withLock { $0 } }

    /// Reads what a batch holds (without the lock), then adds it to the model under one lock.
    public func add(_ batch: Batch) {
        let summary = BatchSummarizer.summarize(batch, errorLevels: errorLevels)
        let now = monotonicNanos()
        model.withLock { $0.merge(summary, atMonotonicNanos: now) }
    }

    /// Reads the ledger and totals with `body` under the lock, for readers that need less than a full copy.
    func read<Result>(_ body: (borrowing StatsModel) -> Result) -> Result {
        model.withLock { body($0) }
    }

    // MARK: - Health

    /// What `/health` says.
    public enum Status: String, Sendable {
        /// Every stage is working and nothing was dropped in the last 10 s.
        case ok
        /// A stage reports itself degraded, or something was dropped in the last 10 s; see the reasons.
        case degraded
        /// A graceful shutdown is under way.
        case draining
    }

    /// The router's health and, when degraded, why.
    public func health() -> (status: Status, reasons: [String]) {
        if router.isDraining || router.isStopped { return (.draining, []) }
        let reasons = router.degradedReasons + dropReasons()
        return (reasons.isEmpty ? .ok : .degraded, reasons)
    }

    /// The stages' notes for `/health` (the broker in use, failovers), whatever the status.
    public func healthNotes() -> [String] { router.healthNotes }

    /// Records the current drop counters, at most once a second; the stage thread calls this between batches.
    public func sampleDrops() {
        let now = monotonicNanos()
        let due = dropSamples.withLock { samples in
            guard let last = samples.last else { return true }
            return now - last.atNanos >= 1_000_000_000
        }
        guard due else { return }
        let totals = currentDropTotals()
        dropSamples.withLock { samples in
            samples.append(DropSample(atNanos: now, totals: totals))
            // Keep the newest sample at least a window old (the baseline) and every one after it.
            while samples.count > 2, now - samples[1].atNanos >= StatsStore.dropWindowNanos { samples.removeFirst() }
        }
    }

    /// One line per stage and reason whose drop counter grew in the last 10 s.
    private func dropReasons() -> [String] {
        let now = monotonicNanos()
        let baseline = dropSamples.withLock { samples -> [DropKey: Int] in
            let old = samples.last { now - $0.atNanos >= StatsStore.dropWindowNanos } ?? samples.first
            return old?.totals ?? [:]
        }
        var reasons: [String] = []
        for (key, value) in currentDropTotals().sorted(by: { $0.key < $1.key }) {
            let grown = value - (baseline[key] ?? 0)
            guard grown > 0 else { continue }
            if key.reason == DropKey.kernel {
                reasons.append(
                    "\(key.path): the kernel dropped \(grown) datagrams in the last 10 s (receive buffer full)")
            } else {
                reasons.append("\(key.path): \(grown) events dropped in the last 10 s (\(key.reason))")
            }
        }
        return reasons
    }

    private func currentDropTotals() -> [DropKey: Int] {
        var totals: [DropKey: Int] = [:]
        for stage in router.stages {
            for (key, value) in stage.counters.snapshot() where value > 0 {
                if key.name == "events_dropped" {
                    totals[DropKey(path: stage.path, reason: key.value ?? "unknown"), default: 0] += value
                } else if key.name == "kernel_drops" {
                    totals[DropKey(path: stage.path, reason: DropKey.kernel), default: 0] += value
                }
            }
        }
        return totals
    }
}

private struct DropKey: Hashable, Comparable {
    static let kernel = "kernel_drops"
    var path: String
    var reason: String

    static func < (lhs: DropKey, rhs: DropKey) -> Bool { (lhs.path, lhs.reason) < (rhs.path, rhs.reason) }
}

private struct DropSample {
    var atNanos: Int64
    var totals: [DropKey: Int]
}

/// Turns a batch into a ``BatchSummary``: level counts, error entries, sequences for the ledger.
enum BatchSummarizer {
    static func summarize(_ batch: Batch, errorLevels: Set<Level>) -> BatchSummary {
        var summary = BatchSummary()
        summary.received = batch.count
        summary.sequences.reserveCapacity(batch.count)
        var errorMask = [Bool](repeating: false, count: Level.allCases.count)
        for level in errorLevels { errorMask[Int(level.rawValue)] = true }
        var lastHost = UnsafeRawBufferPointer(start: nil, count: 0)
        var lastApp = UnsafeRawBufferPointer(start: nil, count: 0)
        var lastKey = LossLedger.Key(host: "", app: "")
        var haveKey = false
        batch.bytes.withUnsafeBytes { all in
            for event in batch.events {
                if event.reason != .none {
                    // From a side port (`invalid`, `rejected`): counted, but its fields are not trusted.
                    summary.invalid += 1
                    continue
                }
                let bytes = UnsafeRawBufferPointer(rebasing: all[Int(event.start)..<Int(event.start + event.count)])
                var level = event.level
                var sequence: Int64? = event.hasSequence ? event.sequence : nil
                var read: EntryFieldValues?
                var hostBytes = UnsafeRawBufferPointer(start: nil, count: 0)
                var appBytes = UnsafeRawBufferPointer(start: nil, count: 0)
                let extracted = event.flags.contains(.fieldsExtracted)
                if extracted {
                    if event.host.isPresent {
                        hostBytes = UnsafeRawBufferPointer(
                            rebasing: all[Int(event.host.start)..<Int(event.host.start + event.host.count)])
                    }
                    if event.app.isPresent {
                        appBytes = UnsafeRawBufferPointer(
                            rebasing: all[Int(event.app.start)..<Int(event.app.start + event.app.count)])
                    }
                } else {
                    let values = EntryFieldReader.read(bytes)
                    read = values
                    level = values.level.map { Level(name: $0) ?? .unknown } ?? .unknown
                    sequence = values.sequence
                }
                summary.levels[Int(level.rawValue)] += 1
                if errorMask[Int(level.rawValue)] {
                    let values = read ?? EntryFieldReader.read(bytes)
                    summary.errors.append(
                        RecentError(
                            receivedAtNanos: batch.arrivalNanos(of: event), timestamp: values.timestamp ?? "",
                            level: level == .unknown ? (values.level ?? "") : level.description,
                            sequence: values.sequence, host: values.host ?? "", app: values.app ?? "",
                            message: values.message ?? ""))
                }
                guard let sequence else {
                    summary.unsequenced += 1
                    continue
                }
                if extracted {
                    // The same sender as the previous entry (the usual case in a batch): no new strings. Both
                    // buffers point into this batch's bytes, valid for the whole closure.
                    if !haveKey || !hostBytes.elementsEqual(lastHost) || !appBytes.elementsEqual(lastApp) {
                        lastHost = hostBytes
                        lastApp = appBytes
                        lastKey = LossLedger.Key(
                            host: text(hostBytes, escaped: event.flags.contains(.hostEscaped)),
                            app: text(appBytes, escaped: event.flags.contains(.appEscaped)))
                        haveKey = true
                    }
                } else {
                    lastKey = LossLedger.Key(host: read?.host ?? "", app: read?.app ?? "")
                    haveKey = false
                }
                summary.sequences.append(
                    BatchSummary.Sequenced(key: lastKey, sequence: sequence, atNanos: batch.arrivalNanos(of: event)))
            }
        }
        return summary
    }

    private static func text(_ raw: UnsafeRawBufferPointer, escaped: Bool) -> String {
        escaped ? EntryFieldReader.decode(raw) : String(decoding: raw, as: UTF8.self)
    }
}

/// A stage counter slot, named apart from Prometheus's `Counter` and for files where `Router` means Hummingbird's.
typealias StageCounter = Counter
