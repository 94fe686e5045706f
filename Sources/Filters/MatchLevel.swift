public import RouterCore

/// `match_level`: entries whose level is listed in `levels` (or at least `min_level`) go to the default port, the
/// rest to `unmatched`.
///
/// Reads the level that `validate_json` extracted; an entry that has not been through a validator is scanned here
/// for its level (a cost `validate_json` upstream avoids).
public final class MatchLevel: FilterStage {
    /// The `match_level` declaration.
    public static let declaration = StageDeclaration(
        type: "match_level",
        summary: "Routes entries by level: listed (or at least min_level) to the default port, others to unmatched.",
        options: [
            levels,
            minLevel,
        ],
        ports: [PortDeclaration("unmatched", "Entries whose level does not match (including entries with no level).")],
        example: StageExample("levels: [ERROR, CRITICAL]"),
        check: { options in
            let levels = (try? options.value(MatchLevel.levels)) ?? nil
            let minLevel = (try? options.value(MatchLevel.minLevel)) ?? nil
            switch (levels != nil, minLevel != nil) {
            case (true, true): return ["give either 'levels' or 'min_level', not both"]
            case (false, false): return ["missing 'levels' or 'min_level': say which levels match"]
            default: return []
            }
        }
    )

    static let levels = StageOption<[String]?>(
        OptionDeclaration(
            "levels", .list(.oneOf(Level.acceptedNames)), .optional,
            "Levels that match, case-insensitive: DEBUG, INFO, WARNING (WARN), ERROR (ERR), CRITICAL (FATAL, "
                + "CRIT). Give this or min_level."))

    static let minLevel = StageOption<String?>(
        OptionDeclaration(
            "min_level", .oneOf(Level.acceptedNames), .optional,
            "The least severe level that matches; more severe ones match too. Give this or levels."))

    /// Port index of `unmatched`.
    public static let unmatchedPort = 1

    private let matches: [Bool]

    /// Makes the filter.
    public init(context: StageContext) throws {
        var matches = [Bool](repeating: false, count: Int(Level.critical.rawValue) + 1)
        if let names = try context.options.value(MatchLevel.levels) {
            for name in names {
                guard let level = Level(name: name) else { throw StageError("'\(name)' is not a level") }
                matches[Int(level.rawValue)] = true
            }
        } else if let name = try context.options.value(MatchLevel.minLevel) {
            guard let minimum = Level(name: name) else { throw StageError("'\(name)' is not a level") }
            for level in Level.allCases where level != .unknown && level >= minimum {
                matches[Int(level.rawValue)] = true
            }
        }
        self.matches = matches
    }

    /// Splits the batch by level.
    public func process(_ batch: Batch, into output: inout FilterOutput) {
        let matches = self.matches
        output.emit(
            partitioned: batch.partition(portCount: 2) { event in
                let level = event.flags.contains(.fieldsExtracted) ? event.level : batch.scanLevel(of: event)
                return matches[Int(level.rawValue)] ? 0 : MatchLevel.unmatchedPort
            })
    }
}

extension Batch {
    /// The level of an entry that no validator has read: scans it (valid JSON objects only).
    func scanLevel(of event: Event) -> Level {
        withBytes(of: event) { bytes in
            let result = JSONEntryScanner.scan(bytes, required: JSONRequiredKeys([]))
            guard result.problem == nil, result.fields.level.isPresent else { return .unknown }
            return Level(span: result.fields.level, in: bytes)
        }
    }
}

extension Level {
    /// The level named by a (possibly escaped) JSON string span.
    init(span: JSONSpan, in bytes: UnsafeRawBufferPointer) {
        guard span.isPresent else {
            self = .unknown
            return
        }
        if span.hasEscapes {
            self = Level(name: JSONEntryScanner.decode(span, in: bytes)) ?? .unknown
        } else {
            self = Level(bytes: UnsafeRawBufferPointer(rebasing: bytes[Int(span.start)..<Int(span.start + span.count)]))
        }
    }
}
