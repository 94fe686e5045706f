/// The type of an option's value, which decides how its YAML text is checked and converted.
public indirect enum OptionType: Sendable, Equatable {
    /// Any text.
    case string
    /// `true` or `false` (also `yes`/`no`, `on`/`off`), case-insensitive.
    case bool
    /// A whole number within `range`.
    case integer(ClosedRange<Int>)
    /// A byte count with an optional unit (`4MiB`, `100MB`, `65536`) within `range`.
    case size(ClosedRange<Int>)
    /// A duration with a unit (`5s`, `250ms`, `1m`) within `range`.
    case duration(ClosedRange<Duration>)
    /// One of the listed words, compared case-sensitively.
    case oneOf([String])
    /// A YAML sequence whose items all have the element type.
    case list(OptionType)
    /// A YAML mapping from names (any text, each once) to values that all have the element type
    /// (`{client_id: sender.id, text: message}`).
    case mapping(OptionType)
    /// Any YAML value, kept as an ``OptionTree`` with its positions, whose shape (described by the text, e.g.
    /// `mapping of port name to condition`) the stage's ``StageDeclaration/validate`` checks.
    case structure(String)

    /// The type's name as shown in docs and errors (`size`, `list of string`, `one of: block, drop_newest`).
    public var displayName: String {
        switch self {
        case .string: "string"
        case .bool: "bool"
        case .integer: "integer"
        case .size: "size"
        case .duration: "duration"
        case .oneOf(let values): "one of: " + values.joined(separator: ", ")
        case .list(let element): "list of \(element.displayName)"
        case .mapping(let element): "mapping of name to \(element.displayName)"
        case .structure(let shape): shape
        }
    }

    /// The short name used in JSON schemas (`string`, `integer`, `size`, `duration`, `enum`, `list`, `mapping`).
    public var kindName: String {
        switch self {
        case .string: "string"
        case .bool: "bool"
        case .integer: "integer"
        case .size: "size"
        case .duration: "duration"
        case .oneOf: "enum"
        case .list: "list"
        case .mapping: "mapping"
        case .structure: "structure"
        }
    }
}

/// A checked, converted option value.
public indirect enum OptionValue: Sendable, Equatable, CustomStringConvertible {
    /// Text.
    case string(String)
    /// A boolean.
    case bool(Bool)
    /// A whole number (also used for enum words' positions: never; enums are strings).
    case integer(Int)
    /// Bytes.
    case size(Int)
    /// A duration.
    case duration(Duration)
    /// A list.
    case list([OptionValue])
    /// A mapping of names to values.
    case mapping([String: OptionValue])
    /// A structured value with its positions.
    case tree(OptionTree)

    /// The value as it would be written in YAML (`4MiB`, `5s`, `[ERROR]`).
    public var description: String {
        switch self {
        case .string(let text): text
        case .bool(let value): value ? "true" : "false"
        case .integer(let value): String(value)
        case .size(let bytes): Units.formatSize(bytes)
        case .duration(let duration): Units.formatDuration(duration)
        case .list(let items): "[" + items.map(\.description).joined(separator: ", ") + "]"
        case .mapping(let entries):
            "{" + entries.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "}"
        case .tree(let tree): tree.yamlText
        }
    }
}

/// Whether an option must be given, has a default, or may be left out.
public enum OptionRequirement: Sendable, Equatable {
    /// The config must set it.
    case required
    /// Used when the config does not set it.
    case defaultValue(OptionValue)
    /// May be left out; the stage then behaves as its description says.
    case optional
}

/// One option of a stage kind: its name, type, requirement and description.
///
/// From this one declaration come the YAML check (unknown key with a suggestion, wrong type, out of range, not an
/// allowed value, missing), the default, `routerd stages` and docs/stages.md.
public struct OptionDeclaration: Sendable, Equatable {
    /// snake_case name, with the unit in the name when the type carries none (`_bytes`, `_count`).
    public var name: String
    /// The value's type.
    public var type: OptionType
    /// Required, defaulted or optional.
    public var requirement: OptionRequirement
    /// What it does and what misuse costs, in a sentence or two.
    public var description: String

    /// Declares an option.
    public init(_ name: String, _ type: OptionType, _ requirement: OptionRequirement, _ description: String) {
        self.name = name
        self.type = type
        self.requirement = requirement
        self.description = description
    }
}

/// A named output port besides a stage's default one (`invalid`, `unmatched`, `rejected`).
public struct PortDeclaration: Sendable, Equatable {
    /// snake_case port name, used in configs as `stage.port`.
    public var name: String
    /// Which events leave through it.
    public var description: String
    /// For a port the options name (``StageDeclaration/optionPorts``): where the config names it.
    public var location: SourceLocation?

    /// Declares a port.
    public init(_ name: String, _ description: String, location: SourceLocation? = nil) {
        self.name = name
        self.description = description
        self.location = location
    }
}

/// A counter a stage emits besides the standard ones (`events_in`, `events_out`, `events_dropped`).
public struct CounterDeclaration: Sendable, Equatable {
    /// snake_case name (Prometheus adds `routerd_` and `_total`).
    public var name: String
    /// The label that splits it, if any (`reason`).
    public var label: String?
    /// The label's values, known in advance so that every series exists from the start (at zero).
    public var labelValues: [String]
    /// What it counts.
    public var description: String

    /// Declares a counter, optionally split by one label with known values.
    public init(_ name: String, label: String? = nil, values: [String] = [], _ description: String) {
        self.name = name
        self.label = label
        self.labelValues = values
        self.description = description
    }
}

extension CounterDeclaration {
    /// The counters every stage of a role has; `hasPorts`: an output with ports besides its default one also
    /// counts what it sends to ports nothing reads.
    public static func standard(for role: StageRole, hasPorts: Bool = false) -> [CounterDeclaration] {
        var counters = [
            CounterDeclaration("events_in", "Events that entered the stage."),
            CounterDeclaration(
                "events_out", label: "port",
                "Events that left, by port (for outputs: `default` counts those written, other ports those handed on)."),
            CounterDeclaration("events_dropped", label: "reason", "Events lost, by reason."),
        ]
        if role != .output || hasPorts {
            counters.append(CounterDeclaration("events_discarded", "Events sent to a port nothing consumes."))
        }
        return counters
    }
}
