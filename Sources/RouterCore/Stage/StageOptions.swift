/// A stage's checked options with defaults filled in, read through typed accessors.
///
/// The graph check has already made sure every value has its declared type, so an accessor only throws when a
/// stage asks for an option it did not declare, or with a different type: a bug in the stage, reported as a
/// ``StageError`` rather than a crash.
public struct StageOptions: Sendable {
    /// The values by option name.
    public var values: [String: OptionValue]
    /// Where each value was written in the config, for options the config set.
    public var locations: [String: SourceLocation]

    /// Makes options from values (tests and library users building stages by hand).
    public init(_ values: [String: OptionValue] = [:], locations: [String: SourceLocation] = [:]) {
        self.values = values
        self.locations = locations
    }

    /// Whether the option has a value (set in the config or by default).
    public func has(_ name: String) -> Bool { values[name] != nil }

    /// A string or enum option.
    public func string(_ name: String) throws -> String {
        guard case .string(let value) = try value(name) else { throw mismatch(name, "string") }
        return value
    }

    /// A string or enum option that may be absent.
    public func optionalString(_ name: String) throws -> String? {
        guard has(name) else { return nil }
        return try string(name)
    }

    /// A bool option.
    public func bool(_ name: String) throws -> Bool {
        guard case .bool(let value) = try value(name) else { throw mismatch(name, "bool") }
        return value
    }

    /// An integer option.
    public func integer(_ name: String) throws -> Int {
        guard case .integer(let value) = try value(name) else { throw mismatch(name, "integer") }
        return value
    }

    /// A size option, in bytes.
    public func size(_ name: String) throws -> Int {
        guard case .size(let value) = try value(name) else { throw mismatch(name, "size") }
        return value
    }

    /// A duration option.
    public func duration(_ name: String) throws -> Duration {
        guard case .duration(let value) = try value(name) else { throw mismatch(name, "duration") }
        return value
    }

    /// A list of strings (or enum words).
    public func strings(_ name: String) throws -> [String] {
        guard case .list(let items) = try value(name) else { throw mismatch(name, "list") }
        return try items.map { item in
            guard case .string(let text) = item else { throw mismatch(name, "list of string") }
            return text
        }
    }

    /// A mapping of names to strings.
    public func stringMapping(_ name: String) throws -> [String: String] {
        guard case .mapping(let entries) = try value(name) else { throw mismatch(name, "mapping") }
        return try entries.mapValues { item in
            guard case .string(let text) = item else { throw mismatch(name, "mapping of name to string") }
            return text
        }
    }

    /// A mapping of names to strings that may be absent.
    public func optionalStringMapping(_ name: String) throws -> [String: String]? {
        guard has(name) else { return nil }
        return try stringMapping(name)
    }

    /// A list of strings that may be absent.
    public func optionalStrings(_ name: String) throws -> [String]? {
        guard has(name) else { return nil }
        return try strings(name)
    }

    private func value(_ name: String) throws -> OptionValue {
        guard let value = values[name] else { throw StageError("option '\(name)' has no value") }
        return value
    }

    private func mismatch(_ name: String, _ expected: String) -> StageError {
        StageError("option '\(name)' is not a \(expected) (the stage's declaration and its code disagree)")
    }
}
