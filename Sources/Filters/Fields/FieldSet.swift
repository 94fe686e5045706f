/// Several field paths read from an entry in one pass (`route` reads every field its conditions name at once).
///
/// The paths form a tree of names; the walk descends only into members the tree names and skips the rest. When a
/// key is given twice, the last one counts, as in Python's `json.loads` and most JSON readers.
struct FieldSet: Sendable {
    private struct Node: Sendable {
        var children: [(name: [UInt8], node: Int)] = []
        /// The slot of the path that ends here, or -1.
        var slot = -1
        /// Every slot at or below this node, cleared when the member is seen again.
        var slots: [Int] = []
    }

    private var nodes = [Node()]
    /// The paths, by slot.
    private(set) var paths: [FieldPath] = []

    /// The slot of `path`, added when new.
    mutating func slot(for path: FieldPath) -> Int {
        if let existing = paths.firstIndex(of: path) { return existing }
        var current = 0
        let slot = paths.count
        paths.append(path)
        nodes[0].slots.append(slot)
        for name in path.segments {
            if let child = nodes[current].children.first(where: { $0.name == name }) {
                current = child.node
            } else {
                nodes.append(Node())
                nodes[current].children.append((name, nodes.count - 1))
                current = nodes.count - 1
            }
            nodes[current].slots.append(slot)
        }
        nodes[current].slot = slot
        return slot
    }

    /// Fills `values` (one per slot) from the entry; every path is absent when the entry is not a JSON object.
    func read(_ walk: JSONWalk, into values: UnsafeMutableBufferPointer<FieldValue>) {
        for index in values.indices { values[index] = .absent }
        let open = walk.skipSpace(0)
        guard let end = read(walk, object: open, node: 0, into: values), walk.skipSpace(end) == walk.n else {
            for index in values.indices { values[index] = .absent }
            return
        }
    }

    private func read(
        _ walk: JSONWalk, object start: Int, node: Int, depth: Int = 0,
        into values: UnsafeMutableBufferPointer<FieldValue>
    ) -> Int? {
        let children = nodes[node].children
        return walk.members(of: start, depth: depth) { member, _, _, value in
            guard let child = children.first(where: { walk.key(member, equals: $0.name) })?.node else { return true }
            let childNode = nodes[child]
            for slot in childNode.slots { values[slot] = .absent }
            if childNode.slot >= 0 { values[childNode.slot] = value }
            if value.kind == .object && !childNode.children.isEmpty {
                // Already checked by the walk; read again for the names below.
                _ = read(walk, object: value.start, node: child, depth: depth + 1, into: values)
            }
            return true
        }
    }
}
