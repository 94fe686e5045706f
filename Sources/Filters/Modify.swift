public import RouterCore
import RouterSupport

/// `modify`: changes fields of each entry in place: `rename`, `remove`, `set`, `redact`, `add_received_at`,
/// `add_sender`, in that order. Everything else in the entry (key order, spacing, escapes of other fields) stays
/// byte for byte as it came.
///
/// An entry that cannot be changed (not a JSON object, a field of the wrong type for the change) leaves unchanged by
/// port `failed`, with the reason. Changed entries keep their sender, sequence, ack tracking and receive time.
public final class Modify: FilterStage {
    /// The `modify` declaration.
    public static let declaration = StageDeclaration(
        type: "modify",
        summary: "Changes fields in place (set, rename, remove, redact, add_received_at, add_sender); others stay as "
            + "they came.",
        options: [rename, remove, set, redact, addReceivedAt, addSender],
        ports: [
            PortDeclaration(
                "failed", "Entries that could not be changed (not a JSON object, a field of the wrong type), unchanged."
            )
        ],
        counters: [
            CounterDeclaration("changed", "Entries that left with at least one change."),
            CounterDeclaration(
                "failed", label: "reason", values: [Modify.notObject, Modify.wrongType],
                "Entries sent to `failed`, by reason."),
        ],
        example: StageExample(
            """
            set: { env: prod, meta.region: eu-1 }
            rename: { hostname: host }
            remove: [token]
            redact: [ { field: message, pattern: "[0-9]{16}", replacement: "[card]" } ]
            add_received_at: received_at
            """),
        validate: { options in ModifyPlan.compile(options).problems }
    )

    static let rename = StageOption<OptionTree?>.tree(
        "rename", shape: "mapping of field path to new name",
        "Renames members in place (`{hostname: host}`; `trace.span: span_id` renames inside `trace`); a member "
            + "already called the new name is replaced. An absent field is left alone.")
    static let remove = StageOption<[String]?>(
        OptionDeclaration(
            "remove", .list(.string), .optional,
            "Field paths to remove (`[token, auth.password]`); absent ones are ignored."))
    static let set = StageOption<OptionTree?>.tree(
        "set", shape: "mapping of field path to value",
        "Sets fields (replacing a value in place, or adding the member at the end of its object, with objects for "
            + "missing parents). An unquoted number, true, false or null is written as that JSON value, anything "
            + "else (and anything quoted) as a string; `${VAR}` is expanded when the config is loaded. A parent that "
            + "is not an object sends the entry to `failed`.")
    static let redact = StageOption<OptionTree?>.tree(
        "redact", shape: "list of {field, pattern, replacement}",
        "Replaces every match of `pattern` (a PCRE2 regular expression) in the string field `field` with "
            + "`replacement` (literal text, default `[redacted]`). A field that is not a string sends the entry to "
            + "`failed`; an absent one is left alone.")
    static let addReceivedAt = StageOption<String?>.optionalString(
        "add_received_at",
        "Field path to set to the time routerd received the entry (ISO 8601 UTC, microseconds).")
    static let addSender = StageOption<String?>.optionalString(
        "add_sender",
        "Field path to set to the datagram's source address (`127.0.0.1:40000`); entries that did not come from a "
            + "socket are left without it.")

    static let notObject = "not_object"
    static let wrongType = "wrong_type"

    /// Port index of `failed`.
    public static let failedPort = 1

    private let plan: ModifyPlan
    private let changedCounter: Counter
    private let failedCounters: [Counter]
    private let failedReasons: [Reason]

    private let stepByStep: Bool

    /// Whether the changes are made in one pass over each entry (no change's path lies within another's).
    var editsInOnePass: Bool { plan.independent && !stepByStep }

    /// Makes the filter.
    public convenience init(context: StageContext) throws {
        try self.init(context: context, stepByStep: false)
    }

    /// With `stepByStep`, every entry is edited one change after the other even when the plan allows one pass
    /// (tests compare the two).
    init(context: StageContext, stepByStep: Bool) throws {
        self.stepByStep = stepByStep
        let plan = ModifyPlan.compile(context.options)
        if let first = plan.problems.first { throw StageError(.invalidConfiguration, first.message) }
        self.plan = plan
        changedCounter = context.counters.counter("changed")
        failedCounters = [Modify.notObject, Modify.wrongType].map {
            context.counters.counter("failed", label: "reason", value: $0)
        }
        failedReasons = [Reason(Modify.notObject), Reason(Modify.wrongType)]
    }

    /// Changes the batch's entries.
    public func process(_ batch: Batch, into output: inout FilterOutput) {
        var failures: [(index: Int, kind: Int, detail: String)] = []
        var changed: [Bool] = []
        changed.reserveCapacity(batch.count)
        var clock = ReceivedAtText()
        if plan.needsReceivedAt { clock.set(batch.receivedAtNanos) }
        var editor = ModifyEditor(plan: plan, receivedAt: clock.json)
        editor.oneByOne = stepByStep
        var datedNanos = batch.receivedAtNanos
        var index = 0
        let rewritten = batch.rewritingByAppending { entry, out in
            defer { index += 1 }
            // Each entry is dated by its own arrival (the kernel's receive time of its datagram).
            if plan.needsReceivedAt {
                let arrival = batch.arrivalNanos(of: batch.events[index])
                if arrival != datedNanos {
                    datedNanos = arrival
                    clock.set(arrival)
                    editor.receivedAt = clock.json
                }
            }
            switch editor.apply(entry, sender: batch.events[index].sender, into: &out) {
            case .unchanged:
                changed.append(false)
                return false
            case .changed:
                changed.append(true)
                return true
            case .failed(let kind, let detail):
                changed.append(false)
                failures.append((index, kind, detail))
                return false
            }
        }
        var passed: [Event] = []
        passed.reserveCapacity(rewritten.count)
        var failed: [Event] = []
        var details = rewritten.details
        var next = 0
        var changedCount = 0
        for (position, var event) in rewritten.events.enumerated() {
            if next < failures.count && failures[next].index == position {
                let failure = failures[next]
                next += 1
                event.reason = failedReasons[failure.kind]
                event.detail = Int32(details.count)
                details.append(failure.detail)
                failedCounters[failure.kind].add()
                failed.append(event)
                continue
            }
            if changed[position] {
                changedCount += 1
                if plan.touchesExtractedFields && event.flags.contains(.fieldsExtracted) {
                    // A validator's reading of level, sequence, host or app may be stale now: let readers rescan.
                    event.flags.remove(.fieldsExtracted)
                    event.level = .unknown
                    event.sequence = Event.noSequence
                }
            }
            passed.append(event)
        }
        changedCounter.add(changedCount)
        var main = rewritten.with(events: passed)
        main.details = details
        output.emit(main, port: 0)
        var side = rewritten.with(events: failed)
        side.details = details
        output.emit(side, port: Modify.failedPort)
    }

}

/// A receive time as a JSON string, `"2026-12-02T00:16:42.123456Z"` (ISO 8601 UTC, microseconds), as
/// `Timestamp.iso8601(nanos:digits: 6)` writes it: the calendar is consulted once per second, the rest is digits.
struct ReceivedAtText {
    private(set) var json: [UInt8] = []
    private var second = Int64.min

    mutating func set(_ nanos: Int64) {
        let seconds = nanos / 1_000_000_000
        let fraction = nanos % 1_000_000_000
        if fraction < 0 || seconds != second {
            json.removeAll(keepingCapacity: true)
            JSONUnescape.appendQuoted(Array(Timestamp.iso8601(nanos: nanos, digits: 6).utf8), to: &json)
            // Times before 1970 and years past 9999 do not fit the fixed layout: those are formatted in full.
            second = fraction >= 0 && json.count == 29 ? seconds : Int64.min
            return
        }
        var micros = Int(fraction / 1_000)
        json.withUnsafeMutableBufferPointer { text in
            // `"YYYY-MM-DDTHH:MM:SS.` is 21 bytes; six digits follow, then `Z"`.
            for position in stride(from: 26, through: 21, by: -1) {
                text[position] = UInt8(truncatingIfNeeded: 0x30 + micros % 10)
                micros /= 10
            }
        }
    }
}

enum Change: Sendable {
    case rename(FieldPath, to: [UInt8])
    case remove(FieldPath)
    case set(FieldPath, json: [UInt8])
    case redact(FieldPath, pattern: Int, replacement: [UInt8])
    case receivedAt(FieldPath)
    case sender(FieldPath)
}

/// The compiled changes of one `modify` stage, in the order they apply.
struct ModifyPlan: Sendable {
    var changes: [Change] = []
    var patterns: [Pattern] = []
    var problems: [OptionProblemReport] = []
    var needsReceivedAt = false
    var touchesExtractedFields = false
    /// Every path the changes name (for a rename, also the new name's), located in one walk of each entry.
    var locator = PathLocator()
    /// The changes, flat (``Op``), with the bytes they write in ``texts`` and ``prefixes``.
    var ops: [Op] = []
    var texts: [UInt8] = []
    var prefixes: [Range<Int>] = []
    /// Whether no change's path is, or lies within, or holds another change's: then each change reads the entry as
    /// it came, and all of them are made in one pass (``ModifyEditor``); otherwise one after the other.
    var independent = false

    static let extractedFields: Set<[UInt8]> = Set(
        ["level", "sequence", "seq", "host", "hostname", "app"].map { Array($0.utf8) })

    static func compile(_ options: StageOptions) -> ModifyPlan {
        var plan = ModifyPlan()
        func path(_ text: String, at location: SourceLocation?, option: String) -> FieldPath? {
            guard let path = FieldPath(text) else {
                plan.problems.append(
                    OptionProblemReport(
                        "option '\(option)': '\(text)' is not a field path (names joined by dots, e.g. trace.id)",
                        at: location))
                return nil
            }
            return path
        }
        if let tree = (try? options.value(Modify.rename)) ?? nil {
            if let entries = tree.mapping {
                for entry in entries {
                    guard let from = path(entry.key, at: entry.keyLocation, option: "rename") else { continue }
                    guard let to = entry.value.scalar, !to.isEmpty, !to.contains(".") else {
                        plan.problems.append(
                            OptionProblemReport(
                                "option 'rename': the new name of '\(entry.key)' must be one member name (no dots), "
                                    + "got \(entry.value.shape)", at: entry.value.location))
                        continue
                    }
                    plan.changes.append(.rename(from, to: Array(to.utf8)))
                }
            } else {
                plan.problems.append(
                    OptionProblemReport(
                        "option 'rename' must be a mapping of field paths to new names, e.g. {hostname: host}, got "
                            + tree.shape, at: tree.location))
            }
        }
        if let names = (try? options.value(Modify.remove)) ?? nil {
            for name in names {
                if let removed = path(name, at: options.locations["remove"], option: "remove") {
                    plan.changes.append(.remove(removed))
                }
            }
        }
        if let tree = (try? options.value(Modify.set)) ?? nil {
            if let entries = tree.mapping {
                for entry in entries {
                    guard let target = path(entry.key, at: entry.keyLocation, option: "set") else { continue }
                    guard let json = ModifyPlan.json(entry.value) else {
                        plan.problems.append(
                            OptionProblemReport(
                                "option 'set': the value of '\(entry.key)' must be a single value, got "
                                    + entry.value.shape, at: entry.value.location))
                        continue
                    }
                    plan.changes.append(.set(target, json: json))
                }
            } else {
                plan.problems.append(
                    OptionProblemReport(
                        "option 'set' must be a mapping of field paths to values, e.g. {env: prod}, got \(tree.shape)",
                        at: tree.location))
            }
        }
        if let tree = (try? options.value(Modify.redact)) ?? nil {
            plan.compileRedactions(tree)
        }
        if let name = (try? options.value(Modify.addReceivedAt)) ?? nil,
            let target = path(name, at: options.locations["add_received_at"], option: "add_received_at")
        {
            plan.changes.append(.receivedAt(target))
            plan.needsReceivedAt = true
        }
        if let name = (try? options.value(Modify.addSender)) ?? nil,
            let target = path(name, at: options.locations["add_sender"], option: "add_sender")
        {
            plan.changes.append(.sender(target))
        }
        if plan.changes.isEmpty && plan.problems.isEmpty {
            plan.problems.append(
                OptionProblemReport(
                    "modify needs at least one change: set, rename, remove, redact, add_received_at or add_sender",
                    at: nil))
        }
        plan.locateChanges()
        plan.touchesExtractedFields = plan.changes.contains { change in
            switch change {
            case .rename(let path, let to):
                extractedFields.contains(path.segments[0]) || (path.segments.count == 1 && extractedFields.contains(to))
            case .remove(let path), .set(let path, _), .redact(let path, _, _), .receivedAt(let path),
                .sender(let path):
                extractedFields.contains(path.segments[0])
            }
        }
        return plan
    }

    /// The path a change names.
    static func path(of change: Change) -> FieldPath {
        switch change {
        case .rename(let path, _), .remove(let path), .set(let path, _), .redact(let path, _, _),
            .receivedAt(let path), .sender(let path):
            path
        }
    }

    /// One change, flat, for the one-pass edit: no reference counting per entry.
    struct Op: Sendable {
        enum Kind: UInt8, Sendable { case rename, remove, set, redact, receivedAt, sender }
        var kind: Kind
        /// The slot of the path, and (for a rename) of the member already called the new name.
        var slot: Int
        var sibling = -1
        /// In ``texts``: a set's JSON value, a rename's quoted new name, a redaction's replacement.
        var text: Range<Int> = 0..<0
        var pattern = 0
        /// A rename to the name the member has.
        var keepsName = false
        /// In ``prefixes``: per depth of the path, the text that adds its members from that depth on.
        var prefixes: Range<Int> = 0..<0
    }

    private mutating func addText(_ bytes: [UInt8]) -> Range<Int> {
        let start = texts.count
        texts.append(contentsOf: bytes)
        return start..<texts.count
    }

    private mutating func locateChanges() {
        var named: [(change: Int, path: FieldPath, adds: Bool)] = []
        for (index, change) in changes.enumerated() {
            let path = Self.path(of: change)
            let slot = locator.slot(for: path)
            var op = Op(kind: .remove, slot: slot)
            switch change {
            case .set(_, let json):
                op.kind = .set
                op.text = addText(json)
            case .receivedAt: op.kind = .receivedAt
            case .sender: op.kind = .sender
            case .rename(_, let newName):
                op.kind = .rename
                let other = FieldPath(segments: Array(path.segments.dropLast()) + [newName])
                op.sibling = locator.slot(for: other)
                op.keepsName = path.segments[path.segments.count - 1] == newName
                var quoted: [UInt8] = []
                JSONUnescape.appendQuoted(newName, to: &quoted)
                op.text = addText(quoted)
                named.append((index, other, false))
            case .remove: op.kind = .remove
            case .redact(_, let pattern, let replacement):
                op.kind = .redact
                op.pattern = pattern
                op.text = addText(replacement)
            }
            switch change {
            case .set, .receivedAt, .sender:
                named.append((index, path, true))
                let first = prefixes.count
                for depth in path.segments.indices {
                    var text: [UInt8] = []
                    JSONSplice.appendMember(path, from: depth, value: [], to: &text)
                    // Without the closing braces, which follow the value.
                    text.removeLast(path.segments.count - 1 - depth)
                    prefixes.append(addText(text))
                }
                op.prefixes = first..<prefixes.count
            default: named.append((index, path, false))
            }
            ops.append(op)
        }
        // Two changes meet when one's path is, or lies within, the other's; or when both may add members under a
        // common parent (each would add the parent when it is missing).
        func meet(_ a: (change: Int, path: FieldPath, adds: Bool), _ b: (change: Int, path: FieldPath, adds: Bool))
            -> Bool
        {
            let count = min(a.path.segments.count, b.path.segments.count)
            if a.path.segments[..<count] == b.path.segments[..<count] { return true }
            return a.adds && b.adds && a.path.segments.count > 1 && b.path.segments.count > 1
                && a.path.segments[0] == b.path.segments[0]
        }
        independent = !named.indices.contains { i in
            named.indices.contains { j in j > i && named[i].change != named[j].change && meet(named[i], named[j]) }
        }
    }

    private mutating func compileRedactions(_ tree: OptionTree) {
        guard let items = tree.sequence else {
            problems.append(
                OptionProblemReport(
                    "option 'redact' must be a list of {field, pattern, replacement}, got \(tree.shape)",
                    at: tree.location))
            return
        }
        for item in items {
            guard let entries = item.mapping else {
                problems.append(
                    OptionProblemReport(
                        "option 'redact': each item must be a mapping {field, pattern, replacement}, got \(item.shape)",
                        at: item.location))
                continue
            }
            var field: FieldPath?
            var pattern: Int?
            var replacement = Array("[redacted]".utf8)
            var complete = true
            for entry in entries {
                switch entry.key {
                case "field":
                    field = entry.value.scalar.flatMap(FieldPath.init)
                    if field == nil {
                        problems.append(
                            OptionProblemReport(
                                "option 'redact': 'field' must be a field path, got \(entry.value.shape)",
                                at: entry.value.location))
                        complete = false
                    }
                case "pattern":
                    guard let text = entry.value.scalar else {
                        problems.append(
                            OptionProblemReport(
                                "option 'redact': 'pattern' must be a regular expression, got \(entry.value.shape)",
                                at: entry.value.location))
                        complete = false
                        continue
                    }
                    do {
                        patterns.append(try Pattern(text))
                        pattern = patterns.count - 1
                    } catch {
                        problems.append(
                            OptionProblemReport(
                                "option 'redact': 'pattern' is not a valid regular expression: \(error)",
                                at: entry.value.location))
                        complete = false
                    }
                case "replacement":
                    if case .null = entry.value.kind {
                        replacement = []
                    } else if let text = entry.value.scalar {
                        replacement = Array(text.utf8)
                    } else {
                        problems.append(
                            OptionProblemReport(
                                "option 'redact': 'replacement' must be text, got \(entry.value.shape)",
                                at: entry.value.location))
                        complete = false
                    }
                default:
                    var message = "option 'redact': unknown key '\(entry.key)'"
                    if let suggestion = Suggestion.closest(to: entry.key, among: ["field", "pattern", "replacement"]) {
                        message += " (did you mean '\(suggestion)'?)"
                    } else {
                        message += "; allowed: field, pattern, replacement"
                    }
                    problems.append(OptionProblemReport(message, at: entry.keyLocation))
                    complete = false
                }
            }
            guard complete else { continue }
            guard let field, let pattern else {
                problems.append(
                    OptionProblemReport(
                        "option 'redact': each item needs 'field' and 'pattern'", at: item.location))
                continue
            }
            changes.append(.redact(field, pattern: pattern, replacement: replacement))
        }
    }

    /// The JSON text a `set` value writes: unquoted numbers, booleans and null as themselves, the rest as strings.
    static func json(_ tree: OptionTree) -> [UInt8]? {
        switch tree.kind {
        case .null: return Array("null".utf8)
        case .scalar(let text, let quoted):
            if !quoted && (text == "true" || text == "false" || text == "null" || Operand.jsonNumber(text) != nil) {
                return Array(text.utf8)
            }
            var out: [UInt8] = []
            JSONUnescape.appendQuoted(Array(text.utf8), to: &out)
            return out
        case .sequence, .mapping: return nil
        }
    }
}

/// What ``ModifyEditor/apply(_:sender:into:)`` did to one entry.
enum EditOutcome {
    case unchanged
    case changed
    /// `kind` 0: not a JSON object; 1: a field of the wrong type.
    case failed(kind: Int, detail: String)
}

/// Applies a plan's changes to entries, one after another, reusing its buffers; one per batch.
struct ModifyEditor {
    let plan: ModifyPlan
    var receivedAt: [UInt8]
    let matchers: [Pattern.Matcher]
    private var first: [UInt8] = []
    private var second: [UInt8] = []
    /// Edits every entry step by step, even when the plan allows one pass (tests compare the two).
    var oneByOne = false
    private var locations: [FieldLocation] = []
    private let scratch: WalkScratch
    private let ops: [ModifyPlan.Op]
    private let texts: [UInt8]
    private let prefixes: [Range<Int>]
    private var splices: [Splice] = []
    private var replacements: [UInt8] = []
    private var decoded: [UInt8] = []
    private var redacted: [UInt8] = []
    private var lastSender = SenderAddress.none
    private var lastSenderJSON: [UInt8] = []

    init(plan: ModifyPlan, receivedAt: [UInt8]) {
        self.plan = plan
        self.receivedAt = receivedAt
        matchers = plan.patterns.map { $0.matcher() }
        scratch = WalkScratch(nodes: plan.locator.nodeCount)
        ops = plan.ops
        texts = plan.texts
        prefixes = plan.prefixes
    }

    mutating func apply(_ entry: UnsafeRawBufferPointer, sender: SenderAddress, into out: inout [UInt8]) -> EditOutcome
    {
        if plan.independent && !oneByOne, let outcome = applyAtOnce(entry, sender: sender, into: &out) {
            return outcome
        }
        return applyInTurn(entry, sender: sender, into: &out)
    }

    /// A splice of the entry: `range` replaced by `text`, a range of ``replacements`` or (when `constant`) of the
    /// plan's ``ModifyPlan/texts``.
    private struct Splice {
        var range: Range<Int>
        var text: Range<Int>
        var constant = false
    }

    /// Every change located in one walk of the entry as it came and made in one copy: the same bytes as making them
    /// one after the other, for plans whose changes are ``ModifyPlan/independent``. Nil for the rare entry where
    /// the splices meet in a way only the step-by-step edit resolves (a member removed next to another, an object
    /// emptied and added to): the caller then edits step by step.
    private mutating func applyAtOnce(
        _ entry: UnsafeRawBufferPointer, sender: SenderAddress, into out: inout [UInt8]
    ) -> EditOutcome? {
        guard let walk = JSONWalk(entry) else { return .failed(kind: 0, detail: Self.notObjectText) }
        plan.locator.locate(walk, into: &locations, scratch: scratch)
        splices.removeAll(keepingCapacity: true)
        replacements.removeAll(keepingCapacity: true)
        var inserts = false
        var empties = false
        for index in ops.indices {
            let op = ops[index]
            let location = locations[op.slot]
            if case .notJSONObject = location { return .failed(kind: 0, detail: Self.notObjectText) }
            switch op.kind {
            case .rename:
                guard case .found(let member) = location, !op.keepsName else { continue }
                if case .found(let existing) = locations[op.sibling] {
                    // The member already called the new name goes (it cannot be its object's only member).
                    splices.append(Splice(range: JSONSplice.removalRange(existing), text: 0..<0))
                }
                splices.append(Splice(range: member.keyStart..<member.keyEnd, text: op.text, constant: true))
            case .remove:
                guard case .found(let member) = location else { continue }
                // Adding to an object whose only member goes is left to the step-by-step edit.
                empties = empties || (member.previousEnd < 0 && member.nextKeyStart == nil)
                splices.append(Splice(range: JSONSplice.removalRange(member), text: 0..<0))
            case .set:
                if let failure = set(index, op, location, .constant(op.text), sender, &inserts) { return failure }
            case .receivedAt:
                if let failure = set(index, op, location, .receivedAt, sender, &inserts) { return failure }
            case .sender:
                guard sender.family != 0 else { continue }
                if let failure = set(index, op, location, .sender, sender, &inserts) { return failure }
            case .redact:
                guard case .found(let member) = location else { continue }
                let value = member.value
                guard value.kind == .string else {
                    let path = ModifyPlan.path(of: plan.changes[index])
                    return .failed(kind: 1, detail: "field '\(path)' is not a string, so it cannot be redacted")
                }
                let start = replacements.count
                guard redact(walk, value, matchers[op.pattern], texts[op.text]) else { continue }
                splices.append(Splice(range: member.valueBegin..<member.valueEnd, text: start..<replacements.count))
            }
        }
        if splices.isEmpty { return .unchanged }
        if empties && inserts { return nil }
        if splices.count > 1 {
            // Stable: splices at the same place keep the order of their changes.
            var sorted = true
            for index in 1..<splices.count where splices[index - 1].range.lowerBound > splices[index].range.lowerBound {
                sorted = false
                break
            }
            if !sorted {
                var ordered = Array(splices.indices)
                ordered.sort { (splices[$0].range.lowerBound, $0) < (splices[$1].range.lowerBound, $1) }
                splices = ordered.map { splices[$0] }
            }
            for index in 1..<splices.count where splices[index - 1].range.upperBound > splices[index].range.lowerBound {
                return nil
            }
        }
        var copied = 0
        for splice in splices {
            JSONSplice.append(entry, copied..<splice.range.lowerBound, to: &out)
            if splice.constant {
                out.append(contentsOf: texts[splice.text])
            } else {
                out.append(contentsOf: replacements[splice.text])
            }
            copied = splice.range.upperBound
        }
        JSONSplice.append(entry, copied..<entry.count, to: &out)
        return .changed
    }

    /// What a set-like change writes.
    private enum SetValue {
        /// A range of the plan's texts.
        case constant(Range<Int>)
        case receivedAt
        case sender
    }

    private mutating func appendValue(_ value: SetValue, _ sender: SenderAddress) {
        switch value {
        case .constant(let range): replacements.append(contentsOf: texts[range])
        case .receivedAt: replacements.append(contentsOf: receivedAt)
        case .sender: appendSender(sender)
        }
    }

    /// The splice that sets op `index`'s path to `value`, or the failure.
    private mutating func set(
        _ index: Int, _ op: ModifyPlan.Op, _ location: FieldLocation, _ value: SetValue, _ sender: SenderAddress,
        _ inserts: inout Bool
    ) -> EditOutcome? {
        switch location {
        case .found(let member):
            if case .constant(let range) = value {
                splices.append(Splice(range: member.valueBegin..<member.valueEnd, text: range, constant: true))
            } else {
                let start = replacements.count
                appendValue(value, sender)
                splices.append(Splice(range: member.valueBegin..<member.valueEnd, text: start..<replacements.count))
            }
        case .missing(let object, let lastValueEnd, let depth):
            inserts = true
            let at = lastValueEnd >= 0 ? lastValueEnd : object + 1
            let start = replacements.count
            // A second member added to an empty object follows the first after a comma.
            if lastValueEnd >= 0 || splices.contains(where: { $0.range == at..<at }) { replacements.append(0x2C) }
            replacements.append(contentsOf: texts[prefixes[op.prefixes.lowerBound + depth]])
            appendValue(value, sender)
            replacements.append(contentsOf: repeatElement(0x7D, count: op.prefixes.count - 1 - depth))
            splices.append(Splice(range: at..<at, text: start..<replacements.count))
        case .notObject(let depth):
            let path = ModifyPlan.path(of: plan.changes[index])
            let parent = path.segments[..<depth].map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".")
            return .failed(kind: 1, detail: "field '\(parent)' is not an object, so '\(path)' cannot be set")
        case .notJSONObject:
            return .failed(kind: 0, detail: Self.notObjectText)
        }
        return nil
    }

    /// Appends the redacted string (quoted) to ``replacements``; false when the pattern does not match.
    private mutating func redact(
        _ walk: JSONWalk, _ value: FieldValue, _ matcher: Pattern.Matcher, _ replacement: ArraySlice<UInt8>
    ) -> Bool {
        redacted.removeAll(keepingCapacity: true)
        let matched: Bool
        if value.hasEscapes {
            decoded.removeAll(keepingCapacity: true)
            JSONUnescape.append(walk.p + value.start, value.end - value.start, to: &decoded)
            matched = decoded.withUnsafeBufferPointer {
                matcher.replaceMatches(in: $0, with: replacement, into: &redacted)
            }
        } else {
            let subject = UnsafeBufferPointer(start: walk.p + value.start, count: value.end - value.start)
            matched = matcher.replaceMatches(in: subject, with: replacement, into: &redacted)
        }
        guard matched else { return false }
        JSONUnescape.appendQuoted(redacted, to: &replacements)
        return true
    }

    /// Appends the sender's address as a JSON string to ``replacements``, formatted once per sender in a row.
    private mutating func appendSender(_ sender: SenderAddress) {
        if sender != lastSender || lastSenderJSON.isEmpty {
            lastSender = sender
            lastSenderJSON.removeAll(keepingCapacity: true)
            JSONUnescape.appendQuoted(Array(sender.description.utf8), to: &lastSenderJSON)
        }
        replacements.append(contentsOf: lastSenderJSON)
    }

    static let notObjectText = "the entry is not a JSON object"

    /// Makes the changes one after the other, each on the result of the one before.
    private mutating func applyInTurn(
        _ entry: UnsafeRawBufferPointer, sender: SenderAddress, into out: inout [UInt8]
    ) -> EditOutcome {
        var current = first
        var next = second
        first = []
        second = []
        defer {
            first = current
            second = next
        }
        var edited = false
        for change in plan.changes {
            next.removeAll(keepingCapacity: true)
            let result: StepResult =
                edited
                ? current.withUnsafeBytes { step(change, $0, sender: sender, into: &next) }
                : step(change, entry, sender: sender, into: &next)
            switch result {
            case .same: continue
            case .edited:
                swap(&current, &next)
                edited = true
            case .failure(let kind, let detail): return .failed(kind: kind, detail: detail)
            }
        }
        guard edited else {
            // Even with nothing to change, an entry that is not a JSON object is refused: the changes cannot hold.
            if !Self.isObject(entry) { return .failed(kind: 0, detail: "the entry is not a JSON object") }
            return .unchanged
        }
        out.append(contentsOf: current)
        return .changed
    }

    static func isObject(_ entry: UnsafeRawBufferPointer) -> Bool {
        guard let walk = JSONWalk(entry) else { return false }
        return walk.topObject() != nil
    }

    private enum StepResult {
        case same, edited
        case failure(Int, String)
    }

    private static let notObject = StepResult.failure(0, "the entry is not a JSON object")

    private func step(
        _ change: Change, _ bytes: UnsafeRawBufferPointer, sender: SenderAddress, into next: inout [UInt8]
    ) -> StepResult {
        guard let walk = JSONWalk(bytes) else { return Self.notObject }
        switch change {
        case .rename(let path, let newName):
            let location = walk.locate(path)
            guard case .found(let found) = location else {
                if case .notJSONObject = location { return Self.notObject }
                return .same
            }
            if path.segments[path.segments.count - 1] == newName { return .same }
            let sibling = FieldPath(segments: Array(path.segments.dropLast()) + [newName])
            if case .found(let existing) = walk.locate(sibling) {
                // Remove the member already called the new name, then rename on the result.
                var removed: [UInt8] = []
                JSONSplice.replace(bytes, JSONSplice.removalRange(existing), with: EmptyCollection(), into: &removed)
                return removed.withUnsafeBytes { raw -> StepResult in
                    guard let again = JSONWalk(raw), case .found(let moved) = again.locate(path) else { return .same }
                    Self.rename(raw, moved, to: newName, into: &next)
                    return .edited
                }
            }
            Self.rename(bytes, found, to: newName, into: &next)
            return .edited
        case .remove(let path):
            switch walk.locate(path) {
            case .found(let found):
                JSONSplice.replace(bytes, JSONSplice.removalRange(found), with: EmptyCollection(), into: &next)
                return .edited
            case .notJSONObject: return Self.notObject
            default: return .same
            }
        case .set(let path, let json):
            return Self.set(path, json, walk, bytes, into: &next)
        case .receivedAt(let path):
            return Self.set(path, receivedAt, walk, bytes, into: &next)
        case .sender(let path):
            guard sender.family != 0 else { return .same }
            var text: [UInt8] = []
            JSONUnescape.appendQuoted(Array(sender.description.utf8), to: &text)
            return Self.set(path, text, walk, bytes, into: &next)
        case .redact(let path, let pattern, let replacement):
            switch walk.locate(path) {
            case .found(let found):
                guard found.value.kind == .string else {
                    return .failure(1, "field '\(path)' is not a string, so it cannot be redacted")
                }
                var decoded: [UInt8] = []
                let value = found.value
                if value.hasEscapes {
                    JSONUnescape.append(walk.p + value.start, value.end - value.start, to: &decoded)
                } else {
                    decoded.append(
                        contentsOf: UnsafeBufferPointer(start: walk.p + value.start, count: value.end - value.start))
                }
                var replaced: [UInt8] = []
                let matched = decoded.withUnsafeBufferPointer {
                    matchers[pattern].replaceMatches(in: $0, with: replacement, into: &replaced)
                }
                guard matched else { return .same }
                var quoted: [UInt8] = []
                JSONUnescape.appendQuoted(replaced, to: &quoted)
                JSONSplice.replace(bytes, found.valueBegin..<found.valueEnd, with: quoted, into: &next)
                return .edited
            case .notJSONObject: return Self.notObject
            default: return .same
            }
        }
    }

    private static func rename(
        _ bytes: UnsafeRawBufferPointer, _ found: FieldLocation.Found, to name: [UInt8], into next: inout [UInt8]
    ) {
        var quoted: [UInt8] = []
        JSONUnescape.appendQuoted(name, to: &quoted)
        JSONSplice.replace(bytes, found.keyStart..<found.keyEnd, with: quoted, into: &next)
    }

    private static func set(
        _ path: FieldPath, _ json: [UInt8], _ walk: JSONWalk, _ bytes: UnsafeRawBufferPointer,
        into next: inout [UInt8]
    ) -> StepResult {
        switch walk.locate(path) {
        case .found(let found):
            JSONSplice.replace(bytes, found.valueBegin..<found.valueEnd, with: json, into: &next)
        case .missing(let object, let lastValueEnd, let depth):
            var member: [UInt8] = []
            JSONSplice.appendMember(path, from: depth, value: json, to: &member)
            if lastValueEnd >= 0 {
                member.insert(0x2C, at: 0)
                JSONSplice.replace(bytes, lastValueEnd..<lastValueEnd, with: member, into: &next)
            } else {
                JSONSplice.replace(bytes, (object + 1)..<(object + 1), with: member, into: &next)
            }
        case .notObject(let depth):
            let parent = path.segments[..<depth].map { String(decoding: $0, as: UTF8.self) }.joined(separator: ".")
            return .failure(1, "field '\(parent)' is not an object, so '\(path)' cannot be set")
        case .notJSONObject:
            return notObject
        }
        return .edited
    }
}
