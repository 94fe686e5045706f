import Foundation
import Router

/// Checks one test file against its config, runs its cases and compares what came out with what was expected.
struct ConfigTestSession {
    let file: ConfigTestFile
    let graph: ConfigTestGraph

    /// A case's stage indices, resolved against the config (the file's mistakes are positioned diagnostics).
    struct Resolved {
        var test: ConfigTestCase
        var feed: Int
        var failing: [Int: String]
        var targets: [(Expectation, stage: Int, port: Int)]
    }

    /// Every case resolved against the graph, or every problem of the file at once.
    func resolve() throws(ConfigErrors) -> [Resolved] {
        var reader = ConfigTestFileReader(source: file.source)
        let inputs = graph.plan.stages.enumerated().filter { $0.element.kind.role == .input }.map(\.offset)
        let names = graph.targetNames
        func unknown(_ name: String, kind: String, among candidates: [String]) -> String {
            var message = "the config has no \(kind) '\(name)'"
            if let suggestion = EditDistance.suggestion(for: name, among: candidates) {
                message += " (did you mean '\(suggestion)'?)"
            }
            return message
        }
        var resolved: [Resolved] = []
        for test in file.cases {
            let path = "tests '\(test.name)'"
            var feed: Int?
            if let input = test.input {
                let candidates = graph.plan.stages.filter { $0.kind.role != .output }.map(\.name)
                if let found = graph.resolve(target: input.name), found.port == 0,
                    graph.role(of: found.stage) != .output
                {
                    feed = found.stage
                } else {
                    reader.report(
                        unknown(input.name, kind: "input or filter", among: candidates), at: input.location,
                        path: "\(path).input")
                }
            } else if inputs.count == 1 {
                feed = inputs[0]
            } else {
                let names = graph.plan.stages.filter { $0.kind.role == .input }.map(\.name)
                reader.report(
                    "the config has \(inputs.count) inputs (\(names.joined(separator: ", "))): say which with `input:`",
                    at: test.location, path: path)
            }
            var failing: [Int: String] = [:]
            for fail in test.failOutputs {
                if let found = graph.resolve(target: fail.output), found.port == 0,
                    graph.role(of: found.stage) == .output
                {
                    failing[found.stage] = fail.reason
                } else {
                    let outputs = graph.plan.stages.filter { $0.kind.role == .output }.map(\.name)
                    reader.report(
                        unknown(fail.output, kind: "output", among: outputs), at: fail.location,
                        path: "\(path).fail_outputs")
                }
            }
            var targets: [(Expectation, Int, Int)] = []
            for expectation in test.expectations {
                if let found = graph.resolve(target: expectation.target) {
                    targets.append((expectation, found.stage, found.port))
                } else {
                    reader.report(
                        unknown(expectation.target, kind: "stage or port", among: names), at: expectation.location,
                        path: "\(path).expect")
                }
            }
            if let feed {
                resolved.append(Resolved(test: test, feed: feed, failing: failing, targets: targets))
            }
        }
        guard reader.diagnostics.isEmpty else { throw ConfigErrors(reader.sortedDiagnostics) }
        return resolved
    }

    /// Runs a resolved case; returns the report of its mismatches (empty when it passed).
    func run(_ resolved: Resolved) throws -> [String] {
        let outcome = try graph.run(resolved.test, feed: resolved.feed, failing: resolved.failing)
        var problems: [String] = []
        for (expectation, stage, port) in resolved.targets {
            let actual = outcome.captured(stage: stage, port: port, role: graph.role(of: stage))
            let diff = EntryDiff(expected: expectation.entries, actual: actual)
            guard !diff.matches else { continue }
            problems.append(
                "\(expectation.target): expected \(Self.count(expectation.entries.count)), received "
                    + "\(Self.count(actual.count))")
            problems.append(contentsOf: diff.lines.map { "  " + $0 })
        }
        if let acked = resolved.test.acked {
            let heard = outcome.replies.filter(\.positive).map(\.sequence)
            if heard.sorted() != acked.sequences.sorted() {
                problems.append("acked: expected \(acked.sequences.sorted()), heard \(heard.sorted())")
                for reply in outcome.replies where !reply.positive {
                    problems.append("  nack \(reply.sequence): \(reply.reason ?? "")")
                }
            }
        }
        if let nacked = resolved.test.nacked {
            let heard = outcome.replies.filter { !$0.positive }
            let expected = nacked.entries.sorted { $0.sequence < $1.sequence }
            let actual = heard.sorted { $0.sequence < $1.sequence }
            let same =
                expected.count == actual.count
                && zip(expected, actual).allSatisfy { want, got in
                    want.sequence == got.sequence && (want.reason == nil || want.reason == got.reason)
                }
            if !same {
                problems.append("nacked: expected \(expected.map(Self.describe)), heard \(actual.map(Self.describe))")
            }
        }
        return problems
    }

    private static func count(_ count: Int) -> String { count == 1 ? "1 entry" : "\(count) entries" }

    private static func describe(_ nack: ExpectedNack) -> String {
        nack.reason.map { "\(nack.sequence) (\($0))" } ?? "\(nack.sequence)"
    }

    private static func describe(_ reply: CapturedReply) -> String {
        reply.reason.map { "\(reply.sequence) (\($0))" } ?? "\(reply.sequence)"
    }
}

/// The expected and the received entries of one output, aligned: an entry in both is shown once, an expected one
/// that did not come with `-`, a received one nobody expected with `+` (a longest-common-subsequence alignment).
struct EntryDiff {
    let matches: Bool
    let lines: [String]

    init(expected: [ExpectedEntry], actual: [CapturedEntry]) {
        let same = { (i: Int, j: Int) in EntryMatcher.matches(expected[i], actual[j]) }
        matches = expected.count == actual.count && expected.indices.allSatisfy { same($0, $0) }
        guard !matches else {
            lines = []
            return
        }
        let rows = expected.count
        let columns = actual.count
        var table = [[Int]](repeating: [Int](repeating: 0, count: columns + 1), count: rows + 1)
        for i in stride(from: rows - 1, through: 0, by: -1) {
            for j in stride(from: columns - 1, through: 0, by: -1) {
                table[i][j] = same(i, j) ? table[i + 1][j + 1] + 1 : max(table[i + 1][j], table[i][j + 1])
            }
        }
        var lines: [String] = []
        var i = 0
        var j = 0
        while i < rows || j < columns {
            if i < rows, j < columns, same(i, j) {
                lines.append("  " + EntryMatcher.describe(actual[j]))
                i += 1
                j += 1
            } else if i < rows, j == columns || table[i + 1][j] >= table[i][j + 1] {
                lines.append("- " + EntryMatcher.describe(expected[i]))
                i += 1
            } else {
                lines.append("+ " + EntryMatcher.describe(actual[j]))
                j += 1
            }
        }
        self.lines = lines
    }
}

/// Whether a received entry is what a test expected, and how both read in a diff.
enum EntryMatcher {
    static func matches(_ expected: ExpectedEntry, _ actual: CapturedEntry) -> Bool {
        if let reason = expected.reason, reason != actual.reason { return false }
        if let detail = expected.detail, detail != actual.detail { return false }
        if let bytes = expected.bytes { return bytes == actual.bytes }
        guard !expected.fields.isEmpty || !expected.absent.isEmpty else { return true }
        guard let object = try? JSONSerialization.jsonObject(with: Data(actual.bytes)) as? [String: Any] else {
            return false
        }
        for (path, value) in expected.fields {
            guard let found = lookup(path, in: object), same(value, found) else { return false }
        }
        return expected.absent.allSatisfy { lookup($0, in: object) == nil }
    }

    /// `trace.id`: a field of a field; a key that has a dot itself is found whole first.
    static func lookup(_ path: String, in object: [String: Any]) -> Any? {
        if let value = object[path] { return value }
        guard let dot = path.firstIndex(of: "."), let inner = object[String(path[..<dot])] as? [String: Any] else {
            return nil
        }
        return lookup(String(path[path.index(after: dot)...]), in: inner)
    }

    /// A YAML value against a JSON value: strings as text, numbers by value, `true`/`false`/`null`, mappings as
    /// subsets, lists item by item.
    static func same(_ expected: ConfigNode, _ actual: Any) -> Bool {
        switch expected.kind {
        case .null:
            return actual is NSNull
        case .scalar(let text):
            if let string = actual as? String { return string == text }
            if let number = actual as? NSNumber {
                if String(cString: number.objCType) == "c" { return text == (number.boolValue ? "true" : "false") }
                return Double(text) == number.doubleValue
            }
            return actual is NSNull && !expected.isQuoted && text == "null"
        case .sequence(let items):
            guard let array = actual as? [Any], array.count == items.count else { return false }
            return zip(items, array).allSatisfy { same($0, $1) }
        case .mapping(let entries):
            guard let object = actual as? [String: Any] else { return false }
            return entries.allSatisfy { entry in object[entry.key].map { same(entry.value, $0) } ?? false }
        }
    }

    static func describe(_ actual: CapturedEntry) -> String {
        var text = escaped(actual.bytes)
        if let reason = actual.reason {
            text += "   (reason: \(reason)" + (actual.detail.map { ", detail: \($0)" } ?? "") + ")"
        }
        return text
    }

    static func describe(_ expected: ExpectedEntry) -> String {
        var parts: [String] = []
        if let bytes = expected.bytes {
            parts.append(escaped(bytes))
        } else {
            if !expected.fields.isEmpty {
                parts.append(
                    "fields {" + expected.fields.map { "\($0.path): \(render($0.value))" }.joined(separator: ", ") + "}"
                )
            }
            if !expected.absent.isEmpty { parts.append("absent [" + expected.absent.joined(separator: ", ") + "]") }
            if parts.isEmpty { parts.append("any entry") }
        }
        var text = parts.joined(separator: " ")
        if expected.reason != nil || expected.detail != nil {
            let reason = expected.reason.map { "reason: \($0)" }
            let detail = expected.detail.map { "detail: \($0)" }
            text += "   (" + [reason, detail].compactMap { $0 }.joined(separator: ", ") + ")"
        }
        return text + "   (\(expected.location))"
    }

    private static func render(_ node: ConfigNode) -> String {
        switch node.kind {
        case .null: return "null"
        case .scalar(let text): return text
        case .sequence(let items): return "[" + items.map(render).joined(separator: ", ") + "]"
        case .mapping(let entries):
            return "{" + entries.map { "\($0.key): \(render($0.value))" }.joined(separator: ", ") + "}"
        }
    }

    /// The bytes as text, with what is not printable UTF-8 written `\xNN`.
    static func escaped(_ bytes: [UInt8]) -> String {
        var text = ""
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte >= 0x20 && byte < 0x7F {
                text.unicodeScalars.append(Unicode.Scalar(byte))
                index += 1
                continue
            }
            if byte >= 0x80 {
                let width = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 0
                if width > 0, index + width <= bytes.count,
                    let decoded = String(validating: bytes[index..<(index + width)], as: UTF8.self)
                {
                    text += decoded
                    index += width
                    continue
                }
            }
            text += "\\x" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16)
            index += 1
        }
        return text
    }
}
