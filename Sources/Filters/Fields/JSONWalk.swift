import RouterCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What kind of JSON value a field holds.
enum JSONKind: UInt8, Sendable {
    case absent, string, number, trueValue, falseValue, null, object, array
}

/// Where one field's value sits in an entry: for strings the body between the quotes (still escaped).
struct FieldValue: Sendable {
    var kind: JSONKind
    /// First byte of the value (for strings: after the opening quote).
    var start: Int
    /// One past the value's last byte (for strings: the closing quote).
    var end: Int
    /// For strings: whether the body holds backslash escapes and must be decoded before it is compared.
    var hasEscapes: Bool

    static let absent = FieldValue(kind: .absent, start: 0, end: 0, hasEscapes: false)
}

/// A field path such as `trace.id`: the names of nested object members, outermost first.
///
/// A name cannot contain a dot (dots separate names); the empty path and empty names are refused.
struct FieldPath: Hashable, Sendable, CustomStringConvertible {
    /// The path as written.
    let text: String
    /// Each name's UTF-8 bytes.
    let segments: [[UInt8]]

    init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty }) else { return nil }
        self.text = text
        segments = parts.map { Array($0.utf8) }
    }

    /// A path from its names' bytes.
    init(segments: [[UInt8]]) {
        self.segments = segments
        text = segments.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".")
    }

    var description: String { text }
}

/// A strict, allocation-free reader of JSON text over raw bytes: it finds members and skips values without
/// building anything, and refuses what is not JSON (so that what `modify` writes around it is JSON too).
///
/// Every index is checked against the end; nesting deeper than ``maxDepth`` is refused rather than recursed into.
struct JSONWalk {
    let p: UnsafePointer<UInt8>
    let n: Int

    /// Deepest nesting read; deeper entries count as not JSON.
    static let maxDepth = 128

    init?(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return nil }
        p = base.assumingMemoryBound(to: UInt8.self)
        n = bytes.count
    }

    @inline(__always)
    func skipSpace(_ start: Int) -> Int {
        var i = start
        while i < n {
            let c = p[i]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { break }
            i &+= 1
        }
        return i
    }

    /// From an opening quote at `start`: the index of the closing quote, and whether there were escapes; -1 when
    /// the string is not well formed.
    @inline(__always)
    func scanString(_ start: Int) -> (close: Int, hasEscapes: Bool) {
        var i = start &+ 1
        var escapes = false
        while i < n {
            // Eight bytes at a time while none is `"`, `\` or a control character (bytes at or above 0x80 pass: the
            // walk does not check UTF-8). Borrows run only upwards from a real hit, so the lowest flag is exact.
            while i &+ 8 <= n {
                let word = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
                let quotes = word ^ 0x2222_2222_2222_2222
                let slashes = word ^ 0x5C5C_5C5C_5C5C_5C5C
                let special =
                    (((quotes &- 0x0101_0101_0101_0101) & ~quotes) | ((slashes &- 0x0101_0101_0101_0101) & ~slashes)
                        | ((word &- 0x2020_2020_2020_2020) & ~word)) & 0x8080_8080_8080_8080
                if special != 0 {
                    i &+= special.trailingZeroBitCount &>> 3
                    break
                }
                i &+= 8
            }
            guard i < n else { break }
            let c = p[i]
            if c == 0x22 { return (i, escapes) }
            if c == 0x5C {
                escapes = true
                guard i &+ 1 < n else { return (-1, false) }
                switch p[i &+ 1] {
                case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74: i &+= 2
                case 0x75:
                    guard i &+ 5 < n else { return (-1, false) }
                    for k in 2...5 where !isHex(p[i &+ k]) { return (-1, false) }
                    i &+= 6
                default: return (-1, false)
                }
                continue
            }
            if c < 0x20 { return (-1, false) }
            i &+= 1
        }
        return (-1, false)
    }

    @inline(__always)
    private func isHex(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x66)
    }

    @inline(__always)
    private func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }

    /// The value starting at `start` (no leading space): its kind and where it ends, or nil when it is not JSON.
    func value(at start: Int, depth: Int = 0) -> FieldValue? {
        guard start < n else { return nil }
        let c = p[start]
        switch c {
        case 0x22:
            let (close, escapes) = scanString(start)
            guard close >= 0 else { return nil }
            return FieldValue(kind: .string, start: start &+ 1, end: close, hasEscapes: escapes)
        case 0x7B:
            guard let end = skipObject(start, depth: depth) else { return nil }
            return FieldValue(kind: .object, start: start, end: end, hasEscapes: false)
        case 0x5B:
            guard let end = skipArray(start, depth: depth) else { return nil }
            return FieldValue(kind: .array, start: start, end: end, hasEscapes: false)
        case 0x74: return literal(start, "true", .trueValue)
        case 0x66: return literal(start, "false", .falseValue)
        case 0x6E: return literal(start, "null", .null)
        default:
            guard let end = numberEnd(start) else { return nil }
            return FieldValue(kind: .number, start: start, end: end, hasEscapes: false)
        }
    }

    private func literal(_ start: Int, _ word: StaticString, _ kind: JSONKind) -> FieldValue? {
        let count = word.utf8CodeUnitCount
        guard start &+ count <= n, memcmp(p + start, word.utf8Start, count) == 0 else { return nil }
        return FieldValue(kind: kind, start: start, end: start &+ count, hasEscapes: false)
    }

    /// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    func numberEnd(_ start: Int) -> Int? {
        var i = start
        if i < n && p[i] == 0x2D { i &+= 1 }
        guard i < n, isDigit(p[i]) else { return nil }
        if p[i] == 0x30 {
            i &+= 1
        } else {
            while i < n && isDigit(p[i]) { i &+= 1 }
        }
        if i < n && p[i] == 0x2E {
            i &+= 1
            guard i < n, isDigit(p[i]) else { return nil }
            while i < n && isDigit(p[i]) { i &+= 1 }
        }
        if i < n && (p[i] == 0x65 || p[i] == 0x45) {
            i &+= 1
            if i < n && (p[i] == 0x2B || p[i] == 0x2D) { i &+= 1 }
            guard i < n, isDigit(p[i]) else { return nil }
            while i < n && isDigit(p[i]) { i &+= 1 }
        }
        return i
    }

    private func skipArray(_ start: Int, depth: Int) -> Int? {
        guard depth < JSONWalk.maxDepth else { return nil }
        var i = skipSpace(start &+ 1)
        if i < n && p[i] == 0x5D { return i &+ 1 }
        while true {
            guard let item = value(at: i, depth: depth &+ 1) else { return nil }
            i = skipSpace(item.kind == .string ? item.end &+ 1 : item.end)
            guard i < n else { return nil }
            if p[i] == 0x5D { return i &+ 1 }
            guard p[i] == 0x2C else { return nil }
            i = skipSpace(i &+ 1)
        }
    }

    private func skipObject(_ start: Int, depth: Int) -> Int? {
        guard depth < JSONWalk.maxDepth else { return nil }
        return members(of: start, depth: depth) { _, _, _, _ in true }
    }

    /// One member of an object, as ``members(of:depth:_:)`` reports it.
    struct Member {
        /// The key's opening quote.
        var keyStart: Int
        /// The key's body (between the quotes).
        var key: Range<Int>
        /// Whether the key holds escapes.
        var keyEscaped: Bool
    }

    /// Calls `body` for each member of the object whose `{` is at `start`, with the member, the end of the
    /// previous member's value (or -1 for the first member), the index just past its own value and the value;
    /// `body` returns false to stop. Returns the index just past the closing `}`, or nil when the object is not JSON
    /// (or `body` stopped).
    func members(
        of start: Int, depth: Int = 0, _ body: (Member, _ previousEnd: Int, _ valueEnd: Int, FieldValue) -> Bool
    ) -> Int? {
        guard start < n, p[start] == 0x7B else { return nil }
        var i = skipSpace(start &+ 1)
        guard i < n else { return nil }
        if p[i] == 0x7D { return i &+ 1 }
        var previousEnd = -1
        while true {
            guard i < n, p[i] == 0x22 else { return nil }
            let (close, escaped) = scanString(i)
            guard close >= 0 else { return nil }
            let member = Member(keyStart: i, key: (i &+ 1)..<close, keyEscaped: escaped)
            i = skipSpace(close &+ 1)
            guard i < n, p[i] == 0x3A else { return nil }
            i = skipSpace(i &+ 1)
            guard let item = value(at: i, depth: depth &+ 1) else { return nil }
            let valueEnd = item.kind == .string ? item.end &+ 1 : item.end
            guard body(member, previousEnd, valueEnd, item) else { return nil }
            previousEnd = valueEnd
            i = skipSpace(valueEnd)
            guard i < n else { return nil }
            if p[i] == 0x7D { return i &+ 1 }
            guard p[i] == 0x2C else { return nil }
            i = skipSpace(i &+ 1)
        }
    }

    /// Whether the key's text equals `name` (decoding escapes when the key has them).
    func key(_ member: Member, equals name: [UInt8]) -> Bool {
        if !member.keyEscaped {
            guard member.key.count == name.count else { return false }
            return name.withUnsafeBufferPointer { name in
                guard let base = name.baseAddress else { return true }
                return memcmp(p + member.key.lowerBound, base, name.count) == 0
            }
        }
        var decoded: [UInt8] = []
        JSONUnescape.append(p + member.key.lowerBound, member.key.count, to: &decoded)
        return decoded == name
    }

    /// The whole text, if it is one JSON object with nothing but space around it: the `{` index and the end.
    func topObject() -> (open: Int, close: Int)? {
        let open = skipSpace(0)
        guard open < n, p[open] == 0x7B, let end = skipObject(open, depth: 0) else { return nil }
        guard skipSpace(end) == n else { return nil }
        return (open, end)
    }

    /// The number at `value` as a Double (the value must be of kind `.number`).
    func number(_ value: FieldValue) -> Double {
        let count = value.end - value.start
        if count <= 18 {
            var whole: Int64 = 0
            var i = value.start
            let negative = p[i] == 0x2D
            if negative { i &+= 1 }
            var plain = true
            while i < value.end {
                let c = p[i]
                guard isDigit(c) else {
                    plain = false
                    break
                }
                whole = whole &* 10 &+ Int64(c &- 0x30)
                i &+= 1
            }
            if plain { return Double(negative ? -whole : whole) }
        }
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: count + 1) { buffer in
            guard let base = buffer.baseAddress else { return .nan }
            memcpy(base, p + value.start, count)
            base[count] = 0
            return strtod(base, nil)
        }
    }
}

/// JSON string escapes: decoding (RouterCore's decoder, as the entry scanner uses it) and quoting.
enum JSONUnescape {
    /// Appends the decoded text of the escaped string body at `p` (`count` bytes, already checked) to `out`;
    /// lone surrogates become U+FFFD.
    static func append(_ p: UnsafePointer<UInt8>, _ count: Int, to out: inout [UInt8]) {
        unescapeJSONString(p, count, into: &out)
    }

    /// Appends `bytes` (UTF-8 text) as a quoted JSON string: `"`, `\` and control characters escaped.
    static func appendQuoted(_ bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        out.append(0x22)
        for c in bytes {
            switch c {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: out.append(contentsOf: [0x5C, 0x72])
            case 0x09: out.append(contentsOf: [0x5C, 0x74])
            case 0..<0x20:
                let digits = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, digits[Int(c >> 4)], digits[Int(c & 0xF)]])
            default: out.append(c)
            }
        }
        out.append(0x22)
    }
}
