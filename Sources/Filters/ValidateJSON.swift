public import RouterCore

/// `validate_json`: passes entries that are valid UTF-8 JSON objects with the required fields, and extracts the
/// fields later stages route on (level, sequence, host, app) in the same single pass.
///
/// Everything else goes to the `invalid` port with a reason (`not_utf8`, `not_json`, `not_object`,
/// `missing_field`, `wrong_type`, `truncated`), counted by reason. It never traps on any byte string: the scanner
/// is a bounded, non-recursive state machine, checked against Python's `json` on millions of mutated inputs.
public final class ValidateJSON: FilterStage {
    /// The reasons an entry is refused, in the order of the `invalid{reason}` counter.
    public static let reasons = ["not_utf8", "not_json", "not_object", "missing_field", "wrong_type", "truncated"]

    /// The `validate_json` declaration.
    public static let declaration = StageDeclaration(
        type: "validate_json",
        summary: "Passes valid JSON objects with the required fields; the rest go to `invalid` with a reason.",
        options: [
            require
        ],
        ports: [PortDeclaration("invalid", "Entries refused, each with its reason (see the invalid counter).")],
        counters: [CounterDeclaration("invalid", label: "reason", values: reasons, "Entries refused, by reason.")],
        example: StageExample("require: [timestamp, level, message]"),
        check: { options in
            let names = (try? options.value(ValidateJSON.require)) ?? []
            return names.count > 64 ? ["'require' lists \(names.count) fields; at most 64 are supported"] : []
        }
    )

    static let require = StageOption<[String]>(
        OptionDeclaration(
            "require", .list(.string),
            .defaultValue(
                .list(["timestamp", "sequence", "app", "level", "message", "host"].map(OptionValue.string))),
            "Top-level fields every entry must have (at most 64). `sequence` also accepts `seq`, `host` also "
                + "`hostname`. Known fields must have their type: level, host, app, message, timestamp strings; "
                + "sequence an integer. An empty list checks only that the entry is a JSON object."))

    /// Port index of `invalid`.
    public static let invalidPort = 1

    private let required: JSONRequiredKeys
    private let reasonIDs: [Reason]
    private let invalidCounters: [Counter]

    /// Makes the filter.
    public init(context: StageContext) throws {
        let names = try context.options.value(ValidateJSON.require)
        required = JSONRequiredKeys(names, aliases: ["sequence": ["seq"], "host": ["hostname"]])
        reasonIDs = ValidateJSON.reasons.map { Reason($0) }
        invalidCounters = ValidateJSON.reasons.map { context.counters.counter("invalid", label: "reason", value: $0) }
    }

    /// Validates each entry and routes it.
    public func process(_ batch: Batch, into output: inout FilterOutput) {
        var valid: [Event] = []
        var invalid: [Event] = []
        var details = batch.details
        valid.reserveCapacity(batch.count)
        var reasonCounts = [Int](repeating: 0, count: ValidateJSON.reasons.count)
        batch.bytes.withUnsafeBytes { all in
            for var event in batch.events {
                let base = Int(event.start)
                let bytes = UnsafeRawBufferPointer(rebasing: all[base..<base + Int(event.count)])
                if event.flags.contains(.truncated) {
                    event.reason = reasonIDs[5]
                    event.reasonOffset = event.count
                    reasonCounts[5] += 1
                    invalid.append(event)
                    continue
                }
                let result = JSONEntryScanner.scan(bytes, required: required)
                if let problem = result.problem {
                    let index = Int(problem.rawValue)
                    event.reason = reasonIDs[index]
                    event.reasonOffset = result.problemOffset
                    if problem == .missingField, result.problemField >= 0,
                        Int(result.problemField) < required.names.count
                    {
                        event.detail = Int32(details.count)
                        details.append("missing field '\(required.names[Int(result.problemField)])'")
                    } else if problem == .wrongType {
                        event.detail = Int32(details.count)
                        details.append("a known field has the wrong type at byte \(result.problemOffset)")
                    }
                    reasonCounts[index] += 1
                    invalid.append(event)
                    continue
                }
                let fields = result.fields
                event.level = Level(span: fields.level, in: bytes)
                event.sequence = fields.sequence ?? Event.noSequence
                event.host = Span(fields.host, base: base)
                event.app = Span(fields.app, base: base)
                var flags = event.flags
                flags.insert(.fieldsExtracted)
                if fields.host.hasEscapes { flags.insert(.hostEscaped) }
                if fields.app.hasEscapes { flags.insert(.appEscaped) }
                event.flags = flags
                valid.append(event)
            }
        }
        for (index, count) in reasonCounts.enumerated() where count > 0 { invalidCounters[index].add(count) }
        var passed = batch.with(events: valid)
        passed.details = details
        var refused = batch.with(events: invalid)
        refused.details = details
        output.emit(passed, port: 0)
        output.emit(refused, port: ValidateJSON.invalidPort)
    }
}

extension Span {
    /// A batch-relative span from an entry-relative scanner span.
    init(_ span: JSONSpan, base: Int) {
        self = span.isPresent ? Span(start: span.start + Int32(base), count: span.count) : .none
    }
}
