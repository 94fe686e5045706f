/// A YAML value kept with its shape and positions, for options whose structure the stage checks itself (`route`'s
/// `routes`, `modify`'s changes): nested conditions, lists of mappings, values whose quoting matters.
///
/// The graph check turns the config's node into a tree without judging it; the stage's declaration then checks it
/// in ``StageDeclaration/validate`` and reports each problem at the position of the node it is about.
public struct OptionTree: Sendable, Equatable {
    /// The shape and content of a node.
    public indirect enum Kind: Sendable, Equatable {
        /// `~`, `null` or an empty value.
        case null
        /// A scalar, after `${VAR}` interpolation; `quoted` when it was written in quotes or as a block scalar.
        case scalar(String, quoted: Bool)
        /// A sequence, in document order.
        case sequence([OptionTree])
        /// A mapping, in document order (keys are unique).
        case mapping([OptionTreeEntry])
    }

    /// What the node holds.
    public var kind: Kind
    /// Where the node starts in the config.
    public var location: SourceLocation

    /// Makes a node.
    public init(_ kind: Kind, at location: SourceLocation) {
        self.kind = kind
        self.location = location
    }

    /// The scalar text, or nil when the node is not a scalar.
    public var scalar: String? {
        if case .scalar(let text, _) = kind { return text }
        return nil
    }

    /// The mapping's entries, or nil when the node is not a mapping.
    public var mapping: [OptionTreeEntry]? {
        if case .mapping(let entries) = kind { return entries }
        return nil
    }

    /// The sequence's items, or nil when the node is not a sequence.
    public var sequence: [OptionTree]? {
        if case .sequence(let items) = kind { return items }
        return nil
    }

    /// `a mapping`, `a list`, `'text'` or `nothing`, for messages.
    public var shape: String {
        switch kind {
        case .null: "nothing"
        case .scalar(let text, _): "'\(text)'"
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }
}

/// One `key: value` pair of an ``OptionTree`` mapping.
public struct OptionTreeEntry: Sendable, Equatable {
    /// The key.
    public var key: String
    /// Where the key is written.
    public var keyLocation: SourceLocation
    /// The value.
    public var value: OptionTree

    /// Makes an entry.
    public init(key: String, keyLocation: SourceLocation, value: OptionTree) {
        self.key = key
        self.keyLocation = keyLocation
        self.value = value
    }
}

/// A problem a declaration's ``StageDeclaration/validate`` found in the options, and where it is.
public struct OptionProblemReport: Sendable, Equatable, Error {
    /// What is wrong, in words a user acts on (`route 'auth': 'matches' is not a valid regular expression: ...`).
    public var message: String
    /// Where; nil reports it at the stage's name.
    public var location: SourceLocation?

    /// Makes a report.
    public init(_ message: String, at location: SourceLocation?) {
        self.message = message
        self.location = location
    }
}

extension OptionTree: OptionValueConvertible {
    /// Trees.
    public static func converted(_ value: OptionValue?) -> OptionTree?? {
        guard let value else { return .some(nil) }
        guard case .tree(let tree) = value else { return nil }
        return tree
    }
}

extension StageOption where Value == OptionTree {
    /// A required structured option the stage checks itself (``StageDeclaration/validate``), described by `shape`.
    public static func requiredTree(_ name: String, shape: String, _ description: String) -> StageOption {
        StageOption(OptionDeclaration(name, .structure(shape), .required, description))
    }
}

extension StageOption where Value == OptionTree? {
    /// A structured option the stage checks itself (``StageDeclaration/validate``), described by `shape`
    /// (`mapping of port name to condition`); may be left out.
    public static func tree(_ name: String, shape: String, _ description: String) -> StageOption {
        StageOption(OptionDeclaration(name, .structure(shape), .optional, description))
    }
}

extension OptionTree {
    /// The tree in YAML's flow style (`{billing: {field: app, equals: billing}}`), for `routerd stages` and logs.
    public var yamlText: String {
        switch kind {
        case .null: "~"
        case .scalar(let text, let quoted): quoted || text.isEmpty ? "\"\(text)\"" : text
        case .sequence(let items): "[" + items.map(\.yamlText).joined(separator: ", ") + "]"
        case .mapping(let entries):
            "{" + entries.map { "\($0.key): \($0.value.yamlText)" }.joined(separator: ", ") + "}"
        }
    }
}
