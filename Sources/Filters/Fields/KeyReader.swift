/// Reads one field of each entry as a grouping key (`sample` and `throttle` `key:`): a string's decoded text, any
/// other value's JSON text, nothing when the field is absent or the entry is not a JSON object.
struct KeyReader: Sendable {
    private var fields = FieldSet()

    init(_ path: FieldPath) {
        _ = fields.slot(for: path)
    }

    /// Scratch space for ``read(_:into:scratch:)`` on one thread (make one per batch).
    func scratch() -> WalkScratch { WalkScratch(nodes: fields.nodeCount) }

    /// Appends the key of the entry to `key` (cleared first).
    func read(_ entry: UnsafeRawBufferPointer, into key: inout [UInt8], scratch: WalkScratch) {
        key.removeAll(keepingCapacity: true)
        guard let walk = JSONWalk(entry) else { return }
        var value = FieldValue.absent
        withUnsafeMutablePointer(to: &value) { pointer in
            fields.read(walk, into: UnsafeMutableBufferPointer(start: pointer, count: 1), scratch: scratch)
        }
        switch value.kind {
        case .absent: return
        case .string where value.hasEscapes:
            JSONUnescape.append(walk.p + value.start, value.end - value.start, to: &key)
        default:
            key.append(contentsOf: UnsafeBufferPointer(start: walk.p + value.start, count: value.end - value.start))
        }
    }
}

/// A table from keys to per-key state, bounded: past `capacity` keys, new keys share one overflow entry, so that a
/// storm of distinct keys cannot grow memory without bound.
struct BoundedKeyTable<State> {
    private(set) var states: [[UInt8]: State] = [:]
    let capacity: Int
    /// The key every new key maps to once the table is full.
    static var overflowKey: [UInt8] { Array("(other keys)".utf8) }

    init(capacity: Int) { self.capacity = capacity }

    /// The state of `key`, made with `make` when new.
    mutating func withState<Result>(
        _ key: [UInt8], make: () -> State, _ body: (inout State, _ effectiveKey: [UInt8]) -> Result
    ) -> Result {
        var effective = key
        if states[key] == nil && states.count >= capacity { effective = Self.overflowKey }
        return body(&states[effective, default: make()], effective)
    }

    /// Drops the entries `isStale` says are of no more use.
    mutating func prune(_ isStale: (State) -> Bool) {
        states = states.filter { !isStale($0.value) }
    }

    var count: Int { states.count }
}
