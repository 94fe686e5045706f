/// Where a field path leads in an entry, for `modify`'s byte-exact edits.
enum FieldLocation {
    /// The member exists.
    case found(Found)
    /// The object at depth `depth` (0: the entry) has no member named by segment `depth`.
    case missing(object: Int, lastValueEnd: Int, depth: Int)
    /// The value named by the first `depth` segments is not an object, so segment `depth` cannot be in it.
    case notObject(depth: Int)
    /// The entry is not one JSON object.
    case notJSONObject

    struct Found {
        var keyStart: Int
        var keyEnd: Int
        var previousEnd: Int
        var valueEnd: Int
        var value: FieldValue
        /// The next member's key quote, when there is a next member.
        var nextKeyStart: Int?

        /// Where the value's text starts (the opening quote of a string).
        var valueBegin: Int { value.kind == .string ? value.start - 1 : value.start }
    }
}

extension JSONWalk {
    /// Where `path` leads; the last of a key given twice counts.
    func locate(_ path: FieldPath) -> FieldLocation {
        guard let top = topObject() else { return .notJSONObject }
        var object = top.open
        for depth in path.segments.indices {
            let name = path.segments[depth]
            var found: FieldLocation.Found?
            var lastValueEnd = -1
            let end = members(of: object, depth: depth) { member, previousEnd, valueEnd, value in
                if key(member, equals: name) {
                    found = FieldLocation.Found(
                        keyStart: member.keyStart, keyEnd: member.key.upperBound + 1, previousEnd: previousEnd,
                        valueEnd: valueEnd, value: value, nextKeyStart: nil)
                } else if found != nil && found?.nextKeyStart == nil && found?.valueEnd == previousEnd {
                    found?.nextKeyStart = member.keyStart
                }
                lastValueEnd = valueEnd
                return true
            }
            guard end != nil else { return .notJSONObject }
            guard let found else { return .missing(object: object, lastValueEnd: lastValueEnd, depth: depth) }
            if depth == path.segments.count - 1 { return .found(found) }
            guard found.value.kind == .object else { return .notObject(depth: depth + 1) }
            object = found.value.start
        }
        return .notJSONObject
    }
}

/// Splices of an entry's bytes: everything outside the replaced range is copied as it was.
enum JSONSplice {
    /// `bytes` with `range` replaced by `replacement`, appended to `out`.
    static func replace(
        _ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, with replacement: some Collection<UInt8>,
        into out: inout [UInt8]
    ) {
        append(bytes, 0..<range.lowerBound, to: &out)
        out.append(contentsOf: replacement)
        append(bytes, range.upperBound..<bytes.count, to: &out)
    }

    /// Appends `bytes[range]` to `out` in one copy (a slice of raw bytes would be appended byte by byte).
    @inline(__always)
    static func append(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, to out: inout [UInt8]) {
        guard let base = bytes.baseAddress, !range.isEmpty else { return }
        out.append(
            contentsOf: UnsafeBufferPointer(
                start: base.assumingMemoryBound(to: UInt8.self) + range.lowerBound, count: range.count))
    }

    /// The bytes that remove the member `found` describes (with one comma and the space before the next key).
    static func removalRange(_ found: FieldLocation.Found) -> Range<Int> {
        if found.previousEnd >= 0 { return found.previousEnd..<found.valueEnd }
        if let next = found.nextKeyStart { return found.keyStart..<next }
        return found.keyStart..<found.valueEnd
    }

    /// Appends `"name":value` for the segments from `depth` on: nested objects for every name but the last.
    static func appendMember(_ path: FieldPath, from depth: Int, value: [UInt8], to text: inout [UInt8]) {
        for index in depth..<path.segments.count {
            JSONUnescape.appendQuoted(path.segments[index], to: &text)
            text.append(0x3A)
            if index < path.segments.count - 1 { text.append(0x7B) }
        }
        text.append(contentsOf: value)
        text.append(contentsOf: repeatElement(0x7D, count: path.segments.count - 1 - depth))
    }
}

/// Several field paths located in one walk of an entry, each exactly as ``JSONWalk/locate(_:)`` would locate it.
///
/// The paths form a tree of names (``NameTree``): one pass over the entry checks it and records the members the
/// tree names, and only objects on a named path are read again. When a key is given twice, the last one counts.
struct PathLocator: Sendable {
    private var slots = PathSlots()

    /// The paths, by slot.
    var paths: [FieldPath] { slots.paths }

    /// The slot of `path`, added when new.
    mutating func slot(for path: FieldPath) -> Int { slots.slot(for: path) }

    /// Nodes of the tree of names, for ``WalkScratch``.
    var nodeCount: Int { slots.tree.nodeCount }

    private var tree: NameTree { slots.tree }

    /// Fills `locations` (one per slot) for the entry `walk` reads.
    func locate(_ walk: JSONWalk, into locations: inout [FieldLocation], scratch: WalkScratch) {
        locations.removeAll(keepingCapacity: true)
        locations.append(contentsOf: repeatElement(FieldLocation.notJSONObject, count: paths.count))
        scratch.reserve(nodes: tree.nodeCount)
        let open = walk.skipSpace(0)
        let table = scratch.table(0)
        guard let end = table.index(walk, object: open, depth: 0), walk.skipSpace(end) == walk.n else { return }
        fill(walk, table, object: open, node: 0, depth: 0, scratch, into: &locations)
    }

    /// Records where each path through `node` leads, reading on into the objects that paths continue in.
    private func fill(
        _ walk: JSONWalk, _ table: MemberTable, object start: Int, node: Int, depth: Int, _ scratch: WalkScratch,
        into locations: inout [FieldLocation]
    ) {
        scratch.match(table, node, tree, walk)
        let lastValueEnd = table.count > 0 ? table[table.count - 1].valueEnd : -1
        for index in tree.children(of: node) {
            let child = tree.child(index).node
            let position = scratch.found[child]
            guard position >= 0 else {
                for slot in tree.slots(through: child) {
                    locations[slot] = .missing(object: start, lastValueEnd: lastValueEnd, depth: depth)
                }
                continue
            }
            let span = table[position]
            let member = FieldLocation.Found(
                keyStart: span.keyStart, keyEnd: span.keyEnd,
                previousEnd: position > 0 ? table[position - 1].valueEnd : -1, valueEnd: span.valueEnd,
                value: span.value, nextKeyStart: position + 1 < table.count ? table[position + 1].keyStart : nil)
            let endSlot = tree.endSlot(child)
            if endSlot >= 0 { locations[endSlot] = .found(member) }
            guard tree.hasChildren(child) else { continue }
            guard span.kind == .object else {
                for slot in tree.slots(through: child) where slot != endSlot {
                    locations[slot] = .notObject(depth: depth + 1)
                }
                continue
            }
            let inner = scratch.table(depth + 1)
            _ = inner.index(walk, object: span.valueStart, depth: depth + 1)
            fill(walk, inner, object: span.valueStart, node: child, depth: depth + 1, scratch, into: &locations)
        }
    }
}
