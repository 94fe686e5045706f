/// Several field paths read from an entry in one pass (`route` reads every field its conditions name at once).
///
/// The paths form a tree of names (``NameTree``); the walk descends only into members the tree names and skips the
/// rest. When a key is given twice, the last one counts, as in Python's `json.loads` and most JSON readers.
struct FieldSet: Sendable {
    private var slots = PathSlots()

    /// The paths, by slot.
    var paths: [FieldPath] { slots.paths }

    /// The slot of `path`, added when new.
    mutating func slot(for path: FieldPath) -> Int { slots.slot(for: path) }

    /// Nodes of the tree of names, for ``WalkScratch``.
    var nodeCount: Int { slots.tree.nodeCount }

    private var tree: NameTree { slots.tree }

    /// Fills `values` (one per slot) from the entry; every path is absent when the entry is not a JSON object.
    func read(_ walk: JSONWalk, into values: UnsafeMutableBufferPointer<FieldValue>, scratch: WalkScratch) {
        for index in values.indices { values[index] = .absent }
        scratch.reserve(nodes: tree.nodeCount)
        let table = scratch.table(0)
        let open = walk.skipSpace(0)
        guard let end = table.index(walk, object: open, depth: 0), walk.skipSpace(end) == walk.n else { return }
        read(walk, table, node: 0, depth: 0, into: values, scratch)
    }

    private func read(
        _ walk: JSONWalk, _ table: MemberTable, node: Int, depth: Int,
        into values: UnsafeMutableBufferPointer<FieldValue>,
        _ scratch: WalkScratch
    ) {
        scratch.match(table, node, tree, walk)
        for index in tree.children(of: node) {
            let child = tree.child(index).node
            let member = scratch.found[child]
            guard member >= 0 else { continue }
            let span = table[member]
            let slot = tree.endSlot(child)
            if slot >= 0 { values[slot] = span.value }
            if span.kind == .object && tree.hasChildren(child) {
                // Already checked by the walk; read again for the names below.
                let inner = scratch.table(depth + 1)
                _ = inner.index(walk, object: span.valueStart, depth: depth + 1)
                read(walk, inner, node: child, depth: depth + 1, into: values, scratch)
            }
        }
    }
}
