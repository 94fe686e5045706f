import Router
import RouterSupport
import Testing

@testable import Filters

/// `modify` makes the changes of a plan whose paths do not nest in one pass over each entry; these tests hold it to
/// the bytes the step-by-step edit writes (which the differential test holds to the Python reference), over
/// generated plans and entries shaped to meet every splice case: first, middle, last and only members, empty
/// objects, keys given twice, escaped keys and values, odd spacing, nested parents that are missing or no objects.
@Suite("modify in one pass")
struct ModifyOnePassTests {
    /// A small deterministic generator (SplitMix64), so that a failure can be replayed.
    struct Draw {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ count: Int) -> Int { Int(next() % UInt64(count)) }
        mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
        mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
    }

    static let keys = ["app", "host", "token", "msg", "meta", "trace", "a\\u0062", "n"]
    static let paths = [
        "app", "host", "token", "msg", "meta.region", "meta.zone.name", "trace.id", "new.deep.field", "new.x", "n",
        "ab",
    ]

    static func value(_ draw: inout Draw, depth: Int) -> String {
        switch draw.below(depth < 2 ? 8 : 6) {
        case 0: return draw.pick(["\"x\"", "\"\"", "\"card 4111111111111111 ok\"", "\"a\\\"b\\\\c\\u00e9\""])
        case 1: return draw.pick(["0", "-1.5e3", "12"])
        case 2: return draw.pick(["true", "false", "null"])
        case 3: return "\"node-7 token=abc\""
        case 4: return "[1, \"two\" ,{}]"
        case 5: return "\"eu-1\""
        default: return object(&draw, depth: depth + 1)
        }
    }

    static func object(_ draw: inout Draw, depth: Int) -> String {
        let space = draw.pick(["", " ", "\n  "])
        let count = draw.below(depth == 0 ? 6 : 3)
        if count == 0 { return draw.pick(["{}", "{ }"]) }
        var members: [String] = []
        for _ in 0..<count {
            let key = depth == 0 ? draw.pick(keys) : draw.pick(["region", "id", "deep", "zone"])
            members.append("\"\(key)\"" + draw.pick([":", " : ", ": "]) + value(&draw, depth: depth))
        }
        return "{" + space + members.joined(separator: draw.pick([",", ", ", " ,\n "])) + space + "}"
    }

    /// One change as a YAML line of a modify stage.
    static func change(_ draw: inout Draw, path: String) -> String {
        switch draw.below(6) {
        case 0:
            let name = draw.pick(["renamed", "host", "app", "n", "token"])
            return "rename: {\(path): \(name)}"
        case 1: return "remove: [\(path)]"
        case 2: return "set: {\(path): \(draw.pick(["prod", "3", "null", "\"quoted 7\"", "true"]))}"
        case 3:
            let pattern = draw.pick(["[0-9]{4}", "(?i)token=\\\\w+", "node", "x*", "é"])
            return "redact: [{field: \(path), pattern: \"\(pattern)\", replacement: \"#\"}]"
        case 4: return "add_sender: \(path)"
        default: return "add_received_at: \(path)"
        }
    }

    @Test func onePass_writesTheBytesTheStepByStepEditWrites() throws {
        var draw = Draw(state: 16)
        let registry = try StageRegistry(StageHarness.builtin)
        var onePassPlans = 0
        var entriesCompared = 0
        var changedOnePass = 0
        for planIndex in 0..<400 {
            // Two to four changes on distinct paths, each option at most once (YAML keys are unique).
            var lines: [String: String] = [:]
            var used: [String] = []
            for _ in 0..<(2 + draw.below(3)) {
                let path = draw.pick(Self.paths)
                guard !used.contains(path) else { continue }
                let line = Self.change(&draw, path: path)
                let option = String(line.prefix { $0 != ":" })
                guard lines[option] == nil else { continue }
                used.append(path)
                lines[option] = line
            }
            let yaml = """
                inputs:
                  in: {type: udp, port: 0}
                filters:
                  m:
                    type: modify
                    inputs: [in]
                \(lines.keys.sorted().map { "    " + lines[$0]! }.joined(separator: "\n"))
                outputs:
                  out: {type: stdout, inputs: [m, m.failed]}

                """
            let plan = try RouterConfig.parse(
                ConfigSource(path: "plan-\(planIndex).yaml", text: yaml), environment: [:], registry: registry)
            let options = try #require(plan.stage("m")).options.values
            let onePass = try Modify(context: try StageHarness.context(for: Modify.self, name: "m", options: options))
            let stepped = try Modify(
                context: try StageHarness.context(for: Modify.self, name: "m", options: options), stepByStep: true)
            guard onePass.editsInOnePass else { continue }
            onePassPlans += 1
            var batch = Batch(receivedAtNanos: 1_795_000_000_123_456_000)
            for index in 0..<64 {
                let text =
                    draw.chance(3) ? draw.pick(["[1]", "\"s\"", "{\"a\":", "{} x"]) : Self.object(&draw, depth: 0)
                batch.append(
                    Array(text.utf8),
                    sender: draw.chance(80) ? .ipv4(10, 0, 0, UInt8(index), port: 4000) : .none)
            }
            var first = FilterOutput(portCount: 2)
            onePass.process(batch, into: &first)
            var second = FilterOutput(portCount: 2)
            stepped.process(batch, into: &second)
            let (a, b) = (RouteModifyDifferentialTests.texts(first), RouteModifyDifferentialTests.texts(second))
            #expect(a == b, "plan \(planIndex):\n\(yaml)")
            entriesCompared += 64
            changedOnePass += first.ports[0].reduce(0) { $0 + $1.count }
        }
        // The draw must reach the one-pass path often, and change entries there.
        #expect(onePassPlans > 150, "only \(onePassPlans) plans were edited in one pass")
        #expect(changedOnePass > entriesCompared / 2)
    }

    @Test func receivedAt_writesWhatTheTimestampFormatterWrites() {
        var text = ReceivedAtText()
        var nanos: Int64 = 1_795_000_000_999_999_000
        for step: Int64 in [0, 1, 999, 1_000, 7_000_001, 1_000_000_000, 86_399_000_000_000, 3, 1_999_000] {
            nanos += step
            text.set(nanos)
            var expected: [UInt8] = []
            JSONUnescape.appendQuoted(Array(Timestamp.iso8601(nanos: nanos, digits: 6).utf8), to: &expected)
            #expect(String(decoding: text.json, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
        }
    }
}
