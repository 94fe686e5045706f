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
        out.append(contentsOf: bytes[..<range.lowerBound])
        out.append(contentsOf: replacement)
        out.append(contentsOf: bytes[range.upperBound...])
    }

    /// The bytes that remove the member `found` describes (with one comma and the space before the next key).
    static func removalRange(_ found: FieldLocation.Found) -> Range<Int> {
        if found.previousEnd >= 0 { return found.previousEnd..<found.valueEnd }
        if let next = found.nextKeyStart { return found.keyStart..<next }
        return found.keyStart..<found.valueEnd
    }

    /// `"name":value` for the segments from `depth` on: nested objects for every name but the last.
    static func member(_ path: FieldPath, from depth: Int, value: [UInt8]) -> [UInt8] {
        var text: [UInt8] = []
        for index in depth..<path.segments.count {
            JSONUnescape.appendQuoted(path.segments[index], to: &text)
            text.append(0x3A)
            if index < path.segments.count - 1 { text.append(0x7B) }
        }
        text.append(contentsOf: value)
        text.append(contentsOf: [UInt8](repeating: 0x7D, count: path.segments.count - 1 - depth))
        return text
    }
}
