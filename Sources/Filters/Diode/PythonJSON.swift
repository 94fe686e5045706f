// JSON read the way CPython's `json.loads` reads it, and written the way `json.dumps(value, sort_keys=True)` writes
// it (default separators `, ` and `: `, ensure_ascii), byte for byte, so that a checksum computed in Python over
// `json.dumps(...)` can be recomputed here. No Foundation, no recursion: one pass over the bytes builds a flat list
// of nodes that point back into them, and the writer walks that list with an explicit stack.

import RouterCore
import RouterSupport

/// Why a text is not one JSON value as CPython's `json.loads` accepts it.
public struct JSONSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The class of problem.
    public enum Kind: Sendable, Equatable {
        /// A byte where JSON allows none (includes an empty text, trailing data, `NaN` and `Infinity`).
        case syntax
        /// Bytes that are not UTF-8 (Python decodes the datagram first and fails).
        case notUTF8
        /// Arrays and objects nested deeper than ``JSONDocument/maxDepth``.
        case tooDeep
        /// An integer with more digits than Python converts by default (4300, `sys.get_int_max_str_digits()`).
        case integerTooLong
    }

    /// The class of problem.
    public var kind: Kind
    /// Byte offset of the problem in the text.
    public var offset: Int

    /// Makes an error.
    public init(_ kind: Kind, at offset: Int) {
        self.kind = kind
        self.offset = offset
    }

    /// `invalid JSON at byte 12`, `not UTF-8 at byte 3`, ...
    public var description: String {
        switch kind {
        case .syntax: "invalid JSON at byte \(offset)"
        case .notUTF8: "not UTF-8 at byte \(offset)"
        case .tooDeep: "nested deeper than \(JSONDocument.maxDepth) levels at byte \(offset)"
        case .integerTooLong:
            "integer at byte \(offset) has more than \(JSONDocument.maxIntegerDigits) digits (Python refuses it)"
        }
    }
}

/// One JSON text parsed as CPython's `json.loads` parses it, kept as a flat list of nodes over the text's bytes.
///
/// A document is a reusable workspace: ``parse(_:)`` replaces what it held, keeping its storage, so a filter makes
/// one per batch and parses every entry into it. Every method that reads values takes the same bytes that were
/// parsed; passing other bytes gives meaningless (but memory-safe) results.
///
/// Accepted exactly as Python accepts: UTF-8, whitespace ` \t\n\r`, any integer of up to 4300 digits, strings with
/// lone surrogate escapes, duplicate keys (the last one wins). Refused where Python accepts, because no JSON
/// producer writes them: `NaN`, `Infinity`, `-Infinity`, and nesting deeper than 512 levels.
public struct JSONDocument: Sendable {
    /// Deepest nesting of arrays and objects accepted.
    public static let maxDepth = 512
    /// Most digits in an integer, as Python 3.11+ converts by default.
    public static let maxIntegerDigits = 4300

    /// The type of a JSON value.
    public enum Kind: UInt8, Sendable {
        /// `{...}`
        case object
        /// `[...]`
        case array
        /// `"..."`
        case string
        /// A number without fraction or exponent (a Python `int`).
        case integer
        /// A number with a fraction or an exponent (a Python `float`).
        case float
        /// `true`
        case `true`
        /// `false`
        case `false`
        /// `null`
        case null
    }

    /// A node: a value, or an object's key (a string node right before its value).
    struct Node {
        var kind: Kind
        /// Strings: bit 0 = the raw text is printable ASCII without `"` or `\` (written as is); bit 1 = it has a `\`.
        var flags: UInt8
        /// Byte offset of the value (strings: of the first byte after the opening quote).
        var start: Int32
        /// Byte length (strings: of the raw content between the quotes).
        var count: Int32
        /// Index of the node after this value's subtree.
        var end: Int32
    }

    static let plainFlag: UInt8 = 1
    static let escapedFlag: UInt8 = 2

    private struct SortKey {
        var node: Int32
        var start: Int32
        var count: Int32
        var decoded: Bool
    }

    private struct Frame {
        var start: Int32
        var cursor: Int32
        var end: Int32
        var isObject: Bool
    }

    private(set) var nodes: [Node] = []
    private var open: [Int32] = []
    private var keyBytes: [UInt8] = []
    private var sortKeys: [SortKey] = []
    private var order: [Int32] = []
    private var frames: [Frame] = []

    /// Makes an empty document.
    public init() {}

    /// Whether the last parse succeeded (false before any parse and after a failed one).
    public var isParsed: Bool { !nodes.isEmpty && open.isEmpty }

    /// The type of the top-level value; nil when nothing is parsed.
    public var rootKind: Kind? { isParsed ? nodes[0].kind : nil }

    // MARK: - Parsing

    /// Parses `bytes` as one JSON text, replacing what the document held. Returns nil on success.
    public mutating func parse(_ bytes: UnsafeRawBufferPointer) -> JSONSyntaxError? {
        nodes.removeAll(keepingCapacity: true)
        open.removeAll(keepingCapacity: true)
        guard let base = bytes.baseAddress, bytes.count > 0 else { return JSONSyntaxError(.syntax, at: 0) }
        guard bytes.count < Int(Int32.max) else { return JSONSyntaxError(.syntax, at: 0) }
        let error = parse(base.assumingMemoryBound(to: UInt8.self), bytes.count)
        if error != nil {
            nodes.removeAll(keepingCapacity: true)
            open.removeAll(keepingCapacity: true)
        }
        return error
    }

    private mutating func parse(_ p: UnsafePointer<UInt8>, _ n: Int) -> JSONSyntaxError? {
        var i = skipWhitespace(p, n, 0)
        while true {
            // A value starts at i.
            guard i < n else { return JSONSyntaxError(.syntax, at: n) }
            let c = p[i]
            switch c {
            case 0x7B, 0x5B:  // { [
                guard open.count < JSONDocument.maxDepth else { return JSONSyntaxError(.tooDeep, at: i) }
                let index = Int32(nodes.count)
                let isObject = c == 0x7B
                nodes.append(Node(kind: isObject ? .object : .array, flags: 0, start: Int32(i), count: 0, end: 0))
                open.append(index)
                i = skipWhitespace(p, n, i &+ 1)
                if i < n && p[i] == (isObject ? 0x7D : 0x5D) {
                    close(index, at: i)
                    i &+= 1
                } else if isObject {
                    if let error = parseKey(p, n, &i) { return error }
                    continue
                } else {
                    continue
                }
            case 0x22:  // "
                let scan = scanString(p, n, i &+ 1)
                if let error = scan.error { return error }
                appendLeaf(.string, flags: scan.flags, start: i &+ 1, count: scan.end &- i &- 1)
                i = scan.end &+ 1
            case 0x2D, 0x30...0x39:  // - 0-9
                let scan = scanNumber(p, n, i)
                if let error = scan.error { return error }
                appendLeaf(scan.integral ? .integer : .float, flags: 0, start: i, count: scan.end &- i)
                i = scan.end
            case 0x74, 0x66, 0x6E:  // t f n
                let length = literalLength(p, n, i)
                guard length > 0 else { return JSONSyntaxError(.syntax, at: i) }
                appendLeaf(c == 0x74 ? .true : c == 0x66 ? .false : .null, flags: 0, start: i, count: length)
                i &+= length
            default:
                return JSONSyntaxError(.syntax, at: i)
            }
            // A value ended before i: close containers until a comma asks for the next value.
            while true {
                i = skipWhitespace(p, n, i)
                guard let top = open.last else { return i == n ? nil : JSONSyntaxError(.syntax, at: i) }
                guard i < n else { return JSONSyntaxError(.syntax, at: n) }
                let isObject = nodes[Int(top)].kind == .object
                let c = p[i]
                if c == 0x2C {
                    i = skipWhitespace(p, n, i &+ 1)
                    if isObject, let error = parseKey(p, n, &i) { return error }
                    break
                }
                guard c == (isObject ? 0x7D : 0x5D) else { return JSONSyntaxError(.syntax, at: i) }
                close(top, at: i)
                i &+= 1
            }
        }
    }

    private mutating func close(_ index: Int32, at i: Int) {
        nodes[Int(index)].end = Int32(nodes.count)
        nodes[Int(index)].count = Int32(i) &+ 1 &- nodes[Int(index)].start
        open.removeLast()
    }

    @inline(__always)
    private mutating func appendLeaf(_ kind: Kind, flags: UInt8, start: Int, count: Int) {
        let index = Int32(nodes.count)
        nodes.append(Node(kind: kind, flags: flags, start: Int32(start), count: Int32(count), end: index &+ 1))
    }

    /// Parses `"key"` `:` at i (whitespace before it already skipped) and leaves i at the value.
    private mutating func parseKey(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: inout Int) -> JSONSyntaxError? {
        guard i < n else { return JSONSyntaxError(.syntax, at: n) }
        guard p[i] == 0x22 else { return JSONSyntaxError(.syntax, at: i) }
        let scan = scanString(p, n, i &+ 1)
        if let error = scan.error { return error }
        appendLeaf(.string, flags: scan.flags, start: i &+ 1, count: scan.end &- i &- 1)
        i = skipWhitespace(p, n, scan.end &+ 1)
        guard i < n else { return JSONSyntaxError(.syntax, at: n) }
        guard p[i] == 0x3A else { return JSONSyntaxError(.syntax, at: i) }
        i = skipWhitespace(p, n, i &+ 1)
        return nil
    }

    // MARK: - Reading values

    /// The value of the top-level object's member `name` (the last one when the key repeats, as in Python),
    /// compared after decoding escapes; nil when the top level is not an object or has no such key.
    public mutating func member(_ wanted: [UInt8], in bytes: UnsafeRawBufferPointer) -> Int? {
        guard rootKind == .object, let p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
            Int(nodes[0].start) + Int(nodes[0].count) <= bytes.count
        else { return nil }
        var found: Int?
        var key = 1
        let end = Int(nodes[0].end)
        while key &+ 1 < end {
            let node = nodes[key]
            if node.flags & JSONDocument.escapedFlag == 0 {
                if Int(node.count) == wanted.count
                    && wanted.withUnsafeBufferPointer({ equalBytes(p + Int(node.start), $0) })
                {
                    found = key &+ 1
                }
            } else {
                keyBytes.removeAll(keepingCapacity: true)
                decodeWTF8(p + Int(node.start), Int(node.count), into: &keyBytes)
                if keyBytes == wanted { found = key &+ 1 }
            }
            key = Int(nodes[key &+ 1].end)
        }
        return found
    }

    /// The type of the value at `index` (from ``member(_:in:)``).
    public func kind(at index: Int) -> Kind? {
        index >= 0 && index < nodes.count ? nodes[index].kind : nil
    }

    /// The node indices of an array's elements, or of an object's values, in the order written; nil when the value
    /// at `index` is neither.
    public func elements(at index: Int) -> [Int]? {
        guard index >= 0, index < nodes.count, nodes[index].kind == .array || nodes[index].kind == .object else {
            return nil
        }
        let isObject = nodes[index].kind == .object
        var result: [Int] = []
        var child = index &+ 1
        let end = Int(nodes[index].end)
        while child < end {
            let value = isObject ? child &+ 1 : child
            result.append(value)
            child = Int(nodes[value].end)
        }
        return result
    }

    /// The raw byte range of a string's content (between the quotes, escapes still in), when the string needs no
    /// decoding (it has no `\`); nil otherwise or when the value is not a string.
    public func rawString(at index: Int) -> Range<Int>? {
        guard index >= 0, index < nodes.count, nodes[index].kind == .string,
            nodes[index].flags & JSONDocument.escapedFlag == 0
        else { return nil }
        return Int(nodes[index].start)..<Int(nodes[index].start + nodes[index].count)
    }

    /// Appends the decoded UTF-8 of the string at `index` to `output` (a lone surrogate escape becomes its
    /// three-byte generalized UTF-8 form, as Python's `surrogatepass` writes it). Returns false when the value is
    /// not a string.
    public func decodeString(at index: Int, in bytes: UnsafeRawBufferPointer, into output: inout [UInt8]) -> Bool {
        guard index >= 0, index < nodes.count, nodes[index].kind == .string,
            let p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
            Int(nodes[index].start) + Int(nodes[index].count) <= bytes.count
        else { return false }
        decodeWTF8(p + Int(nodes[index].start), Int(nodes[index].count), into: &output)
        return true
    }

    /// The numeric value at `index` as a Double (huge integers lose precision, as `float(n)` does in Python);
    /// nil when the value is not a number.
    public func number(at index: Int, in bytes: UnsafeRawBufferPointer) -> Double? {
        guard index >= 0, index < nodes.count else { return nil }
        let node = nodes[index]
        guard node.kind == .integer || node.kind == .float, Int(node.start) + Int(node.count) <= bytes.count else {
            return nil
        }
        let text = UnsafeRawBufferPointer(rebasing: bytes[Int(node.start)..<Int(node.start + node.count)])
        if node.kind == .integer && node.count <= 15 {
            var value = 0
            var negative = false
            for byte in text {
                if byte == 0x2D { negative = true } else { value = value &* 10 &+ Int(byte &- 0x30) }
            }
            return Double(negative ? -value : value)
        }
        return Double(String(decoding: text, as: UTF8.self))
    }

    // MARK: - Writing as Python does

    /// Appends `json.dumps(value, sort_keys=True)` of the parsed value to `output`, as CPython writes it: keys
    /// sorted by code point, a repeated key once with its last value, `, ` and `: ` separators, strings with
    /// ensure_ascii escapes, integers as written, floats as Python's `repr`. With `omittingTopLevelKey`, that
    /// member of the top-level object is left out (`dict.pop`). Does nothing when nothing is parsed.
    public mutating func appendPythonDumps(
        of bytes: UnsafeRawBufferPointer, omittingTopLevelKey omitted: [UInt8]? = nil, to output: inout [UInt8]
    ) {
        guard isParsed, let p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self),
            Int(nodes[0].start) + Int(nodes[0].count) <= bytes.count
        else { return }
        frames.removeAll(keepingCapacity: true)
        order.removeAll(keepingCapacity: true)
        writeValue(0, p, omitting: omitted, to: &output)
        while let frame = frames.last {
            if frame.cursor == frame.end {
                output.append(frame.isObject ? 0x7D : 0x5D)
                order.removeSubrange(Int(frame.start)..<order.count)
                frames.removeLast()
                continue
            }
            if frame.cursor > frame.start {
                output.append(0x2C)
                output.append(0x20)
            }
            let item = Int(order[Int(frame.cursor)])
            frames[frames.count - 1].cursor = frame.cursor &+ 1
            if frame.isObject {
                appendPythonString(p + Int(nodes[item].start), Int(nodes[item].count), nodes[item].flags, &output)
                output.append(0x3A)
                output.append(0x20)
                writeValue(item &+ 1, p, omitting: nil, to: &output)
            } else {
                writeValue(item, p, omitting: nil, to: &output)
            }
        }
    }

    /// Writes a scalar, or opens a container: writes its bracket and pushes a frame with its members in order.
    private mutating func writeValue(
        _ index: Int, _ p: UnsafePointer<UInt8>, omitting omitted: [UInt8]?, to output: inout [UInt8]
    ) {
        let node = nodes[index]
        switch node.kind {
        case .object:
            let start = Int32(order.count)
            orderMembers(of: index, p, omitting: omitted)
            if Int32(order.count) == start {
                output.append(0x7B)
                output.append(0x7D)
            } else {
                output.append(0x7B)
                frames.append(Frame(start: start, cursor: start, end: Int32(order.count), isObject: true))
            }
        case .array:
            if node.end == Int32(index) &+ 1 {
                output.append(0x5B)
                output.append(0x5D)
                return
            }
            let start = Int32(order.count)
            var child = index &+ 1
            while child < Int(node.end) {
                order.append(Int32(child))
                child = Int(nodes[child].end)
            }
            output.append(0x5B)
            frames.append(Frame(start: start, cursor: start, end: Int32(order.count), isObject: false))
        case .string:
            appendPythonString(p + Int(node.start), Int(node.count), node.flags, &output)
        case .integer:
            if node.count == 2 && p[Int(node.start)] == 0x2D && p[Int(node.start) &+ 1] == 0x30 {
                output.append(0x30)  // int("-0") is 0
            } else {
                output.append(contentsOf: UnsafeBufferPointer(start: p + Int(node.start), count: Int(node.count)))
            }
        case .float:
            let text = String(
                decoding: UnsafeBufferPointer(start: p + Int(node.start), count: Int(node.count)), as: UTF8.self)
            PythonJSON.appendFloat(Double(text) ?? .nan, to: &output)
        case .true: output.append(contentsOf: [0x74, 0x72, 0x75, 0x65])
        case .false: output.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65])
        case .null: output.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C])
        }
    }

    /// Appends to `order` the key nodes of object `index`, sorted by code point, each key once (its last
    /// occurrence, whose value Python keeps), without `omitted`.
    private mutating func orderMembers(of index: Int, _ p: UnsafePointer<UInt8>, omitting omitted: [UInt8]?) {
        sortKeys.removeAll(keepingCapacity: true)
        keyBytes.removeAll(keepingCapacity: true)
        var key = index &+ 1
        let end = Int(nodes[index].end)
        while key &+ 1 < end {
            let node = nodes[key]
            if node.flags & JSONDocument.escapedFlag == 0 {
                sortKeys.append(SortKey(node: Int32(key), start: node.start, count: node.count, decoded: false))
            } else {
                let start = keyBytes.count
                decodeWTF8(p + Int(node.start), Int(node.count), into: &keyBytes)
                sortKeys.append(
                    SortKey(node: Int32(key), start: Int32(start), count: Int32(keyBytes.count - start), decoded: true))
            }
            key = Int(nodes[key &+ 1].end)
        }
        guard !sortKeys.isEmpty else { return }
        let decodedKeys = keyBytes
        decodedKeys.withUnsafeBufferPointer { decoded in
            let scratch = decoded.baseAddress ?? p
            @inline(__always) func bytes(_ key: SortKey) -> UnsafeBufferPointer<UInt8> {
                UnsafeBufferPointer(start: (key.decoded ? scratch : p) + Int(key.start), count: Int(key.count))
            }
            if sortKeys.count > 1 {
                sortKeys.sort { left, right in
                    let order = compareBytes(bytes(left), bytes(right))
                    return order != 0 ? order < 0 : left.node < right.node
                }
            }
            let omittedCount = omitted?.count ?? -1
            for position in sortKeys.indices {
                let current = bytes(sortKeys[position])
                if position &+ 1 < sortKeys.count && compareBytes(current, bytes(sortKeys[position &+ 1])) == 0 {
                    continue
                }
                if let omitted, current.count == omittedCount,
                    omitted.withUnsafeBufferPointer({ compareBytes(current, $0) == 0 })
                {
                    continue
                }
                order.append(sortKeys[position].node)
            }
        }
    }
}

/// Python's way of writing JSON scalars, shared by ``JSONDocument`` and the message builders.
public enum PythonJSON {
    /// `json.dumps(text)` with ensure_ascii: quoted, `"` `\` and `\n \r \t \b \f` escaped, every other character
    /// outside printable ASCII as `\uXXXX` (lowercase hex, UTF-16 surrogate pairs above U+FFFF).
    public static func quoted(_ text: String) -> String {
        var output: [UInt8] = [0x22]
        output.reserveCapacity(text.utf8.count + 2)
        for unit in text.utf16 { appendEscapedUnit(unit, to: &output) }
        output.append(0x22)
        return String(decoding: output, as: UTF8.self)
    }

    /// `repr(value)` as `json.dumps` writes a float: the shortest text that reads back as the same double, in
    /// exponent form when the decimal exponent is below -4 or at least 16 (`1e-05`, `1e+16`, `0.0001`, `1.5`,
    /// `100.0`), `Infinity`, `-Infinity`, `NaN`.
    public static func appendFloat(_ value: Double, to output: inout [UInt8]) {
        if value.isNaN {
            output.append(contentsOf: Array("NaN".utf8))
            return
        }
        if value.sign == .minus { output.append(0x2D) }
        if value.isInfinite {
            output.append(contentsOf: Array("Infinity".utf8))
            return
        }
        if value == 0 {
            output.append(contentsOf: [0x30, 0x2E, 0x30])
            return
        }
        // Swift's description is also the shortest round-trip text; take its digits and place the point as
        // Python does.
        var digits: [UInt8] = []
        var pointAfter = 0  // value = 0.DIGITS * 10^pointAfter
        var exponent = 0
        var seenPoint = false
        var inExponent = false
        var exponentNegative = false
        for byte in value.magnitude.description.utf8 {
            if inExponent {
                if byte == 0x2D {
                    exponentNegative = true
                } else if byte >= 0x30 && byte <= 0x39 {
                    exponent = exponent * 10 + Int(byte - 0x30)
                }
            } else if byte == 0x2E {
                seenPoint = true
            } else if byte == 0x65 || byte == 0x45 {
                inExponent = true
            } else if byte >= 0x30 && byte <= 0x39 {
                digits.append(byte)
                if !seenPoint { pointAfter += 1 }
            }
        }
        pointAfter += exponentNegative ? -exponent : exponent
        var leading = 0
        while leading < digits.count - 1 && digits[leading] == 0x30 { leading += 1 }
        digits.removeFirst(leading)
        pointAfter -= leading
        while digits.count > 1 && digits[digits.count - 1] == 0x30 { digits.removeLast() }
        if pointAfter <= -4 || pointAfter > 16 {
            output.append(digits[0])
            if digits.count > 1 {
                output.append(0x2E)
                output.append(contentsOf: digits[1...])
            }
            let shown = pointAfter - 1
            output.append(0x65)
            output.append(shown < 0 ? 0x2D : 0x2B)
            let magnitude = String(shown.magnitude)
            if magnitude.utf8.count < 2 { output.append(0x30) }
            output.append(contentsOf: Array(magnitude.utf8))
        } else if pointAfter <= 0 {
            output.append(0x30)
            output.append(0x2E)
            output.append(contentsOf: repeatElement(UInt8(0x30), count: -pointAfter))
            output.append(contentsOf: digits)
        } else if pointAfter >= digits.count {
            output.append(contentsOf: digits)
            output.append(contentsOf: repeatElement(UInt8(0x30), count: pointAfter - digits.count))
            output.append(0x2E)
            output.append(0x30)
        } else {
            output.append(contentsOf: digits[..<pointAfter])
            output.append(0x2E)
            output.append(contentsOf: digits[pointAfter...])
        }
    }
}

// MARK: - Bytes

private let lowBits: UInt64 = 0x0101_0101_0101_0101
private let highBits: UInt64 = 0x8080_8080_8080_8080
private let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

@inline(__always)
private func skipWhitespace(_ p: UnsafePointer<UInt8>, _ n: Int, _ start: Int) -> Int {
    var i = start
    while i < n {
        let c = p[i]
        guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return i }
        i &+= 1
    }
    return i
}

@inline(__always)
private func hexValue(_ c: UInt8) -> UInt16? {
    switch c {
    case 0x30...0x39: UInt16(c &- 0x30)
    case 0x41...0x46: UInt16(c &- 0x37)
    case 0x61...0x66: UInt16(c &- 0x57)
    default: nil
    }
}

private struct StringScan {
    var end: Int
    var flags: UInt8
    var error: JSONSyntaxError?
}

/// Scans string content from `start` (after the opening quote) to the closing quote, validating escapes, control
/// characters and UTF-8. Eight bytes at a time while they are printable ASCII other than `"` and `\`.
@inline(__always)
private func scanString(_ p: UnsafePointer<UInt8>, _ n: Int, _ start: Int) -> StringScan {
    var i = start
    var flags = JSONDocument.plainFlag
    while true {
        while i &+ 8 <= n {
            let word = UInt64(littleEndian: UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self))
            let quotes = word ^ 0x2222_2222_2222_2222
            let slashes = word ^ 0x5C5C_5C5C_5C5C_5C5C
            // Per byte: `"` or `\` (zero after the xor), below 0x20, 0x7F or above (adding 1 sets the high bit).
            // Borrows and carries only run upwards from a real hit, so the lowest flagged byte is exact.
            let special =
                (((quotes &- lowBits) & ~quotes) | ((slashes &- lowBits) & ~slashes)
                    | (word &- 0x2020_2020_2020_2020) | (word &+ lowBits) | word) & highBits
            if special != 0 {
                i &+= special.trailingZeroBitCount &>> 3
                break
            }
            i &+= 8
        }
        guard i < n else { return StringScan(end: n, flags: flags, error: JSONSyntaxError(.syntax, at: n)) }
        let c = p[i]
        if c == 0x22 { return StringScan(end: i, flags: flags, error: nil) }
        if c == 0x5C {
            flags = JSONDocument.escapedFlag
            let e = i &+ 1
            guard e < n else { return StringScan(end: n, flags: flags, error: JSONSyntaxError(.syntax, at: n)) }
            switch p[e] {
            case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74:
                i &+= 2
            case 0x75:
                for k in (e &+ 1)...(e &+ 4) {
                    guard k < n else {
                        return StringScan(end: n, flags: flags, error: JSONSyntaxError(.syntax, at: n))
                    }
                    guard hexValue(p[k]) != nil else {
                        return StringScan(end: k, flags: flags, error: JSONSyntaxError(.syntax, at: k))
                    }
                }
                i &+= 6
            default:
                return StringScan(end: e, flags: flags, error: JSONSyntaxError(.syntax, at: e))
            }
            continue
        }
        if c < 0x20 { return StringScan(end: i, flags: flags, error: JSONSyntaxError(.syntax, at: i)) }
        flags &= ~JSONDocument.plainFlag
        if c < 0x80 {
            i &+= 1
            continue
        }
        let length = UTF8Scan.sequenceLength(p, n, i)
        if length == 0 { return StringScan(end: i, flags: flags, error: JSONSyntaxError(.notUTF8, at: i)) }
        i &+= length
    }
}

private struct NumberScan {
    var end: Int
    var integral: Bool
    var error: JSONSyntaxError?
}

/// Scans `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` at `start`.
@inline(__always)
private func scanNumber(_ p: UnsafePointer<UInt8>, _ n: Int, _ start: Int) -> NumberScan {
    @inline(__always) func isDigit(_ c: UInt8) -> Bool { (c &- 0x30) < 10 }
    @inline(__always) func fail(_ at: Int) -> NumberScan {
        NumberScan(end: at, integral: false, error: JSONSyntaxError(.syntax, at: at))
    }
    var i = start
    if p[i] == 0x2D {
        i &+= 1
        guard i < n else { return fail(i) }
    }
    let digitsStart = i
    if p[i] == 0x30 {
        i &+= 1
    } else if isDigit(p[i]) {
        i &+= 1
        while i < n && isDigit(p[i]) { i &+= 1 }
    } else {
        return fail(i)
    }
    let integerDigits = i &- digitsStart
    var integral = true
    if i < n && p[i] == 0x2E {
        i &+= 1
        guard i < n && isDigit(p[i]) else { return fail(i) }
        integral = false
        while i < n && isDigit(p[i]) { i &+= 1 }
    }
    if i < n && (p[i] | 0x20) == 0x65 {
        i &+= 1
        if i < n && (p[i] == 0x2B || p[i] == 0x2D) { i &+= 1 }
        guard i < n && isDigit(p[i]) else { return fail(i) }
        integral = false
        while i < n && isDigit(p[i]) { i &+= 1 }
    }
    if integral && integerDigits > JSONDocument.maxIntegerDigits {
        return NumberScan(end: i, integral: true, error: JSONSyntaxError(.integerTooLong, at: start))
    }
    return NumberScan(end: i, integral: integral, error: nil)
}

/// Length of the literal `true`, `false` or `null` at `i`, or 0.
@inline(__always)
private func literalLength(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: Int) -> Int {
    func matches(_ word: StaticString) -> Bool {
        let count = word.utf8CodeUnitCount
        guard i &+ count <= n else { return false }
        let expected = word.utf8Start
        for k in 0..<count where p[i &+ k] != expected[k] { return false }
        return true
    }
    switch p[i] {
    case 0x74: return matches("true") ? 4 : 0
    case 0x66: return matches("false") ? 5 : 0
    case 0x6E: return matches("null") ? 4 : 0
    default: return 0
    }
}

@inline(__always)
private func equalBytes(_ p: UnsafePointer<UInt8>, _ other: UnsafeBufferPointer<UInt8>) -> Bool {
    for k in 0..<other.count where p[k] != other[k] { return false }
    return true
}

/// Negative, zero or positive as `left` sorts before, with or after `right`, byte by byte (UTF-8 byte order is
/// code point order, also for the generalized encoding of lone surrogates).
@inline(__always)
private func compareBytes(_ left: UnsafeBufferPointer<UInt8>, _ right: UnsafeBufferPointer<UInt8>) -> Int {
    let common = min(left.count, right.count)
    var k = 0
    while k < common {
        let a = left[k]
        let b = right[k]
        if a != b { return a < b ? -1 : 1 }
        k &+= 1
    }
    return left.count - right.count
}

/// Walks validated string content as Python sees it: each escape and each UTF-8 sequence becomes code units.
/// `unit` gets UTF-16 code units (a `\uXXXX` escape is one unit; a raw character above U+FFFF two).
@inline(__always)
private func forEachUTF16Unit(_ p: UnsafePointer<UInt8>, _ count: Int, _ unit: (UInt16) -> Void) {
    var i = 0
    while i < count {
        let c = p[i]
        if c == 0x5C && i &+ 1 < count {
            let e = p[i &+ 1]
            switch e {
            case 0x62: unit(0x08)
            case 0x66: unit(0x0C)
            case 0x6E: unit(0x0A)
            case 0x72: unit(0x0D)
            case 0x74: unit(0x09)
            case 0x75:
                var value: UInt16 = 0
                var k = i &+ 2
                while k < min(i &+ 6, count) {
                    value = value &<< 4 | (hexValue(p[k]) ?? 0)
                    k &+= 1
                }
                unit(value)
                i &+= 6
                continue
            default: unit(UInt16(e))
            }
            i &+= 2
            continue
        }
        if c < 0x80 {
            unit(UInt16(c))
            i &+= 1
            continue
        }
        let length = UTF8Scan.sequenceLength(p, count, i)
        guard length > 0 else {
            unit(0xFFFD)
            i &+= 1
            continue
        }
        var scalar = UInt32(c) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
        for k in 1..<length { scalar = scalar << 6 | UInt32(p[i &+ k] & 0x3F) }
        if scalar > 0xFFFF {
            let offset = scalar - 0x10000
            unit(UInt16(0xD800 + (offset >> 10)))
            unit(UInt16(0xDC00 + (offset & 0x3FF)))
        } else {
            unit(UInt16(scalar))
        }
        i &+= length
    }
}

/// Decodes string content to UTF-8, pairing surrogates as Python does and writing a lone one in the generalized
/// three-byte form, so that byte order stays code point order.
private func decodeWTF8(_ p: UnsafePointer<UInt8>, _ count: Int, into output: inout [UInt8]) {
    var pendingHigh: UInt16 = 0
    func emit(_ scalar: UInt32) {
        switch scalar {
        case 0..<0x80:
            output.append(UInt8(scalar))
        case 0x80..<0x800:
            output.append(UInt8(0xC0 | scalar >> 6))
            output.append(UInt8(0x80 | scalar & 0x3F))
        case 0x800..<0x10000:
            output.append(UInt8(0xE0 | scalar >> 12))
            output.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            output.append(UInt8(0x80 | scalar & 0x3F))
        default:
            output.append(UInt8(0xF0 | scalar >> 18))
            output.append(UInt8(0x80 | scalar >> 12 & 0x3F))
            output.append(UInt8(0x80 | scalar >> 6 & 0x3F))
            output.append(UInt8(0x80 | scalar & 0x3F))
        }
    }
    forEachUTF16Unit(p, count) { unit in
        if pendingHigh != 0 {
            let high = pendingHigh
            pendingHigh = 0
            if unit >= 0xDC00 && unit <= 0xDFFF {
                emit(0x10000 + (UInt32(high - 0xD800) << 10) + UInt32(unit - 0xDC00))
                return
            }
            emit(UInt32(high))
        }
        if unit >= 0xD800 && unit <= 0xDBFF {
            pendingHigh = unit
        } else {
            emit(UInt32(unit))
        }
    }
    if pendingHigh != 0 { emit(UInt32(pendingHigh)) }
}

@inline(__always)
private func appendEscapedUnit(_ unit: UInt16, to output: inout [UInt8]) {
    switch unit {
    case 0x22: output.append(contentsOf: [0x5C, 0x22])
    case 0x5C: output.append(contentsOf: [0x5C, 0x5C])
    case 0x0A: output.append(contentsOf: [0x5C, 0x6E])
    case 0x0D: output.append(contentsOf: [0x5C, 0x72])
    case 0x09: output.append(contentsOf: [0x5C, 0x74])
    case 0x08: output.append(contentsOf: [0x5C, 0x62])
    case 0x0C: output.append(contentsOf: [0x5C, 0x66])
    case 0x20...0x7E: output.append(UInt8(unit))
    default:
        output.append(0x5C)
        output.append(0x75)
        output.append(hexDigits[Int(unit >> 12)])
        output.append(hexDigits[Int(unit >> 8 & 0xF)])
        output.append(hexDigits[Int(unit >> 4 & 0xF)])
        output.append(hexDigits[Int(unit & 0xF)])
    }
}

/// Appends string content (raw, between the quotes) as Python's ensure_ascii encoder writes the decoded string.
@inline(__always)
private func appendPythonString(_ p: UnsafePointer<UInt8>, _ count: Int, _ flags: UInt8, _ output: inout [UInt8]) {
    output.append(0x22)
    if flags & JSONDocument.plainFlag != 0 {
        output.append(contentsOf: UnsafeBufferPointer(start: p, count: count))
    } else {
        forEachUTF16Unit(p, count) { appendEscapedUnit($0, to: &output) }
    }
    output.append(0x22)
}
