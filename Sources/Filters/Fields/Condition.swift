import RouterCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A YAML scalar a field is compared with: its text, and its value when it is a JSON number.
struct Operand: Sendable {
    var text: [UInt8]
    var number: Double?

    init(_ text: String) {
        self.text = Array(text.utf8)
        number = Operand.jsonNumber(text)
    }

    /// The value of `text` when it is a JSON number (`-12`, `1.5e3`), else nil.
    static func jsonNumber(_ text: String) -> Double? {
        var bytes = Array(text.utf8)
        let valid = bytes.withUnsafeBytes { raw -> Bool in
            guard let walk = JSONWalk(raw) else { return false }
            return walk.numberEnd(0) == raw.count
        }
        guard valid else { return nil }
        bytes.append(0)
        return bytes.withUnsafeBufferPointer { buffer in
            buffer.baseAddress.map { strtod(UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self), nil) }
        }
    }
}

/// One test of one field.
enum FieldTest: Sendable {
    case equals(Operand)
    case notEquals(Operand)
    case oneOf([Operand])
    case prefix([UInt8])
    case suffix([UInt8])
    case contains([UInt8])
    case matches(Int)
    case exists(Bool)
    case greaterThan(Double)
    case lessThan(Double)
}

/// A condition over an entry's fields, compiled from the config: tests of fields, and `all`, `any`, `not`.
indirect enum Condition: Sendable {
    case test(slot: Int, FieldTest)
    case all([Condition])
    case any([Condition])
    case not(Condition)
}

/// The names a condition's mapping may use, for the config check's messages.
enum ConditionSyntax {
    static let tests = [
        "equals", "not_equals", "in", "prefix", "suffix", "contains", "matches", "exists", "greater_than", "less_than",
    ]
    static let combinators = ["all", "any", "not"]
    static let keys = ["field"] + tests + combinators
}

/// Compiles conditions from their trees, collecting every problem with its position.
struct ConditionCompiler {
    var fields = FieldSet()
    var patterns: [Pattern] = []
    var problems: [OptionProblemReport] = []
    /// What the messages say first (`route 'auth'`).
    var context = ""

    mutating func problem(_ message: String, at location: SourceLocation) {
        problems.append(OptionProblemReport("\(context): \(message)", at: location))
    }

    /// The condition a tree says, or nil (with problems recorded).
    mutating func compile(_ tree: OptionTree) -> Condition? {
        guard let entries = tree.mapping else {
            problem(
                "a condition must be a mapping such as {field: app, equals: billing}, got \(tree.shape)",
                at: tree.location)
            return nil
        }
        guard !entries.isEmpty else {
            problem("a condition must not be empty; give a field and a test, or all, any or not", at: tree.location)
            return nil
        }
        var parts: [Condition] = []
        var failed = false
        let fieldEntry = entries.first { $0.key == "field" }
        var slot: Int?
        if let fieldEntry {
            if let text = fieldEntry.value.scalar, let path = FieldPath(text) {
                slot = fields.slot(for: path)
            } else {
                problem(
                    "'field' must be a field path such as app or trace.id (names joined by dots), got "
                        + fieldEntry.value.shape, at: fieldEntry.value.location)
                failed = true
            }
        }
        var sawTest = false
        var sawUnknown = false
        for entry in entries where entry.key != "field" {
            if ConditionSyntax.tests.contains(entry.key) {
                sawTest = true
                guard fieldEntry != nil else {
                    problem("'\(entry.key)' needs a 'field' to test", at: entry.keyLocation)
                    failed = true
                    continue
                }
                guard let test = compileTest(entry) else {
                    failed = true
                    continue
                }
                if let slot { parts.append(.test(slot: slot, test)) }
                continue
            }
            switch entry.key {
            case "all", "any":
                guard let items = entry.value.sequence, !items.isEmpty else {
                    problem(
                        "'\(entry.key)' must be a non-empty list of conditions, got \(entry.value.shape)",
                        at: entry.value.location)
                    failed = true
                    continue
                }
                let compiled = items.map { compile($0) }
                if compiled.contains(where: { $0 == nil }) {
                    failed = true
                    continue
                }
                let conditions = compiled.compactMap { $0 }
                parts.append(entry.key == "all" ? .all(conditions) : .any(conditions))
            case "not":
                guard let inner = compile(entry.value) else {
                    failed = true
                    continue
                }
                parts.append(.not(inner))
            default:
                var message = "unknown condition '\(entry.key)'"
                if let suggestion = Suggestion.closest(to: entry.key, among: ConditionSyntax.keys) {
                    message += " (did you mean '\(suggestion)'?)"
                } else {
                    message += "; conditions are: " + ConditionSyntax.keys.joined(separator: ", ")
                }
                problem(message, at: entry.keyLocation)
                failed = true
                sawUnknown = true
            }
        }
        if let fieldEntry, !sawTest, !sawUnknown {
            problem(
                "field '\(fieldEntry.value.scalar ?? "")' has no test; give one of: "
                    + ConditionSyntax.tests.joined(separator: ", "), at: fieldEntry.keyLocation)
            failed = true
        }
        guard !failed else { return nil }
        return parts.count == 1 ? parts[0] : .all(parts)
    }

    private mutating func scalar(_ entry: OptionTreeEntry) -> String? {
        guard let text = entry.value.scalar else {
            problem("'\(entry.key)' must be a single value, got \(entry.value.shape)", at: entry.value.location)
            return nil
        }
        return text
    }

    private mutating func compileTest(_ entry: OptionTreeEntry) -> FieldTest? {
        switch entry.key {
        case "in":
            guard let items = entry.value.sequence else {
                problem(
                    "'in' must be a list of values, e.g. [edge-1, edge-2], got \(entry.value.shape)",
                    at: entry.value.location)
                return nil
            }
            var operands: [Operand] = []
            for item in items {
                guard let text = item.scalar else {
                    problem("'in' must list single values, got \(item.shape)", at: item.location)
                    return nil
                }
                operands.append(Operand(text))
            }
            return .oneOf(operands)
        case "exists":
            guard let text = scalar(entry) else { return nil }
            switch text.lowercased() {
            case "true", "yes", "on": return .exists(true)
            case "false", "no", "off": return .exists(false)
            default:
                problem("'exists' must be true or false, got '\(text)'", at: entry.value.location)
                return nil
            }
        case "greater_than", "less_than":
            guard let text = scalar(entry) else { return nil }
            guard let number = Operand.jsonNumber(text) else {
                problem("'\(entry.key)' must be a number such as 1000 or 0.5, got '\(text)'", at: entry.value.location)
                return nil
            }
            return entry.key == "greater_than" ? .greaterThan(number) : .lessThan(number)
        case "matches":
            guard let text = scalar(entry) else { return nil }
            do {
                patterns.append(try Pattern(text))
                return .matches(patterns.count - 1)
            } catch {
                problem("'matches' is not a valid regular expression: \(error)", at: entry.value.location)
                return nil
            }
        default:
            guard let text = scalar(entry) else { return nil }
            switch entry.key {
            case "equals": return .equals(Operand(text))
            case "not_equals": return .notEquals(Operand(text))
            case "prefix": return .prefix(Array(text.utf8))
            case "suffix": return .suffix(Array(text.utf8))
            default: return .contains(Array(text.utf8))
            }
        }
    }
}

/// Evaluates conditions against one entry's fields; one per batch and thread (it holds the regex match data and a
/// scratch buffer for decoding escaped strings).
struct ConditionEvaluator {
    let walk: JSONWalk
    let values: UnsafeMutableBufferPointer<FieldValue>
    let matchers: [Pattern.Matcher]
    var scratch: [UInt8] = []

    mutating func evaluate(_ condition: Condition) -> Bool {
        switch condition {
        case .test(let slot, let test): return evaluate(test, values[slot])
        case .all(let parts):
            for part in parts where !evaluate(part) { return false }
            return true
        case .any(let parts):
            for part in parts where evaluate(part) { return true }
            return false
        case .not(let inner): return !evaluate(inner)
        }
    }

    private mutating func evaluate(_ test: FieldTest, _ value: FieldValue) -> Bool {
        switch test {
        case .exists(let wanted): return (value.kind != .absent) == wanted
        case .equals(let operand): return equals(value, operand)
        case .notEquals(let operand): return !equals(value, operand)
        case .oneOf(let operands):
            for operand in operands where equals(value, operand) { return true }
            return false
        case .greaterThan(let bound): return value.kind == .number && walk.number(value) > bound
        case .lessThan(let bound): return value.kind == .number && walk.number(value) < bound
        case .prefix(let text): return withText(value) { $0.count >= text.count && same($0.prefix(text.count), text) }
        case .suffix(let text): return withText(value) { $0.count >= text.count && same($0.suffix(text.count), text) }
        case .contains(let text): return withText(value) { contains($0, text) }
        case .matches(let index):
            let matcher = matchers[index]
            return withText(value) { matcher.matches($0.baseAddress, $0.count) }
        }
    }

    /// Calls `body` with a string field's decoded UTF-8; false when the field is not a string.
    private mutating func withText(_ value: FieldValue, _ body: (UnsafeBufferPointer<UInt8>) -> Bool) -> Bool {
        guard value.kind == .string else { return false }
        if !value.hasEscapes {
            return body(UnsafeBufferPointer(start: walk.p + value.start, count: value.end - value.start))
        }
        scratch.removeAll(keepingCapacity: true)
        JSONUnescape.append(walk.p + value.start, value.end - value.start, to: &scratch)
        return scratch.withUnsafeBufferPointer { body($0) }
    }

    private mutating func equals(_ value: FieldValue, _ operand: Operand) -> Bool {
        switch value.kind {
        case .string:
            return withText(value) { $0.count == operand.text.count && same($0[...], operand.text) }
        case .number:
            guard let number = operand.number else { return false }
            return walk.number(value) == number
        case .trueValue: return operand.text == trueText
        case .falseValue: return operand.text == falseText
        case .null: return operand.text == nullText
        case .absent, .object, .array: return false
        }
    }
}

private let trueText = Array("true".utf8)
private let falseText = Array("false".utf8)
private let nullText = Array("null".utf8)

private func same(_ a: Slice<UnsafeBufferPointer<UInt8>>, _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    return b.withUnsafeBufferPointer { b in
        guard let left = a.base.baseAddress, let right = b.baseAddress else { return true }
        return memcmp(left + a.startIndex, right, b.count) == 0
    }
}

private func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty else { return true }
    guard haystack.count >= needle.count, let base = haystack.baseAddress else { return false }
    return needle.withUnsafeBufferPointer { needle in
        guard let needleBase = needle.baseAddress else { return true }
        let first = Int32(needleBase[0])
        var offset = 0
        let last = haystack.count - needle.count
        while offset <= last {
            guard let found = memchr(base + offset, first, last - offset + 1) else { return false }
            let position = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
            if memcmp(base + position, needleBase, needle.count) == 0 { return true }
            offset = position + 1
        }
        return false
    }
}

/// The closest of `candidates` to a misspelled name, when it is close enough to be what was meant.
enum Suggestion {
    static func closest(to name: String, among candidates: [String]) -> String? {
        let best = candidates.map { (candidate: $0, distance: distance(name, $0)) }.min { $0.distance < $1.distance }
        guard let best, best.distance <= max(2, name.count / 3) else { return nil }
        return best.candidate
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased()), b = Array(b.lowercased())
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}
