public import RouterCore
import RouterSupport
internal import Synchronization

/// `throttle`: lets at most `limit` entries through per `window`, per key (a field's value, the sender's address,
/// or one key for all); the excess leaves by port `throttled`, or is dropped and counted with `drop: true`.
///
/// Windows are fixed: a key's window starts with its first entry and lasts `window`; the next entry after it opens a
/// new one. Excess is counted per key in `throttled{key}` (in `/stats` and `/metrics`), for the first
/// `max_key_series` keys throttled; later keys are counted under `other_keys`.
public final class Throttle: FilterStage {
    /// The `throttle` declaration.
    public static let declaration = StageDeclaration(
        type: "throttle",
        summary: "At most `limit` entries per `window` per key (a field or the sender); the excess to throttled.",
        options: [limit, window, key, bySender, drop, maxKeys, maxKeySeries],
        ports: [
            PortDeclaration(
                "throttled", "Entries over the limit (unless `drop: true`; discarded when nothing reads it).")
        ],
        counters: [
            CounterDeclaration(
                "throttled", label: "key", values: ["other_keys"],
                "Entries over the limit, by key (the first max_key_series keys; later ones, and keys past max_keys, under `other_keys`)."
            )
        ],
        example: StageExample("limit: 100\nwindow: 1s\nkey: host"),
        check: { options in
            let key = (try? options.value(Throttle.key)) ?? nil
            let bySender = (try? options.value(Throttle.bySender)) ?? false
            return key != nil && bySender ? ["give either 'key' or 'by_sender: true', not both"] : []
        },
        validate: { options in
            guard let name = (try? options.value(Throttle.key)) ?? nil, FieldPath(name) == nil else { return [] }
            return [
                OptionProblemReport(
                    "option 'key': '\(name)' is not a field path (names joined by dots, e.g. trace.id)",
                    at: options.locations["key"])
            ]
        }
    )

    static let limit = StageOption<Int>(
        OptionDeclaration(
            "limit", .integer(1...1_000_000_000), .required, "Most entries let through per window per key."))
    static let window = StageOption<Duration>.duration(
        "window", .milliseconds(1)...(.seconds(86_400)), default: .seconds(1),
        "Length of each key's window (fixed windows, each starting at the key's first entry after the last ended).")
    static let key = StageOption<String?>.optionalString(
        "key", "Field path whose value is the key (`host`); entries without it share one key. Default: one key for all."
    )
    static let bySender = StageOption<Bool>.bool(
        "by_sender", default: false, "Key by the datagram's source address (ip:port) instead of a field.")
    static let drop = StageOption<Bool>.bool(
        "drop", default: false,
        "Drop the excess (counted in events_dropped{reason=\"throttled\"}) instead of sending it to port throttled.")
    static let maxKeys = StageOption<Int>.integer(
        "max_keys", 1...10_000_000, default: 100_000,
        "Most keys tracked at once; past it (after expired windows are let go), new keys share one window.")
    static let maxKeySeries = StageOption<Int>.integer(
        "max_key_series", 0...400, default: 50,
        "Most keys counted by name in throttled{key}; later keys are counted under `other_keys`.")

    /// Port index of `throttled`.
    public static let throttledPort = 1

    private struct Window {
        var startNanos: Int64
        var count: Int
    }

    private let limitCount: Int
    private let windowNanos: Int64
    private let keyReader: KeyReader?
    private let keyBySender: Bool
    private let dropExcess: Bool
    private let seriesLimit: Int
    private let counters: StageCounters
    private let state: Mutex<(table: BoundedKeyTable<Window>, series: [[UInt8]: Counter])>
    /// Entries over the limit since start, per key (at most `max_keys` keys; later ones under the overflow key),
    /// for the ranking in `/stats`.
    private let totals: ThrottleTotals
    /// Keys the ranking in `/stats` lists.
    static let rankedKeys = 10
    private let otherSeries: Counter
    private let droppedCounter: Counter

    /// Makes the filter.
    public init(context: StageContext) throws {
        limitCount = try context.options.value(Throttle.limit)
        let window = try context.options.value(Throttle.window)
        windowNanos = window.components.seconds * 1_000_000_000 + window.components.attoseconds / 1_000_000_000
        if let name = try context.options.value(Throttle.key) {
            guard let path = FieldPath(name) else {
                throw StageError(.invalidConfiguration, "'\(name)' is not a field path")
            }
            keyReader = KeyReader(path)
        } else {
            keyReader = nil
        }
        keyBySender = try context.options.value(Throttle.bySender)
        dropExcess = try context.options.value(Throttle.drop)
        seriesLimit = try context.options.value(Throttle.maxKeySeries)
        counters = context.counters
        state = Mutex((BoundedKeyTable(capacity: try context.options.value(Throttle.maxKeys)), [:]))
        otherSeries = context.counters.counter("throttled", label: "key", value: "other_keys")
        let totals = ThrottleTotals(capacity: try context.options.value(Throttle.maxKeys))
        self.totals = totals
        context.counters.setRanking("throttled") {
            let ranked = totals.table.withLock { table in
                table.states.sorted {
                    $0.value > $1.value || ($0.value == $1.value && $0.key.lexicographicallyPrecedes($1.key))
                }
                .prefix(Throttle.rankedKeys)
            }
            return ranked.map {
                (value: $0.key.isEmpty ? "(no key)" : String(decoding: $0.key, as: UTF8.self), count: $0.value)
            }
        }
        droppedCounter = context.counters.counter("events_dropped", label: "reason", value: "throttled")
    }

    /// Splits the batch into what is within the limit and the excess.
    public func process(_ batch: Batch, into output: inout FilterOutput) {
        var keys: [[UInt8]] = []
        keys.reserveCapacity(batch.count)
        var key: [UInt8] = []
        let scratch = keyReader?.scratch()
        for event in batch.events {
            if let keyReader, let scratch {
                batch.withBytes(of: event) { keyReader.read($0, into: &key, scratch: scratch) }
            } else if keyBySender {
                key = Array(event.sender.description.utf8)
            }
            keys.append(key)
        }
        let now = monotonicNanos()
        var over = [Bool](repeating: false, count: batch.count)
        var excess = 0
        let limit = limitCount
        let windowNanos = self.windowNanos
        state.withLock { state in
            if state.table.count >= state.table.capacity {
                state.table.prune { now - $0.startNanos >= windowNanos }
            }
            var overByKey: [[UInt8]: Int] = [:]
            for index in keys.indices {
                let isOver = state.table.withState(keys[index], make: { Window(startNanos: now, count: 0) }) {
                    window, effective -> Bool in
                    if now - window.startNanos >= windowNanos { window = Window(startNanos: now, count: 0) }
                    window.count += 1
                    if window.count <= limit { return false }
                    overByKey[effective, default: 0] += 1
                    return true
                }
                if isOver {
                    over[index] = true
                    excess += 1
                }
            }
            totals.table.withLock { totals in
                for (key, count) in overByKey {
                    totals.withState(key, make: { 0 }) { total, _ in total += count }
                }
            }
            for (key, count) in overByKey {
                if key == BoundedKeyTable<Window>.overflowKey {
                    otherSeries.add(count)
                } else if let series = state.series[key] {
                    series.add(count)
                } else if state.series.count < seriesLimit {
                    let name = key.isEmpty ? "(no key)" : String(decoding: key, as: UTF8.self)
                    let series = counters.counter("throttled", label: "key", value: name)
                    state.series[key] = series
                    series.add(count)
                } else {
                    otherSeries.add(count)
                }
            }
        }
        guard excess > 0 else {
            output.emit(batch)
            return
        }
        var passed: [Event] = []
        var held: [Event] = []
        passed.reserveCapacity(batch.count - excess)
        held.reserveCapacity(excess)
        for (index, event) in batch.events.enumerated() {
            if over[index] { held.append(event) } else { passed.append(event) }
        }
        output.emit(batch.with(events: passed))
        if dropExcess {
            // Counted as lost; an ack waiting on a dropped entry replies that it was throttled.
            droppedCounter.add(held.count)
            batch.markDropped(held, reason: "throttled")
        } else {
            output.emit(batch.with(events: held), port: Throttle.throttledPort)
        }
    }
}

/// Entries over the limit since start, per key, shared by a throttle and its ranking in `/stats`.
final class ThrottleTotals: Sendable {
    let table: Mutex<BoundedKeyTable<Int>>

    init(capacity: Int) { table = Mutex(BoundedKeyTable(capacity: capacity)) }
}
