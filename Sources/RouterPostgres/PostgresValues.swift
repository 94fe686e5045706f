import RouterCore

/// How a JSON value becomes the text of a column's value, decided in Swift before the row is sent, so that a value
/// its column cannot take refuses that row alone instead of failing the statement that carries the whole batch.
///
/// | column type                              | takes                                                           |
/// |------------------------------------------|-----------------------------------------------------------------|
/// | smallint, integer, bigint                | a JSON integer, or a string holding one (`"42"`), in range; `1.0` |
/// | numeric, real, double precision          | a JSON number, or a string holding one                          |
/// | boolean                                  | `true`, `false`, or the strings `"true"`, `"false"`              |
/// | json, jsonb                              | any value, as it is written                                     |
/// | text, character varying, character       | a string's text; numbers, booleans, objects, arrays as written  |
/// | anything else (timestamp, uuid, ...)     | a string's text or a number as written, for the database to read |
///
/// JSON `null`, and a field that is absent, are SQL NULL for every type.
enum ColumnCast: Sendable, Equatable {
    case integer(ClosedRange<Int64>)
    case number
    case boolean
    case json
    case text
    /// A type routerd has no rule for: scalars go as text and the database decides.
    case other

    /// The rule for a column of this `format_type` type.
    init(type: String) {
        switch type {
        case "smallint": self = .integer(Int64(Int16.min)...Int64(Int16.max))
        case "integer": self = .integer(Int64(Int32.min)...Int64(Int32.max))
        case "bigint": self = .integer(Int64.min...Int64.max)
        case "real", "double precision": self = .number
        case "boolean": self = .boolean
        case "json", "jsonb": self = .json
        case "text", "character varying", "character": self = .text
        default:
            if type.hasPrefix("numeric") {
                self = .number
            } else if type.hasPrefix("character varying(") || type.hasPrefix("character(") {
                self = .text
            } else {
                self = .other
            }
        }
    }

    /// A short name of what the column holds, for refusals: `integer`, `a number`.
    private var wants: String {
        switch self {
        case .integer: "an integer"
        case .number: "a number"
        case .boolean: "true or false"
        case .json: "JSON"
        case .text: "text"
        case .other: "a string or a number"
        }
    }

    /// The value's text for the column, nil for SQL NULL, or why the column cannot take it.
    func convert(_ value: JSONValue?, in bytes: UnsafeRawBufferPointer) -> Result<String?, CastRefusal> {
        guard let value, value.kind != .null else { return .success(nil) }
        let raw = { String(decoding: UnsafeRawBufferPointer(rebasing: bytes[value.range]), as: UTF8.self) }
        func refuse(_ why: String) -> Result<String?, CastRefusal> { .failure(CastRefusal(why: why)) }
        switch self {
        case .integer(let range):
            switch value.kind {
            case .integer, .float:
                return Self.integer(raw(), in: range).map { .success($0) }
                    ?? refuse(Self.describe(raw(), wanting: self))
            case .string:
                let text = value.decoded(in: bytes)
                guard Self.isIntegerText(text) else { return refuse("\(Self.quote(text)) is not \(wants)") }
                return Self.integer(text, in: range).map { .success($0) }
                    ?? refuse("\(Self.quote(text)) is out of range for \(range.lowerBound)...\(range.upperBound)")
            default: return refuse("\(value.kind.name) is not \(wants)")
            }
        case .number:
            switch value.kind {
            case .integer, .float: return .success(raw())
            case .string:
                let text = value.decoded(in: bytes)
                return Self.isNumberText(text) ? .success(text) : refuse("\(Self.quote(text)) is not \(wants)")
            default: return refuse("\(value.kind.name) is not \(wants)")
            }
        case .boolean:
            switch value.kind {
            case .true: return .success("true")
            case .false: return .success("false")
            case .string:
                let text = value.decoded(in: bytes)
                return text == "true" || text == "false"
                    ? .success(text) : refuse("\(Self.quote(text)) is not \(wants)")
            default: return refuse("\(value.kind.name) is not \(wants)")
            }
        case .json:
            // A string's range is its content: its quotes make it JSON again (its escapes are still JSON's).
            return .success(value.kind == .string ? "\"" + raw() + "\"" : raw())
        case .text, .other:
            switch value.kind {
            case .string:
                let text = value.decoded(in: bytes)
                // PostgreSQL's text cannot hold U+0000; the database would refuse the whole statement.
                return text.utf8.contains(0) ? refuse("a string with \\u0000 cannot be stored as text") : .success(text)
            case .integer, .float: return .success(raw())
            case .true: return .success("true")
            case .false: return .success("false")
            case .object, .array:
                return self == .text ? .success(raw()) : refuse("\(value.kind.name) is not \(wants)")
            case .null: return .success(nil)
            }
        }
    }

    /// `12`, `-7`, `3.000` (a JSON number without an exponent whose fraction is all zeros) as an integer in
    /// `range`, written without the fraction; nil otherwise.
    static func integer(_ text: String, in range: ClosedRange<Int64>) -> String? {
        var digits = Substring(text)
        if let dot = digits.firstIndex(of: ".") {
            guard digits[digits.index(after: dot)...].allSatisfy({ $0 == "0" }) else { return nil }
            digits = digits[..<dot]
        }
        guard let number = Int64(digits), range.contains(number) else { return nil }
        return String(number)
    }

    /// An optional sign and decimal digits, nothing else (no spaces, no `_`, no `0x`).
    static func isIntegerText(_ text: String) -> Bool {
        var utf8 = Substring(text).utf8
        if utf8.first == UInt8(ascii: "-") || utf8.first == UInt8(ascii: "+") { utf8 = utf8.dropFirst() }
        return !utf8.isEmpty && utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
    }

    /// A JSON number, optionally with a leading `+`.
    static func isNumberText(_ text: String) -> Bool {
        var bytes = Array(text.utf8)
        if bytes.first == UInt8(ascii: "+") { bytes.removeFirst() }
        let digit = UInt8(ascii: "0")...UInt8(ascii: "9")
        var index = 0
        func digits() -> Int {
            let start = index
            while index < bytes.count, digit.contains(bytes[index]) { index += 1 }
            return index - start
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard digits() > 0 else { return false }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits() > 0 else { return false }
        }
        if index < bytes.count, bytes[index] | 0x20 == UInt8(ascii: "e") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard digits() > 0 else { return false }
        }
        return index == bytes.count
    }

    /// Why a JSON number is not an integer of `cast`'s range.
    private static func describe(_ number: String, wanting cast: ColumnCast) -> String {
        guard case .integer(let range) = cast else { return "\(number) is not \(cast.wants)" }
        let integral = number.allSatisfy { $0 == "-" || $0.isASCII && $0.isNumber }
        return integral
            ? "\(number) is out of range for \(range.lowerBound)...\(range.upperBound)"
            : "\(number) is not an integer"
    }

    /// A string in a refusal: quoted, and cut after 64 characters.
    private static func quote(_ text: String) -> String {
        "\"" + (text.count > 64 ? String(text.prefix(64)) + "…" : text) + "\""
    }
}

/// Why a column cannot take a value: `"abc" is not an integer`.
struct CastRefusal: Error, Equatable {
    var why: String
}

/// A JSON value inside an entry's bytes.
struct JSONValue: Equatable {
    enum Kind: Equatable {
        case object, array, string, integer, float, `true`, `false`, null

        var name: String {
            switch self {
            case .object: "an object"
            case .array: "an array"
            case .string: "a string"
            case .integer: "an integer"
            case .float: "a number"
            case .true: "true"
            case .false: "false"
            case .null: "null"
            }
        }
    }

    var kind: Kind
    /// The value's bytes as written; for a string, the bytes between its quotes.
    var range: Range<Int>
    /// A string with a backslash escape in it.
    var hasEscapes = false

    /// A string's text, its escapes decoded.
    func decoded(in bytes: UnsafeRawBufferPointer) -> String {
        JSONEntryScanner.decode(
            JSONSpan(
                start: Int32(clamping: range.lowerBound), count: Int32(clamping: range.count), hasEscapes: hasEscapes),
            in: bytes)
    }
}

/// Finds the values of a few field paths (`client_id`, `client.id`) in one JSON object, in one pass that skips
/// what it does not need. The text was already checked to be a JSON object (``JSONEntryScanner``); on anything
/// else the reader stops and returns what it found, never reading outside the bytes.
struct JSONFieldReader: Sendable {
    private final class Node: Sendable {
        let key: [UInt8]
        let leaf: Int?
        let children: [Node]

        init(key: [UInt8], leaf: Int?, children: [Node]) {
            self.key = key
            self.leaf = leaf
            self.children = children
        }
    }

    private let root: [Node]
    let count: Int

    /// A reader for `paths`; ``read(_:)`` gives their values in this order.
    init(paths: [[String]]) {
        count = paths.count
        func build(_ items: [(path: ArraySlice<String>, index: Int)]) -> [Node] {
            var order: [String] = []
            var groups: [String: [(path: ArraySlice<String>, index: Int)]] = [:]
            for item in items {
                guard let first = item.path.first else { continue }
                if groups[first] == nil { order.append(first) }
                groups[first, default: []].append((item.path.dropFirst(), item.index))
            }
            return order.map { key in
                let group = groups[key] ?? []
                let leaf = group.first { $0.path.isEmpty }?.index
                return Node(key: Array(key.utf8), leaf: leaf, children: build(group.filter { !$0.path.isEmpty }))
            }
        }
        root = build(paths.enumerated().map { (ArraySlice($0.element), $0.offset) })
    }

    /// The value of each path in `bytes`, nil where absent (or under something that is not an object).
    func read(_ bytes: UnsafeRawBufferPointer) -> [JSONValue?] {
        var values = [JSONValue?](repeating: nil, count: count)
        var index = Self.whitespace(bytes, 0)
        _ = Self.object(bytes, &index, root, &values)
        return values
    }

    private static func whitespace(_ bytes: UnsafeRawBufferPointer, _ start: Int) -> Int {
        var index = start
        while index < bytes.count,
            bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D
                || bytes[index] == 0x09
        {
            index += 1
        }
        return index
    }

    /// Reads the object at `index` (which must be at `{`), recording the values `nodes` ask for; false on bad JSON.
    private static func object(
        _ bytes: UnsafeRawBufferPointer, _ index: inout Int, _ nodes: [Node], _ values: inout [JSONValue?]
    ) -> Bool {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "{") else { return false }
        index = whitespace(bytes, index + 1)
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            return true
        }
        while index < bytes.count {
            guard let key = string(bytes, &index) else { return false }
            index = whitespace(bytes, index)
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return false }
            index = whitespace(bytes, index + 1)
            let node = match(key, in: bytes, nodes)
            if let node, !node.children.isEmpty, index < bytes.count, bytes[index] == UInt8(ascii: "{") {
                let start = index
                guard object(bytes, &index, node.children, &values) else { return false }
                if let leaf = node.leaf { values[leaf] = JSONValue(kind: .object, range: start..<index) }
            } else {
                guard let found = Self.value(bytes, &index) else { return false }
                if let leaf = node?.leaf { values[leaf] = found }
            }
            index = whitespace(bytes, index)
            guard index < bytes.count else { return false }
            if bytes[index] == UInt8(ascii: "}") {
                index += 1
                return true
            }
            guard bytes[index] == UInt8(ascii: ",") else { return false }
            index = whitespace(bytes, index + 1)
        }
        return false
    }

    private static func match(_ key: JSONValue, in bytes: UnsafeRawBufferPointer, _ nodes: [Node]) -> Node? {
        guard !nodes.isEmpty else { return nil }
        if key.hasEscapes {
            let decoded = Array(key.decoded(in: bytes).utf8)
            return nodes.first { $0.key == decoded }
        }
        let raw = bytes[key.range]
        return nodes.first { $0.key.elementsEqual(raw) }
    }

    /// Reads the string at `index` (at its opening quote); the value's range is its content.
    private static func string(_ bytes: UnsafeRawBufferPointer, _ index: inout Int) -> JSONValue? {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
        let start = index + 1
        var cursor = start
        var escapes = false
        while cursor < bytes.count {
            switch bytes[cursor] {
            case UInt8(ascii: "\""):
                index = cursor + 1
                return JSONValue(kind: .string, range: start..<cursor, hasEscapes: escapes)
            case UInt8(ascii: "\\"):
                escapes = true
                cursor += 2
            default:
                cursor += 1
            }
        }
        return nil
    }

    /// Reads any value at `index`, skipping over objects and arrays.
    private static func value(_ bytes: UnsafeRawBufferPointer, _ index: inout Int) -> JSONValue? {
        guard index < bytes.count else { return nil }
        let start = index
        switch bytes[index] {
        case UInt8(ascii: "\""):
            return string(bytes, &index)
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            var depth = 0
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: "\""):
                    guard string(bytes, &index) != nil else { return nil }
                    continue
                case UInt8(ascii: "{"), UInt8(ascii: "["):
                    depth += 1
                case UInt8(ascii: "}"), UInt8(ascii: "]"):
                    depth -= 1
                    if depth == 0 {
                        index += 1
                        let kind: JSONValue.Kind = bytes[start] == UInt8(ascii: "{") ? .object : .array
                        return JSONValue(kind: kind, range: start..<index)
                    }
                default: break
                }
                index += 1
            }
            return nil
        default:
            var float = false
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]")
                    || byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
                {
                    break
                }
                if byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                    float = true
                }
                index += 1
            }
            guard index > start else { return nil }
            let kind: JSONValue.Kind
            switch bytes[start] {
            case UInt8(ascii: "t"): kind = .true
            case UInt8(ascii: "f"): kind = .false
            case UInt8(ascii: "n"): kind = .null
            default: kind = float ? .float : .integer
            }
            return JSONValue(kind: kind, range: start..<index)
        }
    }
}

/// The output's rules as plain functions, for tests in this package.
package enum PostgresRules {
    /// What the field at `path` of the JSON object `entry` becomes in a column of `type` (as `format_type` writes
    /// it): its text, nil for NULL, or why the column cannot take it.
    package static func cast(_ entry: String, field path: [String], type: String) -> CastOutcome {
        var entry = entry
        return entry.withUTF8 { utf8 in
            let bytes = UnsafeRawBufferPointer(utf8)
            let value = JSONFieldReader(paths: [path]).read(bytes)[0]
            switch ColumnCast(type: type).convert(value, in: bytes) {
            case .success(let text): return .value(text)
            case .failure(let refusal): return .refused(refusal.why)
            }
        }
    }

    /// What a value becomes in a column.
    package enum CastOutcome: Equatable, Sendable {
        /// Its text, nil for NULL.
        case value(String?)
        /// Why the column cannot take it.
        case refused(String)
    }

    /// The `CREATE TABLE` the output runs for these options.
    package static func createStatement(table: String, columns: [String: String]?, schema: String) throws -> String {
        try PostgresTable(table: table, columns: columns, schema: TableSchema(rawValue: schema) ?? .seed)
            .createStatement
    }

    /// The INSERT the output runs into a table of `existing` columns (name, type, NOT NULL without default), and
    /// the seed columns it leaves out; throws the message the output reports when it cannot fill the table.
    package static func plan(
        table: String, columns: [String: String]?, existing: [(name: String, type: String, required: Bool)]
    ) throws -> (statement: String, filled: [String], skipped: [String]) {
        let plan = try PostgresTable(table: table, columns: columns).plan(
            for: existing.map { TableColumn(name: $0.name, type: $0.type, required: $0.required) })
        return (plan.statement, plan.columns.map(\.name), plan.skipped)
    }
}
