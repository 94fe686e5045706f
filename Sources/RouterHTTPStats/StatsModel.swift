import RouterCore
import RouterSupport

/// One entry kept in the recent-errors ring, as shown on the dashboard.
public struct RecentError: Sendable, Equatable {
    /// When routerd received it (nanoseconds since the Unix epoch).
    public var receivedAtNanos: Int64
    /// The entry's `timestamp` field, as sent.
    public var timestamp: String
    /// The entry's level, canonical (`ERROR`), or the text sent when it is not a known level.
    public var level: String
    /// The entry's sequence, if any.
    public var sequence: Int64?
    /// The entry's `host`.
    public var host: String
    /// The entry's `app`.
    public var app: String
    /// The entry's `message` (cut at 4 KiB, JSON escapes decoded).
    public var message: String
}

/// What `http_stats` has counted from the entries it was given: totals, levels, rate, recent errors, loss ledger.
///
/// Updated once per batch by the stage's thread; read by the HTTP handlers through ``StatsStore``.
public struct StatsModel: Sendable {
    /// Length of the window the rate is measured over.
    public static let rateWindowSeconds = 10

    /// Entries received.
    public private(set) var received = 0
    /// Entries that arrived with a reason: from a side port such as `valid.invalid`.
    public private(set) var invalid = 0
    /// Entries per level, indexed by ``Level/rawValue`` (`unknown` first).
    public private(set) var levels = [Int](repeating: 0, count: Level.allCases.count)
    /// Entries at an error level ever seen (the ring keeps only the newest).
    public private(set) var errorsSeen = 0
    /// The loss ledger.
    public private(set) var ledger: LossLedger
    /// Entries with no sequence number (not in the ledger).
    public private(set) var unsequenced = 0
    /// How many recent errors are kept.
    public let recentErrorCapacity: Int

    private var ring: [RecentError] = []
    private var ringNext = 0
    private var buckets = [Int](repeating: 0, count: StatsModel.rateWindowSeconds + 1)
    private var bucketSecond: Int64 = 0

    /// Makes an empty model.
    public init(recentErrors: Int, ledgerMaxSenders: Int) {
        recentErrorCapacity = max(0, recentErrors)
        ledger = LossLedger(maxSenders: ledgerMaxSenders)
    }

    /// The recent errors, newest first.
    public var recentErrors: [RecentError] {
        guard ring.count == recentErrorCapacity, recentErrorCapacity > 0 else { return ring.reversed() }
        return Array((ring[ringNext...] + ring[..<ringNext]).reversed())
    }

    /// Adds `count` entries received at `monotonicNanos` to the rate window.
    mutating func countForRate(_ count: Int, atMonotonicNanos nanos: Int64) {
        advanceBuckets(to: nanos / 1_000_000_000)
        buckets[Int(bucketSecond % Int64(buckets.count))] += count
    }

    /// Entries per second over the last ``rateWindowSeconds`` (or since `startedAt` when that is more recent).
    public func rate(atMonotonicNanos nanos: Int64, startedAtMonotonicNanos started: Int64) -> Double {
        let second = nanos / 1_000_000_000
        var sum = 0
        let window = Int64(StatsModel.rateWindowSeconds)
        // Buckets for whole seconds in (second - window, second]; the current second is partial.
        for offset in 0..<window {
            let bucket = second - offset
            guard bucket <= bucketSecond, bucketSecond - bucket < Int64(buckets.count) else { continue }
            sum += buckets[Int(bucket % Int64(buckets.count))]
        }
        let windowStart = max(Double(second - window + 1), Double(started) / 1e9)
        let span = max(Double(nanos) / 1e9 - windowStart, 1.0)
        return Double(sum) / span
    }

    private mutating func advanceBuckets(to second: Int64) {
        guard second > bucketSecond else { return }
        let steps = min(second - bucketSecond, Int64(buckets.count))
        for step in 1...steps { buckets[Int((bucketSecond + step) % Int64(buckets.count))] = 0 }
        bucketSecond = second
    }

    /// Adds what one batch summed up.
    mutating func merge(_ summary: BatchSummary, atMonotonicNanos nanos: Int64) {
        received += summary.received
        invalid += summary.invalid
        unsequenced += summary.unsequenced
        for (index, count) in summary.levels.enumerated() { levels[index] += count }
        countForRate(summary.received, atMonotonicNanos: nanos)
        errorsSeen += summary.errors.count
        for error in summary.errors { remember(error) }
        for sequence in summary.sequences {
            ledger.record(sequence.key, sequence: sequence.sequence, atNanos: sequence.atNanos)
        }
    }

    private mutating func remember(_ error: RecentError) {
        guard recentErrorCapacity > 0 else { return }
        if ring.count < recentErrorCapacity {
            ring.append(error)
            ringNext = ring.count % recentErrorCapacity
        } else {
            ring[ringNext] = error
            ringNext = (ringNext + 1) % recentErrorCapacity
        }
    }
}

/// What one batch adds to the model, computed without the lock.
struct BatchSummary {
    struct Sequenced {
        var key: LossLedger.Key
        var sequence: Int64
        var atNanos: Int64
    }

    var received = 0
    var invalid = 0
    var unsequenced = 0
    var levels = [Int](repeating: 0, count: Level.allCases.count)
    var errors: [RecentError] = []
    var sequences: [Sequenced] = []
}
