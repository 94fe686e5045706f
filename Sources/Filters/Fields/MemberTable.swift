/// One member of an object, as ``MemberTable/index(_:object:depth:)`` records it.
struct MemberSpan {
    /// The key's opening quote, and one past its closing quote.
    var keyStart: Int
    var keyEnd: Int
    var keyEscaped: Bool
    /// The value: its kind, where it starts and one past where it ends (for strings: the quotes included).
    var kind: JSONKind
    var valueStart: Int
    var valueEnd: Int
    var valueEscaped: Bool

    /// The key as ``JSONWalk/Member`` describes it.
    @inline(__always)
    var member: JSONWalk.Member {
        JSONWalk.Member(keyStart: keyStart, key: (keyStart + 1)..<(keyEnd - 1), keyEscaped: keyEscaped)
    }

    /// The value as ``FieldValue`` describes it (for strings: the body between the quotes).
    @inline(__always)
    var value: FieldValue {
        kind == .string
            ? FieldValue(kind: .string, start: valueStart + 1, end: valueEnd - 1, hasEscapes: valueEscaped)
            : FieldValue(kind: kind, start: valueStart, end: valueEnd, hasEscapes: false)
    }
}

/// The members of one object of an entry, found in one tight pass: what `route` and `modify` look fields up in.
///
/// The pass checks the object as strictly as ``JSONWalk`` does (nested values included), but keeps no closure and
/// no reference counting per member; the storage is kept from entry to entry and grows only for wider objects.
final class MemberTable {
    // Read and written only by the thread that owns the scratch space: no dynamic exclusivity checks per member.
    @exclusivity(unchecked) private(set) var spans: UnsafeMutablePointer<MemberSpan>
    @exclusivity(unchecked) private var capacity: Int
    /// Members recorded by the last ``index(_:object:depth:)``.
    @exclusivity(unchecked) private(set) var count = 0

    init(capacity: Int = 32) {
        self.capacity = capacity
        spans = .allocate(capacity: capacity)
    }

    deinit { spans.deallocate() }

    @inline(__always)
    subscript(index: Int) -> MemberSpan { spans[index] }

    /// Records the members of the object whose `{` is at `start`; returns the index just past its `}`, or nil when
    /// it is not JSON (then `count` is 0).
    func index(_ walk: JSONWalk, object start: Int, depth: Int) -> Int? {
        count = 0
        let p = walk.p
        let n = walk.n
        guard start < n, p[start] == 0x7B, depth < JSONWalk.maxDepth else { return nil }
        var i = walk.skipSpace(start &+ 1)
        guard i < n else { return nil }
        if p[i] == 0x7D { return i &+ 1 }
        while true {
            guard i < n, p[i] == 0x22 else { return fail() }
            let key = walk.scanString(i)
            guard key.close >= 0 else { return fail() }
            let keyStart = i
            i = walk.skipSpace(key.close &+ 1)
            guard i < n, p[i] == 0x3A else { return fail() }
            i = walk.skipSpace(i &+ 1)
            guard i < n else { return fail() }
            let valueStart = i
            var kind = JSONKind.string
            var escaped = false
            switch p[i] {
            case 0x22:
                let body = walk.scanString(i)
                guard body.close >= 0 else { return fail() }
                escaped = body.hasEscapes
                i = body.close &+ 1
            case 0x30...0x39, 0x2D:
                guard let end = walk.numberEnd(i) else { return fail() }
                kind = .number
                i = end
            default:
                guard let item = walk.value(at: i, depth: depth &+ 1) else { return fail() }
                kind = item.kind
                i = item.end
            }
            if count == capacity { grow() }
            spans[count] = MemberSpan(
                keyStart: keyStart, keyEnd: key.close &+ 1, keyEscaped: key.hasEscapes, kind: kind,
                valueStart: valueStart, valueEnd: i, valueEscaped: escaped)
            count &+= 1
            i = walk.skipSpace(i)
            guard i < n else { return fail() }
            if p[i] == 0x7D { return i &+ 1 }
            guard p[i] == 0x2C else { return fail() }
            i = walk.skipSpace(i &+ 1)
        }
    }

    private func fail() -> Int? {
        count = 0
        return nil
    }

    private func grow() {
        let larger = UnsafeMutablePointer<MemberSpan>.allocate(capacity: capacity * 2)
        larger.moveInitialize(from: spans, count: count)
        spans.deallocate()
        spans = larger
        capacity *= 2
    }
}

/// Scratch space for reading fields of entries on one thread: a ``MemberTable`` per nesting depth and, per node of
/// a ``NameTree``, which member named it. Make one per batch (a stage may run on several threads at once).
final class WalkScratch {
    @exclusivity(unchecked) private var tables: [MemberTable] = []
    /// By node of the tree being read: the index of the last member that names it, or -1.
    @exclusivity(unchecked) private(set) var found: UnsafeMutablePointer<Int>
    @exclusivity(unchecked) private var nodes: Int

    init(nodes: Int) {
        self.nodes = max(1, nodes)
        found = .allocate(capacity: self.nodes)
    }

    deinit { found.deallocate() }

    /// The table for objects at `depth` (0: the entry).
    @inline(__always)
    func table(_ depth: Int) -> MemberTable {
        while tables.count <= depth { tables.append(MemberTable()) }
        return tables[depth]
    }

    /// Makes room for a tree of `count` nodes.
    func reserve(nodes count: Int) {
        guard count > nodes else { return }
        found.deallocate()
        nodes = count
        found = .allocate(capacity: count)
    }

    /// Records in ``found``, for each child of `node`, the last member of `table` that names it.
    @inline(__always)
    func match(_ table: MemberTable, _ node: Int, _ tree: NameTree, _ walk: JSONWalk) {
        for index in tree.children(of: node) { found[tree.child(index).node] = -1 }
        for index in 0..<table.count {
            let child = tree.match(node, walk, table[index].member)
            if child >= 0 { found[child] = index }
        }
    }
}
