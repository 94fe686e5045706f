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

/// Compiled conditions, flat: nodes, tests and operand bytes in storage that evaluation reads without reference
/// counting (the ``Condition`` tree it comes from holds arrays in enums, each read of which retains).
final class ConditionProgram: @unchecked Sendable {
    // Safe to share: everything is written in `init` and only read afterwards.

    enum NodeKind: UInt8 { case test, all, any, not }
    enum TestKind: UInt8 { case equals, notEquals, oneOf, prefix, suffix, contains, matches, exists, greater, less }

    struct Node {
        var kind: NodeKind
        var slot = 0
        var test = 0
        /// Children, in ``children``.
        var first = 0
        var count = 0
    }

    struct Test {
        var kind: TestKind
        /// Operands, in ``operands`` (one, or the list of `in`).
        var first = 0
        var count = 0
        var bound = 0.0
        var pattern = 0
        var wanted = false
    }

    struct FlatOperand {
        /// The text, in ``bytes``.
        var start: Int
        var count: Int
        var number: Double
        var isNumber: Bool
    }

    /// The node of each top-level condition, in order.
    let roots: [Int]
    let nodes: UnsafeMutablePointer<Node>
    let children: UnsafeMutablePointer<Int>
    let tests: UnsafeMutablePointer<Test>
    let operands: UnsafeMutablePointer<FlatOperand>
    let bytes: UnsafeMutablePointer<UInt8>
    private let sizes: (nodes: Int, children: Int, tests: Int, operands: Int, bytes: Int)

    init(_ conditions: [Condition]) {
        var nodes: [Node] = []
        var children: [Int] = []
        var tests: [Test] = []
        var operands: [FlatOperand] = []
        var bytes: [UInt8] = []
        func operand(_ value: Operand) -> FlatOperand {
            let start = bytes.count
            bytes.append(contentsOf: value.text)
            return FlatOperand(
                start: start, count: value.text.count, number: value.number ?? 0, isNumber: value.number != nil)
        }
        func text(_ value: [UInt8]) -> Test {
            let start = bytes.count
            bytes.append(contentsOf: value)
            operands.append(FlatOperand(start: start, count: value.count, number: 0, isNumber: false))
            return Test(kind: .prefix, first: operands.count - 1, count: 1)
        }
        func add(_ condition: Condition) -> Int {
            switch condition {
            case .test(let slot, let fieldTest):
                var test: Test
                switch fieldTest {
                case .equals(let value), .notEquals(let value):
                    operands.append(operand(value))
                    test = Test(kind: .equals, first: operands.count - 1, count: 1)
                    if case .notEquals = fieldTest { test.kind = .notEquals }
                case .oneOf(let values):
                    test = Test(kind: .oneOf, first: operands.count, count: values.count)
                    for value in values { operands.append(operand(value)) }
                case .prefix(let value): test = text(value)
                case .suffix(let value):
                    test = text(value)
                    test.kind = .suffix
                case .contains(let value):
                    test = text(value)
                    test.kind = .contains
                case .matches(let pattern): test = Test(kind: .matches, pattern: pattern)
                case .exists(let wanted): test = Test(kind: .exists, wanted: wanted)
                case .greaterThan(let bound): test = Test(kind: .greater, bound: bound)
                case .lessThan(let bound): test = Test(kind: .less, bound: bound)
                }
                tests.append(test)
                nodes.append(Node(kind: .test, slot: slot, test: tests.count - 1))
                return nodes.count - 1
            case .all(let parts), .any(let parts):
                let inner = parts.map(add)
                nodes.append(Node(kind: .all, first: children.count, count: inner.count))
                if case .any = condition { nodes[nodes.count - 1].kind = .any }
                children.append(contentsOf: inner)
                return nodes.count - 1
            case .not(let part):
                let inner = add(part)
                nodes.append(Node(kind: .not, first: children.count, count: 1))
                children.append(inner)
                return nodes.count - 1
            }
        }
        roots = conditions.map(add)
        sizes = (nodes.count, children.count, tests.count, operands.count, bytes.count)
        func copy<T>(_ values: [T]) -> UnsafeMutablePointer<T> {
            let pointer = UnsafeMutablePointer<T>.allocate(capacity: max(1, values.count))
            for (index, value) in values.enumerated() { (pointer + index).initialize(to: value) }
            return pointer
        }
        self.nodes = copy(nodes)
        self.children = copy(children)
        self.tests = copy(tests)
        self.operands = copy(operands)
        self.bytes = copy(bytes)
    }

    deinit {
        nodes.deinitialize(count: sizes.nodes)
        nodes.deallocate()
        children.deallocate()
        tests.deinitialize(count: sizes.tests)
        tests.deallocate()
        operands.deinitialize(count: sizes.operands)
        operands.deallocate()
        bytes.deallocate()
    }
}

/// Evaluates conditions against one entry's fields; one per batch and thread (it holds the regex match data and a
/// scratch buffer for decoding escaped strings).
struct ConditionEvaluator {
    let program: ConditionProgram
    var walk: JSONWalk
    let values: UnsafeMutableBufferPointer<FieldValue>
    let matchers: [Pattern.Matcher]
    var scratch: [UInt8] = []

    /// Whether top-level condition `index` holds.
    mutating func holds(_ index: Int) -> Bool { evaluate(node: program.roots[index]) }

    private mutating func evaluate(node index: Int) -> Bool {
        let node = program.nodes[index]
        switch node.kind {
        case .test: return evaluate(program.tests[node.test], values[node.slot])
        case .all:
            for child in node.first..<(node.first + node.count) where !evaluate(node: program.children[child]) {
                return false
            }
            return true
        case .any:
            for child in node.first..<(node.first + node.count) where evaluate(node: program.children[child]) {
                return true
            }
            return false
        case .not: return !evaluate(node: program.children[node.first])
        }
    }

    private mutating func evaluate(_ test: ConditionProgram.Test, _ value: FieldValue) -> Bool {
        switch test.kind {
        case .exists: return (value.kind != .absent) == test.wanted
        case .equals: return equals(value, program.operands[test.first])
        case .notEquals: return !equals(value, program.operands[test.first])
        case .oneOf:
            for index in test.first..<(test.first + test.count) where equals(value, program.operands[index]) {
                return true
            }
            return false
        case .greater: return value.kind == .number && walk.number(value) > test.bound
        case .less: return value.kind == .number && walk.number(value) < test.bound
        case .prefix, .suffix, .contains:
            let operand = program.operands[test.first]
            let needle = UnsafeBufferPointer(start: program.bytes + operand.start, count: operand.count)
            return withText(value) { text in
                switch test.kind {
                case .prefix: return text.count >= needle.count && same(text.prefix(needle.count), needle)
                case .suffix: return text.count >= needle.count && same(text.suffix(needle.count), needle)
                default: return contains(text, needle)
                }
            }
        case .matches:
            let matcher = matchers[test.pattern]
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

    private mutating func equals(_ value: FieldValue, _ operand: ConditionProgram.FlatOperand) -> Bool {
        let text = UnsafeBufferPointer(start: program.bytes + operand.start, count: operand.count)
        switch value.kind {
        case .string:
            return withText(value) { $0.count == text.count && same($0[...], text) }
        case .number:
            guard operand.isNumber else { return false }
            return walk.number(value) == operand.number
        case .trueValue: return same(text[...], trueText)
        case .falseValue: return same(text[...], falseText)
        case .null: return same(text[...], nullText)
        case .absent, .object, .array: return false
        }
    }
}

private let trueText = Array("true".utf8)
private let falseText = Array("false".utf8)
private let nullText = Array("null".utf8)

private func same(_ a: Slice<UnsafeBufferPointer<UInt8>>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
    guard a.count == b.count else { return false }
    guard let left = a.base.baseAddress, let right = b.baseAddress else { return true }
    return memcmp(left + a.startIndex, right, b.count) == 0
}

private func same(_ a: Slice<UnsafeBufferPointer<UInt8>>, _ b: [UInt8]) -> Bool {
    b.withUnsafeBufferPointer { same(a, $0) }
}

private func contains(_ haystack: UnsafeBufferPointer<UInt8>, _ needle: UnsafeBufferPointer<UInt8>) -> Bool {
    guard let needleBase = needle.baseAddress, !needle.isEmpty else { return true }
    guard haystack.count >= needle.count, let base = haystack.baseAddress else { return false }
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
