import RouterSupport

// A strict, single-pass validator for one JSON log entry that extracts the top-level fields routing needs.
//
// Accepts exactly what CPython accepts for `json.loads(bytes.decode("utf-8"))` returning a dict (with NaN and
// Infinity refused and no limit on integer digits), except that nesting deeper than 512 levels is refused as
// `notJSON`. Pure Swift on bytes: no Foundation, no recursion, no allocation on the common path.

/// Why an entry was refused.
public enum JSONEntryProblem: UInt8, Sendable {
    /// The bytes are not valid UTF-8 (anywhere in the entry, as CPython decodes the whole datagram first).
    case notUTF8
    /// Valid UTF-8 but not one JSON value (syntax error, trailing garbage, nesting deeper than 512).
    case notJSON
    /// Valid JSON but the top-level value is not an object.
    case notObject
    /// A required field is absent.
    case missingField
    /// A known field has the wrong JSON type.
    case wrongType
}

/// Where a string value sits in the entry: byte offset and length of the content between the quotes (raw, still
/// escaped).
public struct JSONSpan: Sendable, Equatable {
    /// Byte offset of the first content byte after the opening quote, or -1 when the field is absent.
    public var start: Int32
    /// Number of raw content bytes between the quotes.
    public var count: Int32
    /// True when the raw content contains a backslash (decode it with `JSONEntryScanner.decode`).
    public var hasEscapes: Bool

    /// Creates a span from its parts.
    public init(start: Int32, count: Int32, hasEscapes: Bool) {
        self.start = start
        self.count = count
        self.hasEscapes = hasEscapes
    }

    /// The span of an absent field.
    public static let none = JSONSpan(start: -1, count: 0, hasEscapes: false)

    /// Whether the field was present (with the right type).
    public var isPresent: Bool { start >= 0 }
}

/// The fields routing needs, extracted in the same pass that validates.
public struct JSONEntryFields: Sendable {
    /// Top-level "level" (string).
    public var level: JSONSpan
    /// Top-level "sequence" or alias "seq": an integer (no fraction or exponent) that fits Int64.
    public var sequence: Int64?
    /// Top-level "host" or alias "hostname" (string).
    public var host: JSONSpan
    /// Top-level "app" (string).
    public var app: JSONSpan
    /// Top-level "message" (string).
    public var message: JSONSpan
    /// Top-level "timestamp" (string).
    public var timestamp: JSONSpan
    /// Bit i is set when `requiredKeys.names[i]` (or one of its aliases) is present at top level.
    public var presentRequired: UInt64

    /// Creates an empty set of fields: every span absent, no sequence, no required key present.
    public init() {
        level = .none
        sequence = nil
        host = .none
        app = .none
        message = .none
        timestamp = .none
        presentRequired = 0
    }
}

/// The outcome of scanning one entry.
public struct JSONEntryScanResult: Sendable {
    /// Why the entry was refused, or nil when it was accepted.
    public var problem: JSONEntryProblem?
    /// Byte offset where the problem was found (0 for `missingField` and for accepted entries).
    public var problemOffset: Int32
    /// For `missingField`: index into `JSONRequiredKeys.names` of the first missing name; -1 otherwise.
    public var problemField: Int8
    /// The extracted fields; all absent when the entry is not a valid JSON object. For `wrongType` the
    /// wrongly typed field is absent and the others are filled.
    public var fields: JSONEntryFields

    /// Creates a result from its parts.
    public init(problem: JSONEntryProblem?, problemOffset: Int32, problemField: Int8, fields: JSONEntryFields) {
        self.problem = problem
        self.problemOffset = problemOffset
        self.problemField = problemField
        self.fields = fields
    }
}

/// A compiled set of required top-level keys (at most 64), matched byte-wise.
///
/// The known routing fields and their fixed aliases ("seq" for "sequence", "hostname" for "host") are always
/// recognised for extraction; `aliases` given here only widen what counts as presence of a required name.
public struct JSONRequiredKeys: Sendable {
    /// One open-addressing slot holding a spelling inline: its first 16 bytes as two little-endian words (zero
    /// padded), the rest in `tailBytes`, so a probe costs one slot read and two word compares.
    struct Slot: Sendable {
        var word0: UInt64 = 0
        var word1: UInt64 = 0
        var count = -1
        var tailStart = 0
        var mask: UInt64 = 0
        var known: Int8 = -1
    }

    let storedNames: [String]
    let slots: [Slot]
    let tailBytes: [UInt8]
    let slotMask: Int
    let allMask: UInt64

    /// `names`: required key names (only the first 64 are kept); `aliases`: extra accepted spellings per name,
    /// e.g. `["sequence": ["seq"], "host": ["hostname"]]`. Compiling allocates: build once and reuse. The empty set
    /// (`JSONRequiredKeys([])`) is built once per process and shared, so creating it per entry is cheap.
    public init(_ names: [String], aliases: [String: [String]] = [:]) {
        if names.isEmpty && aliases.isEmpty {
            self = Self.knownFieldsOnly
        } else {
            self.init(compiling: names, aliases: aliases)
        }
    }

    private static let knownFieldsOnly = JSONRequiredKeys(compiling: [], aliases: [:])

    private init(compiling names: [String], aliases: [String: [String]]) {
        let kept = Array(names.prefix(64))
        var spellings: [[UInt8]] = []
        var masks: [UInt64] = []
        var knowns: [Int8] = []
        var indexOf: [[UInt8]: Int] = [:]
        func add(_ spelling: [UInt8], mask: UInt64, known: Int8) {
            if let index = indexOf[spelling] {
                masks[index] |= mask
                if known >= 0 { knowns[index] = known }
                return
            }
            indexOf[spelling] = spellings.count
            spellings.append(spelling)
            masks.append(mask)
            knowns.append(known)
        }
        for (spelling, field) in knownSpellings {
            add(Array(spelling.utf8), mask: 0, known: field.rawValue)
        }
        var all: UInt64 = 0
        for (index, name) in kept.enumerated() {
            let bit = UInt64(1) << UInt64(index)
            all |= bit
            add(Array(name.utf8), mask: bit, known: -1)
            for alias in aliases[name] ?? [] {
                add(Array(alias.utf8), mask: bit, known: -1)
            }
        }
        var size = 16
        while size < spellings.count * 2 { size <<= 1 }
        var slots = [Slot](repeating: Slot(), count: size)
        var tail: [UInt8] = []
        for (index, spelling) in spellings.enumerated() {
            var entry = Slot()
            spelling.withUnsafeBufferPointer { buffer in
                entry.word0 = keyWord(buffer.baseAddress, 0, buffer.count, available: buffer.count)
                entry.word1 = keyWord(buffer.baseAddress, 8, buffer.count, available: buffer.count)
            }
            entry.count = spelling.count
            entry.tailStart = tail.count
            entry.mask = masks[index]
            entry.known = knowns[index]
            if spelling.count > 16 { tail.append(contentsOf: spelling[16...]) }
            var slot = keyHash(entry.word0, spelling.count) & (size - 1)
            while slots[slot].count >= 0 { slot = (slot + 1) & (size - 1) }
            slots[slot] = entry
        }
        self.storedNames = kept
        self.slots = slots
        self.tailBytes = tail
        self.slotMask = size - 1
        self.allMask = all
    }

    /// The required key names, in the order their bits appear in `presentRequired`.
    public var names: [String] { storedNames }

    /// Looks up a raw (unescaped) key of `count` bytes, `available` (>= count) of which may be read from `key`:
    /// the required bits it sets and the known field it names (-1 for none). `table` is `slots`' storage.
    @inline(__always)
    func lookup(
        _ key: UnsafePointer<UInt8>?, _ count: Int, available: Int, in table: UnsafeBufferPointer<Slot>
    ) -> (mask: UInt64, known: Int8) {
        let word0 = keyWord(key, 0, count, available: available)
        let word1 = count > 8 ? keyWord(key, 8, count, available: available) : 0
        var slot = keyHash(word0, count) & slotMask
        while true {
            let entry = table[slot]
            if entry.count < 0 { return (0, -1) }
            if entry.count == count && entry.word0 == word0 && entry.word1 == word1
                && (count <= 16 || tailEqual(key, count, entry.tailStart))
            {
                return (entry.mask, entry.known)
            }
            slot = (slot &+ 1) & slotMask
        }
    }

    private func tailEqual(_ key: UnsafePointer<UInt8>?, _ count: Int, _ tailStart: Int) -> Bool {
        guard let key else { return false }
        return tailBytes.withUnsafeBufferPointer { stored in
            var index = 16
            while index < count {
                if stored[tailStart &+ index &- 16] != key[index] { return false }
                index &+= 1
            }
            return true
        }
    }

    /// Looks up a key whose raw bytes contain escapes (rare: allocates). Keys holding a lone surrogate match
    /// nothing, as in Python where such a key cannot equal a valid Unicode name.
    func lookupEscaped(_ key: UnsafePointer<UInt8>, _ count: Int) -> (mask: UInt64, known: Int8) {
        var decoded: [UInt8] = []
        guard unescapeJSONString(key, count, into: &decoded) else { return (0, -1) }
        return decoded.withUnsafeBufferPointer { buffer in
            slots.withUnsafeBufferPointer { table in
                lookup(buffer.baseAddress, buffer.count, available: buffer.count, in: table)
            }
        }
    }
}

/// The fields the scanner knows how to extract, with their fixed spellings.
private enum KnownField: Int8 {
    case level = 0
    case sequence = 1
    case host = 2
    case app = 3
    case message = 4
    case timestamp = 5
}

private let knownSpellings: [(String, KnownField)] = [
    ("level", .level), ("sequence", .sequence), ("seq", .sequence), ("host", .host), ("hostname", .host),
    ("app", .app), ("message", .message), ("timestamp", .timestamp),
]

/// Bytes `offset..<min(offset + 8, count)` of a key as a little-endian word, zero padded. Loads eight bytes at
/// once when `available` allows it (the common case: the key is followed by at least `":` and a value).
@inline(__always)
private func keyWord(_ key: UnsafePointer<UInt8>?, _ offset: Int, _ count: Int, available: Int) -> UInt64 {
    guard let key else { return 0 }
    let length = min(count &- offset, 8)
    if length <= 0 { return 0 }
    if offset &+ 8 <= available {
        let word = UInt64(littleEndian: UnsafeRawPointer(key + offset).loadUnaligned(as: UInt64.self))
        return length == 8 ? word : word & ((UInt64(1) << UInt64(length &* 8)) &- 1)
    }
    var word: UInt64 = 0
    var index = length
    while index > 0 {
        index &-= 1
        word = word << 8 | UInt64(key[offset &+ index])
    }
    return word
}

@inline(__always)
private func keyHash(_ word0: UInt64, _ count: Int) -> Int {
    let mixed = (word0 &+ UInt64(truncatingIfNeeded: count)) &* 0x9E37_79B9_7F4A_7C15
    return Int(truncatingIfNeeded: mixed >> 40)
}

// MARK: - Byte classes

private let maxDepth = 512
private let highBits: UInt64 = 0x8080_8080_8080_8080
private let lowBits: UInt64 = 0x0101_0101_0101_0101
private let quoteByte: UInt8 = 0x22
private let backslashByte: UInt8 = 0x5C

@inline(__always)
private func skipWhitespace(_ p: UnsafePointer<UInt8>, _ n: Int, _ start: Int) -> Int {
    var i = start
    while i < n {
        let c = p[i]
        if c > 0x20 { return i }
        guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return i }
        i &+= 1
    }
    return i
}

@inline(__always)
private func isHexDigit(_ c: UInt8) -> Bool {
    (c &- 0x30) < 10 || ((c | 0x20) &- 0x61) < 6
}

@inline(__always)
private func isDigit(_ c: UInt8) -> Bool {
    (c &- 0x30) < 10
}

/// Offset of the first invalid UTF-8 sequence at or after `start`, or -1 when the rest is valid.
private func firstInvalidUTF8(_ p: UnsafePointer<UInt8>, _ n: Int, from start: Int) -> Int {
    var i = start
    while i < n {
        if i &+ 8 <= n {
            let word = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
            if word & highBits == 0 {
                i &+= 8
                continue
            }
        }
        if p[i] < 0x80 {
            i &+= 1
            continue
        }
        let length = UTF8Scan.sequenceLength(p, n, i)
        if length == 0 { return i }
        i &+= length
    }
    return -1
}

// MARK: - Tokens

/// Outcome of scanning a string body: `end` is the closing quote, or the problem offset when `status` != 0.
private struct StringScan {
    static let fine: UInt8 = 0
    static let syntax: UInt8 = 1
    static let badUTF8: UInt8 = 2

    var end: Int
    var status: UInt8
    var escapes: Bool
}

/// Scans string content starting just after the opening quote. Eight bytes at a time while they are plain
/// printable ASCII other than `"` and `\`; escapes and multi-byte sequences are checked one by one.
@inline(__always)
private func scanStringBody(_ p: UnsafePointer<UInt8>, _ n: Int, from start: Int) -> StringScan {
    var i = start
    var escapes = false
    while true {
        while i &+ 8 <= n {
            let word = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
            let quotes = word ^ 0x2222_2222_2222_2222
            let slashes = word ^ 0x5C5C_5C5C_5C5C_5C5C
            // Per byte: zero after xor (quote/backslash), below 0x20 (control), or high bit (non-ASCII).
            // Borrows only run upwards from a real hit, so the lowest flagged byte is always exact.
            let special =
                (((quotes &- lowBits) & ~quotes) | ((slashes &- lowBits) & ~slashes)
                    | (word &- 0x2020_2020_2020_2020) | word) & highBits
            if special != 0 {
                i &+= special.trailingZeroBitCount &>> 3
                break
            }
            i &+= 8
        }
        guard i < n else { return StringScan(end: n, status: StringScan.syntax, escapes: escapes) }
        let c = p[i]
        if c == quoteByte { return StringScan(end: i, status: StringScan.fine, escapes: escapes) }
        if c == backslashByte {
            escapes = true
            let e = i &+ 1
            guard e < n else { return StringScan(end: n, status: StringScan.syntax, escapes: escapes) }
            switch p[e] {
            case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74:
                i &+= 2
            case 0x75:
                var k = e &+ 1
                while k <= e &+ 4 {
                    guard k < n else { return StringScan(end: n, status: StringScan.syntax, escapes: escapes) }
                    guard isHexDigit(p[k]) else {
                        return StringScan(end: k, status: StringScan.syntax, escapes: escapes)
                    }
                    k &+= 1
                }
                i &+= 6
            default:
                return StringScan(end: e, status: StringScan.syntax, escapes: escapes)
            }
            continue
        }
        if c < 0x20 { return StringScan(end: i, status: StringScan.syntax, escapes: escapes) }
        if c < 0x80 {
            i &+= 1
            continue
        }
        let length = UTF8Scan.sequenceLength(p, n, i)
        if length == 0 { return StringScan(end: i, status: StringScan.badUTF8, escapes: escapes) }
        i &+= length
    }
}

/// Scans `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`. Returns the end, or -1 - offset of the
/// offending byte on a syntax error; `integral` is false when a fraction or exponent was present.
@inline(__always)
private func scanNumber(_ p: UnsafePointer<UInt8>, _ n: Int, _ start: Int, _ integral: inout Bool) -> Int {
    var i = start
    if p[i] == 0x2D {
        i &+= 1
        guard i < n else { return -1 &- i }
    }
    let first = p[i]
    if first == 0x30 {
        i &+= 1
    } else if isDigit(first) {
        i &+= 1
        while i < n && isDigit(p[i]) { i &+= 1 }
    } else {
        return -1 &- i
    }
    integral = true
    if i < n && p[i] == 0x2E {
        i &+= 1
        guard i < n && isDigit(p[i]) else { return -1 &- i }
        integral = false
        while i < n && isDigit(p[i]) { i &+= 1 }
    }
    if i < n && (p[i] | 0x20) == 0x65 {
        i &+= 1
        if i < n && (p[i] == 0x2B || p[i] == 0x2D) { i &+= 1 }
        guard i < n && isDigit(p[i]) else { return -1 &- i }
        integral = false
        while i < n && isDigit(p[i]) { i &+= 1 }
    }
    return i
}

/// Parses the integer token `p[start..<end]` (already validated, no fraction or exponent) into Int64.
@inline(__always)
private func parseInt64(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Int64? {
    var i = start
    let negative = p[i] == 0x2D
    if negative { i &+= 1 }
    // Accumulate negatively so that Int64.min is representable.
    var value: Int64 = 0
    while i < end {
        let (times, overflow1) = value.multipliedReportingOverflow(by: 10)
        let (next, overflow2) = times.subtractingReportingOverflow(Int64(p[i] &- 0x30))
        if overflow1 || overflow2 { return nil }
        value = next
        i &+= 1
    }
    if negative { return value }
    return value == Int64.min ? nil : -value
}

/// Length of the literal `true`, `false` or `null` at `i`, or 0 when the bytes there are not one.
@inline(__always)
private func literalLength(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: Int) -> Int {
    switch p[i] {
    case 0x74:  // true
        guard i &+ 4 <= n, p[i &+ 1] == 0x72, p[i &+ 2] == 0x75, p[i &+ 3] == 0x65 else { return 0 }
        return 4
    case 0x66:  // false
        guard i &+ 5 <= n, p[i &+ 1] == 0x61, p[i &+ 2] == 0x6C, p[i &+ 3] == 0x73, p[i &+ 4] == 0x65 else {
            return 0
        }
        return 5
    case 0x6E:  // null
        guard i &+ 4 <= n, p[i &+ 1] == 0x75, p[i &+ 2] == 0x6C, p[i &+ 3] == 0x6C else { return 0 }
        return 4
    default:
        return 0
    }
}

// MARK: - Field bookkeeping

/// Known-field values plus, per field, the offset of its last occurrence when that one had the wrong type.
private struct FieldAccumulator {
    var fields = JSONEntryFields()
    var wrongLevel: Int32 = -1
    var wrongSequence: Int32 = -1
    var wrongHost: Int32 = -1
    var wrongApp: Int32 = -1
    var wrongMessage: Int32 = -1
    var wrongTimestamp: Int32 = -1

    @inline(__always)
    mutating func setString(_ field: Int8, _ span: JSONSpan, valueOffset: Int32) {
        switch field {
        case KnownField.level.rawValue:
            fields.level = span
            wrongLevel = -1
        case KnownField.host.rawValue:
            fields.host = span
            wrongHost = -1
        case KnownField.app.rawValue:
            fields.app = span
            wrongApp = -1
        case KnownField.message.rawValue:
            fields.message = span
            wrongMessage = -1
        case KnownField.timestamp.rawValue:
            fields.timestamp = span
            wrongTimestamp = -1
        default:
            setWrong(field, at: valueOffset)
        }
    }

    @inline(__always)
    mutating func setSequence(_ value: Int64) {
        fields.sequence = value
        wrongSequence = -1
    }

    mutating func setWrong(_ field: Int8, at offset: Int32) {
        switch field {
        case KnownField.level.rawValue:
            fields.level = .none
            wrongLevel = offset
        case KnownField.sequence.rawValue:
            fields.sequence = nil
            wrongSequence = offset
        case KnownField.host.rawValue:
            fields.host = .none
            wrongHost = offset
        case KnownField.app.rawValue:
            fields.app = .none
            wrongApp = offset
        case KnownField.message.rawValue:
            fields.message = .none
            wrongMessage = offset
        case KnownField.timestamp.rawValue:
            fields.timestamp = .none
            wrongTimestamp = offset
        default:
            break
        }
    }

    /// The smallest offset among wrongly typed final occurrences, or -1. Reinterpreting -1 as UInt32.max makes
    /// "not wrong" lose every comparison.
    func firstWrongOffset() -> Int32 {
        var first = UInt32(bitPattern: wrongLevel)
        first = min(first, UInt32(bitPattern: wrongSequence))
        first = min(first, UInt32(bitPattern: wrongHost))
        first = min(first, UInt32(bitPattern: wrongApp))
        first = min(first, UInt32(bitPattern: wrongMessage))
        first = min(first, UInt32(bitPattern: wrongTimestamp))
        return Int32(bitPattern: first)
    }

    /// Whether any known field's last occurrence had the wrong type (the sign bit survives the AND only when
    /// every offset is -1).
    var anyWrong: Bool {
        (wrongLevel & wrongSequence & wrongHost & wrongApp & wrongMessage & wrongTimestamp) >= 0
    }
}

// MARK: - Scanner

/// Validates one JSON log entry and extracts its routing fields in a single pass.
public enum JSONEntryScanner {
    /// Validates `bytes` as one JSON object and extracts the routing fields. Never traps, never allocates on the
    /// success path for the seed's entries (no Array/String creation per call), runs in O(n) with no recursion.
    public static func scan(_ bytes: UnsafeRawBufferPointer, required: JSONRequiredKeys) -> JSONEntryScanResult {
        guard let base = bytes.baseAddress, bytes.count > 0, bytes.count <= Int(Int32.max) else {
            return refusal(.notJSON, at: 0)
        }
        let p = base.assumingMemoryBound(to: UInt8.self)
        return required.slots.withUnsafeBufferPointer { table in
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: maxDepth / 64) { stack in
                guard let kinds = stack.baseAddress else { return refusal(.notJSON, at: 0) }
                return scanEntry(p, bytes.count, required, table, kinds)
            }
        }
    }

    /// Decodes a (possibly escaped) string span to a Swift String (lone surrogates become U+FFFD). A span that
    /// does not lie inside `bytes` decodes to "".
    public static func decode(_ span: JSONSpan, in bytes: UnsafeRawBufferPointer) -> String {
        let start = Int(span.start)
        let count = Int(span.count)
        guard start >= 0, count > 0, start <= bytes.count, count <= bytes.count - start,
            let base = bytes.baseAddress
        else { return "" }
        let raw = UnsafeRawBufferPointer(start: base + start, count: count)
        guard span.hasEscapes else { return String(decoding: raw, as: UTF8.self) }
        var decoded: [UInt8] = []
        _ = unescapeJSONString(raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count, into: &decoded)
        return String(decoding: decoded, as: UTF8.self)
    }

    private static func refusal(_ problem: JSONEntryProblem, at offset: Int) -> JSONEntryScanResult {
        JSONEntryScanResult(
            problem: problem, problemOffset: Int32(truncatingIfNeeded: offset), problemField: -1,
            fields: JSONEntryFields())
    }

    /// Sets bit `level` of the container-kind stack (1 = object).
    @inline(__always)
    private static func setKind(_ kinds: UnsafeMutablePointer<UInt64>, _ level: Int, isObject: Bool) {
        let bit = UInt64(1) << UInt64(level & 63)
        if isObject {
            kinds[level &>> 6] |= bit
        } else {
            kinds[level &>> 6] &= ~bit
        }
    }

    @inline(__always)
    private static func kindIsObject(_ kinds: UnsafeMutablePointer<UInt64>, _ level: Int) -> Bool {
        kinds[level &>> 6] & (UInt64(1) << UInt64(level & 63)) != 0
    }

    /// Parses `"key" ws :` at `i` (which must be at the opening quote) and returns the offset after the colon,
    /// or -1 - offset on a syntax error (`badUTF8` set when the problem is invalid UTF-8 in the key).
    @inline(__always)
    private static func parseKey(
        _ p: UnsafePointer<UInt8>, _ n: Int, _ start: Int, topLevel: Bool, _ required: JSONRequiredKeys,
        _ table: UnsafeBufferPointer<JSONRequiredKeys.Slot>, _ present: inout UInt64, _ pending: inout Int8,
        _ badUTF8: inout Bool
    ) -> Int {
        guard start < n, p[start] == quoteByte else { return -1 &- start }
        let keyStart = start &+ 1
        let key = scanStringBody(p, n, from: keyStart)
        if key.status != StringScan.fine {
            badUTF8 = key.status == StringScan.badUTF8
            return -1 &- key.end
        }
        if topLevel {
            let count = key.end &- keyStart
            let match =
                key.escapes
                ? required.lookupEscaped(p + keyStart, count)
                : required.lookup(p + keyStart, count, available: n &- keyStart, in: table)
            present |= match.mask
            pending = match.known
        }
        let colon = skipWhitespace(p, n, key.end &+ 1)
        guard colon < n, p[colon] == 0x3A else { return -1 &- colon }
        return colon &+ 1
    }

    // The state machine: "expect a value" at the top of `parse`, then "after a value" in the inner loop.
    private static func scanEntry(
        _ p: UnsafePointer<UInt8>, _ n: Int, _ required: JSONRequiredKeys,
        _ table: UnsafeBufferPointer<JSONRequiredKeys.Slot>, _ kinds: UnsafeMutablePointer<UInt64>
    ) -> JSONEntryScanResult {
        var acc = FieldAccumulator()
        var present: UInt64 = 0
        var i = 0
        var depth = 0
        var inObject = false
        var rootIsObject = false
        var rootStart = 0
        var pending: Int8 = -1
        var failAt = -1
        var badUTF8 = false

        parse: while true {
            i = skipWhitespace(p, n, i)
            guard i < n else {
                failAt = i
                break parse
            }
            let c = p[i]
            let valueStart = i
            if depth == 0 { rootStart = i }
            switch c {
            case quoteByte:
                let string = scanStringBody(p, n, from: i &+ 1)
                guard string.status == StringScan.fine else {
                    failAt = string.end
                    badUTF8 = string.status == StringScan.badUTF8
                    break parse
                }
                if pending >= 0 {
                    let span = JSONSpan(
                        start: Int32(truncatingIfNeeded: i &+ 1),
                        count: Int32(truncatingIfNeeded: string.end &- i &- 1),
                        hasEscapes: string.escapes)
                    acc.setString(pending, span, valueOffset: Int32(truncatingIfNeeded: valueStart))
                    pending = -1
                }
                i = string.end &+ 1
            case 0x7B, 0x5B:  // { [
                let isObject = c == 0x7B
                if depth == 0 { rootIsObject = isObject }
                if pending >= 0 {
                    acc.setWrong(pending, at: Int32(truncatingIfNeeded: valueStart))
                    pending = -1
                }
                guard depth < maxDepth else {
                    failAt = i
                    break parse
                }
                setKind(kinds, depth, isObject: isObject)
                depth &+= 1
                inObject = isObject
                i = skipWhitespace(p, n, i &+ 1)
                guard i < n else {
                    failAt = i
                    break parse
                }
                if p[i] == (isObject ? 0x7D : 0x5D) {  // empty container
                    depth &-= 1
                    if depth > 0 { inObject = kindIsObject(kinds, depth &- 1) }
                    i &+= 1
                } else {
                    if isObject {
                        let next = parseKey(
                            p, n, i, topLevel: depth == 1, required, table, &present, &pending, &badUTF8)
                        guard next >= 0 else {
                            failAt = -1 &- next
                            break parse
                        }
                        i = next
                    }
                    continue parse
                }
            case 0x2D, 0x30...0x39:
                var integral = true
                let end = scanNumber(p, n, i, &integral)
                guard end >= 0 else {
                    failAt = -1 &- end
                    break parse
                }
                if pending >= 0 {
                    if pending == KnownField.sequence.rawValue, integral, let value = parseInt64(p, i, end) {
                        acc.setSequence(value)
                    } else {
                        acc.setWrong(pending, at: Int32(truncatingIfNeeded: valueStart))
                    }
                    pending = -1
                }
                i = end
            default:
                let length = literalLength(p, n, i)
                guard length > 0 else {
                    failAt = i
                    break parse
                }
                if pending >= 0 {
                    acc.setWrong(pending, at: Int32(truncatingIfNeeded: valueStart))
                    pending = -1
                }
                i &+= length
            }

            // After a value: a separator, a closing bracket, or the end of the entry.
            while true {
                i = skipWhitespace(p, n, i)
                if depth == 0 {
                    if i != n { failAt = i }
                    break parse
                }
                guard i < n else {
                    failAt = i
                    break parse
                }
                let d = p[i]
                if d == 0x2C {  // ,
                    i &+= 1
                    if inObject {
                        i = skipWhitespace(p, n, i)
                        let next = parseKey(
                            p, n, i, topLevel: depth == 1, required, table, &present, &pending, &badUTF8)
                        guard next >= 0 else {
                            failAt = -1 &- next
                            break parse
                        }
                        i = next
                    }
                    continue parse
                }
                guard d == (inObject ? 0x7D : 0x5D) else {
                    failAt = i
                    break parse
                }
                depth &-= 1
                if depth > 0 { inObject = kindIsObject(kinds, depth &- 1) }
                i &+= 1
            }
        }

        if failAt >= 0 {
            if badUTF8 { return refusal(.notUTF8, at: failAt) }
            // CPython decodes the whole datagram before parsing: invalid UTF-8 anywhere wins over a syntax error.
            // Everything before `failAt` was either ASCII structure or already validated string content.
            let invalid = firstInvalidUTF8(p, n, from: failAt)
            return invalid >= 0 ? refusal(.notUTF8, at: invalid) : refusal(.notJSON, at: failAt)
        }
        guard rootIsObject else { return refusal(.notObject, at: rootStart) }
        acc.fields.presentRequired = present
        if acc.anyWrong {
            return JSONEntryScanResult(
                problem: .wrongType, problemOffset: acc.firstWrongOffset(), problemField: -1, fields: acc.fields)
        }
        let missing = required.allMask & ~present
        if missing != 0 {
            return JSONEntryScanResult(
                problem: .missingField, problemOffset: 0, problemField: Int8(missing.trailingZeroBitCount),
                fields: acc.fields)
        }
        return JSONEntryScanResult(problem: nil, problemOffset: 0, problemField: -1, fields: acc.fields)
    }
}

// MARK: - Unescaping

/// Appends the UTF-8 encoding of the scalar `value` (must not be a surrogate).
@inline(__always)
private func appendUTF8(_ value: UInt32, to out: inout [UInt8]) {
    if value < 0x80 {
        out.append(UInt8(truncatingIfNeeded: value))
    } else if value < 0x800 {
        out.append(UInt8(truncatingIfNeeded: 0xC0 | (value >> 6)))
        out.append(UInt8(truncatingIfNeeded: 0x80 | (value & 0x3F)))
    } else if value < 0x10000 {
        out.append(UInt8(truncatingIfNeeded: 0xE0 | (value >> 12)))
        out.append(UInt8(truncatingIfNeeded: 0x80 | ((value >> 6) & 0x3F)))
        out.append(UInt8(truncatingIfNeeded: 0x80 | (value & 0x3F)))
    } else {
        out.append(UInt8(truncatingIfNeeded: 0xF0 | (value >> 18)))
        out.append(UInt8(truncatingIfNeeded: 0x80 | ((value >> 12) & 0x3F)))
        out.append(UInt8(truncatingIfNeeded: 0x80 | ((value >> 6) & 0x3F)))
        out.append(UInt8(truncatingIfNeeded: 0x80 | (value & 0x3F)))
    }
}

/// The value of four hex digits at `p[at..<at+4]`, or nil when they are not all there and hex.
@inline(__always)
private func hex4(_ p: UnsafePointer<UInt8>, _ count: Int, _ at: Int) -> UInt32? {
    guard at >= 0, at &+ 4 <= count else { return nil }
    var value: UInt32 = 0
    for k in at..<(at &+ 4) {
        let c = p[k]
        let digit: UInt8
        if isDigit(c) {
            digit = c &- 0x30
        } else if ((c | 0x20) &- 0x61) < 6 {
            digit = (c | 0x20) &- 0x61 &+ 10
        } else {
            return nil
        }
        value = value << 4 | UInt32(digit)
    }
    return value
}

/// Decodes raw JSON string content (between the quotes) to UTF-8 bytes, pairing `\uD8xx\uDCxx` escapes as
/// CPython does. Lone surrogates become U+FFFD and make the result `false`; malformed escapes (impossible in a
/// scanned span) are copied through rather than trapping. The one JSON string decoder of the package (the
/// filters' field readers use it too).
@discardableResult
package func unescapeJSONString(_ p: UnsafePointer<UInt8>?, _ count: Int, into out: inout [UInt8]) -> Bool {
    guard let p else { return true }
    out.reserveCapacity(count)
    var clean = true
    var i = 0
    while i < count {
        let c = p[i]
        guard c == backslashByte, i &+ 1 < count else {
            out.append(c)
            i &+= 1
            continue
        }
        let e = p[i &+ 1]
        i &+= 2
        switch e {
        case 0x62: out.append(0x08)
        case 0x66: out.append(0x0C)
        case 0x6E: out.append(0x0A)
        case 0x72: out.append(0x0D)
        case 0x74: out.append(0x09)
        case 0x75:
            guard let unit = hex4(p, count, i) else {
                out.append(e)
                continue
            }
            i &+= 4
            if unit >= 0xD800 && unit <= 0xDBFF {
                if i &+ 6 <= count, p[i] == backslashByte, p[i &+ 1] == 0x75, let low = hex4(p, count, i &+ 2),
                    low >= 0xDC00 && low <= 0xDFFF
                {
                    appendUTF8(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00), to: &out)
                    i &+= 6
                } else {
                    appendUTF8(0xFFFD, to: &out)
                    clean = false
                }
            } else if unit >= 0xDC00 && unit <= 0xDFFF {
                appendUTF8(0xFFFD, to: &out)
                clean = false
            } else {
                appendUTF8(unit, to: &out)
            }
        default:
            out.append(e)  // " \ / and anything malformed
        }
    }
    return clean
}
