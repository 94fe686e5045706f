internal import Synchronization

/// The name and optional label of one counter series.
public struct CounterKey: Sendable, Hashable, CustomStringConvertible {
    /// snake_case name.
    public var name: String
    /// Label name (`port`, `reason`), if any.
    public var label: String?
    /// Label value, if any.
    public var value: String?

    /// Makes a key.
    public init(_ name: String, label: String? = nil, value: String? = nil) {
        self.name = name
        self.label = label
        self.value = value
    }

    /// `events_out{port="invalid"}`.
    public var description: String {
        guard let label, let value else { return name }
        return "\(name){\(label)=\"\(value)\"}"
    }
}

/// A stage's counters: lock-free slots, updated once per batch.
///
/// Every stage has `events_in`, `events_out{port}` and `events_dropped{reason}`, plus the counters its
/// declaration lists. A stage looks its counters up once, when built (``counter(_:label:value:)``), and adds to
/// the returned ``Counter`` on the hot path: one relaxed atomic add.
public final class StageCounters: @unchecked Sendable {
    /// Most series one stage can have; past this, new series share one `overflow` slot.
    public static let capacity = 512

    /// The stage's name.
    public let stage: String
    /// The stage's kind.
    public let type: String

    // Safe to share: the pointer is allocated once, never moved, and every slot is an atomic.
    private let slots: UnsafeMutablePointer<Atomic<Int>>
    private let keys = Mutex<(list: [CounterKey], index: [CounterKey: Int])>(([], [:]))
    private let rankingProviders = Mutex<[(name: String, ranked: @Sendable () -> [(value: String, count: Int)])]>([])

    /// Makes the counters for a stage, with every declared series present at zero.
    /// `ports` names every port of this stage (``StageDeclaration/portNames(for:)``); nil: the declared ones.
    public init(stage: String, type: String, declaration: StageDeclaration, ports: [String]? = nil) {
        self.stage = stage
        self.type = type
        slots = UnsafeMutablePointer<Atomic<Int>>.allocate(capacity: StageCounters.capacity)
        for index in 0..<StageCounters.capacity { (slots + index).initialize(to: Atomic(0)) }
        _ = counter("events_in")
        for port in ports ?? declaration.portNames { _ = counter("events_out", label: "port", value: port) }
        for declared in declaration.counters {
            if let label = declared.label {
                for value in declared.labelValues { _ = counter(declared.name, label: label, value: value) }
            } else {
                _ = counter(declared.name)
            }
        }
    }

    deinit {
        slots.deinitialize(count: StageCounters.capacity)
        slots.deallocate()
    }

    /// The counter for a series, created at zero the first time it is asked for.
    public func counter(_ name: String, label: String? = nil, value: String? = nil) -> Counter {
        let key = CounterKey(name, label: label, value: value)
        let index = keys.withLock { keys -> Int in
            if let index = keys.index[key] { return index }
            if keys.list.count >= StageCounters.capacity - 1 {
                let overflow = CounterKey("overflow")
                if let index = keys.index[overflow] { return index }
                keys.list.append(overflow)
                keys.index[overflow] = keys.list.count - 1
                return keys.list.count - 1
            }
            keys.list.append(key)
            keys.index[key] = keys.list.count - 1
            return keys.list.count - 1
        }
        return Counter(owner: self, slot: slots + index)
    }

    /// Registers a ranking `/stats` shows beside the counters (`top.<name>`): the busiest label values of a
    /// counter such as `throttled{key}`, most first, which `ranked` computes when asked (never on the hot path).
    public func setRanking(_ name: String, _ ranked: @escaping @Sendable () -> [(value: String, count: Int)]) {
        rankingProviders.withLock { providers in
            providers.removeAll { $0.name == name }
            providers.append((name, ranked))
        }
    }

    /// Every registered ranking, computed now.
    public func rankings() -> [(name: String, entries: [(value: String, count: Int)])] {
        let providers = rankingProviders.withLock { $0 }
        return providers.map { ($0.name, $0.ranked()) }
    }

    /// Adds to `events_dropped{reason}`; for the rare paths (the hot path keeps a ``Counter``).
    public func dropped(_ count: Int, reason: String) {
        guard count > 0 else { return }
        counter("events_dropped", label: "reason", value: reason).add(count)
    }

    /// Every series and its current value, in the order they were created.
    public func snapshot() -> [(key: CounterKey, value: Int)] {
        let list = keys.withLock { $0.list }
        return list.enumerated().map { index, key in (key, (slots + index).pointee.load(ordering: .relaxed)) }
    }

    /// The current value of one series, or 0.
    public func value(_ name: String, label: String? = nil, value: String? = nil) -> Int {
        let key = CounterKey(name, label: label, value: value)
        guard let index = keys.withLock({ $0.index[key] }) else { return 0 }
        return (slots + index).pointee.load(ordering: .relaxed)
    }

    /// The sum over every label value of a counter.
    public func total(_ name: String) -> Int {
        snapshot().filter { $0.key.name == name }.reduce(0) { $0 + $1.value }
    }

    fileprivate func add(_ amount: Int, at slot: UnsafeMutablePointer<Atomic<Int>>) {
        slot.pointee.wrappingAdd(amount, ordering: .relaxed)
    }

    fileprivate func load(_ slot: UnsafeMutablePointer<Atomic<Int>>) -> Int {
        slot.pointee.load(ordering: .relaxed)
    }
}

/// One counter series: add to it from any thread without a lock.
public struct Counter: @unchecked Sendable {
    // Safe to share: the owner keeps the slot alive and the slot is atomic.
    private let owner: StageCounters
    private let slot: UnsafeMutablePointer<Atomic<Int>>

    fileprivate init(owner: StageCounters, slot: UnsafeMutablePointer<Atomic<Int>>) {
        self.owner = owner
        self.slot = slot
    }

    /// Adds `amount` (relaxed atomic add).
    @inline(__always)
    public func add(_ amount: Int = 1) {
        owner.add(amount, at: slot)
    }

    /// The current value.
    public var value: Int { owner.load(slot) }
}
