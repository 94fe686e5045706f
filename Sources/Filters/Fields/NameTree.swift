#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Field paths as a tree of member names, in flat storage that the walks read per member without reference
/// counting: node 0 is the entry, each path's names lead from it to the node where the path ends.
///
/// A member's key is matched by its length and first eight bytes, and only longer keys compare the rest.
final class NameTree: @unchecked Sendable {
    // Safe to share: everything is written in `init` and only read afterwards.

    /// One child of a node: the member name that leads to it.
    struct Child {
        var length: Int
        /// The name's first eight bytes (little-endian, zero past its end).
        var prefix: UInt64
        /// Where the name's bytes start in `names`.
        var name: Int
        var node: Int
    }

    let nodeCount: Int
    private let childBounds: UnsafeMutablePointer<Int>
    private let children: UnsafeMutablePointer<Child>
    private let names: UnsafeMutablePointer<UInt8>
    private let endSlots: UnsafeMutablePointer<Int>
    private let slotBounds: UnsafeMutablePointer<Int>
    private let slotList: UnsafeMutablePointer<Int>

    /// The tree of `paths`; path `i` has slot `i`.
    init(paths: [FieldPath]) {
        var nodeChildren: [[(name: [UInt8], node: Int)]] = [[]]
        var nodeEnd = [-1]
        var nodeSlots: [[Int]] = [[]]
        for (slot, path) in paths.enumerated() {
            var current = 0
            nodeSlots[0].append(slot)
            for name in path.segments {
                if let child = nodeChildren[current].first(where: { $0.name == name }) {
                    current = child.node
                } else {
                    nodeChildren.append([])
                    nodeEnd.append(-1)
                    nodeSlots.append([])
                    nodeChildren[current].append((name, nodeChildren.count - 1))
                    current = nodeChildren.count - 1
                }
                nodeSlots[current].append(slot)
            }
            if nodeEnd[current] < 0 { nodeEnd[current] = slot }
        }
        nodeCount = nodeChildren.count
        let childTotal = nodeChildren.reduce(0) { $0 + $1.count }
        let nameTotal = nodeChildren.reduce(0) { $0 + $1.reduce(0) { $0 + $1.name.count } }
        let slotTotal = nodeSlots.reduce(0) { $0 + $1.count }
        childBounds = .allocate(capacity: nodeCount + 1)
        children = .allocate(capacity: max(1, childTotal))
        names = .allocate(capacity: max(1, nameTotal))
        endSlots = .allocate(capacity: nodeCount)
        slotBounds = .allocate(capacity: nodeCount + 1)
        slotList = .allocate(capacity: max(1, slotTotal))
        var childIndex = 0
        var nameIndex = 0
        var slotIndex = 0
        for node in 0..<nodeCount {
            childBounds[node] = childIndex
            for child in nodeChildren[node] {
                var prefix: UInt64 = 0
                for (offset, byte) in child.name.prefix(8).enumerated() { prefix |= UInt64(byte) << (8 * offset) }
                children[childIndex] = Child(
                    length: child.name.count, prefix: prefix, name: nameIndex, node: child.node)
                for byte in child.name {
                    names[nameIndex] = byte
                    nameIndex += 1
                }
                childIndex += 1
            }
            endSlots[node] = nodeEnd[node]
            slotBounds[node] = slotIndex
            for slot in nodeSlots[node] {
                slotList[slotIndex] = slot
                slotIndex += 1
            }
        }
        childBounds[nodeCount] = childIndex
        slotBounds[nodeCount] = slotIndex
    }

    deinit {
        childBounds.deallocate()
        children.deallocate()
        names.deallocate()
        endSlots.deallocate()
        slotBounds.deallocate()
        slotList.deallocate()
    }

    /// The children of `node`, as indices for ``child(_:)``.
    @inline(__always)
    func children(of node: Int) -> Range<Int> { childBounds[node]..<childBounds[node + 1] }

    @inline(__always)
    func child(_ index: Int) -> Child { children[index] }

    @inline(__always)
    func hasChildren(_ node: Int) -> Bool { childBounds[node + 1] > childBounds[node] }

    /// The slot of the path that ends at `node`, or -1.
    @inline(__always)
    func endSlot(_ node: Int) -> Int { endSlots[node] }

    /// The slots of every path through `node`.
    @inline(__always)
    func slots(through node: Int) -> UnsafeBufferPointer<Int> {
        UnsafeBufferPointer(start: slotList + slotBounds[node], count: slotBounds[node + 1] - slotBounds[node])
    }

    /// The child of `node` that the member's key names, or -1.
    @inline(__always)
    func match(_ node: Int, _ walk: JSONWalk, _ member: JSONWalk.Member) -> Int {
        let range = children(of: node)
        guard !range.isEmpty else { return -1 }
        if member.keyEscaped { return matchDecoded(node, walk, member) }
        return find(range, walk.p + member.key.lowerBound, member.key.count, walk.n - member.key.lowerBound)
    }

    private func matchDecoded(_ node: Int, _ walk: JSONWalk, _ member: JSONWalk.Member) -> Int {
        var decoded: [UInt8] = []
        JSONUnescape.append(walk.p + member.key.lowerBound, member.key.count, to: &decoded)
        // A terminating byte keeps the pointer valid for an empty name.
        decoded.append(0)
        return decoded.withUnsafeBufferPointer { key in
            guard let base = key.baseAddress else { return -1 }
            return find(children(of: node), base, key.count - 1, key.count - 1)
        }
    }

    /// The node of the child among `range` whose name is the `count` bytes at `key` (`available` may be read), or -1.
    @inline(__always)
    private func find(_ range: Range<Int>, _ key: UnsafePointer<UInt8>, _ count: Int, _ available: Int) -> Int {
        let prefix = Self.prefix(key, count, available: available)
        for index in range {
            let child = children[index]
            if child.length == count && child.prefix == prefix
                && (count <= 8 || memcmp(names + child.name + 8, key + 8, count - 8) == 0)
            {
                return child.node
            }
        }
        return -1
    }

    /// The first eight bytes of the `count` at `key` (little-endian, zero past the end); `available` bytes may be
    /// read from `key`.
    @inline(__always)
    private static func prefix(_ key: UnsafePointer<UInt8>, _ count: Int, available: Int) -> UInt64 {
        if available >= 8 {
            let word = UInt64(littleEndian: UnsafeRawPointer(key).loadUnaligned(as: UInt64.self))
            return count >= 8 ? word : word & ((1 &<< UInt64(8 &* count)) &- 1)
        }
        var prefix: UInt64 = 0
        for offset in 0..<min(count, 8) { prefix |= UInt64(key[offset]) &<< UInt64(8 &* offset) }
        return prefix
    }
}

/// Field paths by slot and their ``NameTree``, grown while a stage's options are compiled (`route`'s fields,
/// `modify`'s paths).
struct PathSlots: Sendable {
    private(set) var paths: [FieldPath] = []
    private(set) var tree = NameTree(paths: [])

    /// The slot of `path`, added when new.
    mutating func slot(for path: FieldPath) -> Int {
        if let existing = paths.firstIndex(of: path) { return existing }
        paths.append(path)
        tree = NameTree(paths: paths)
        return paths.count - 1
    }
}
