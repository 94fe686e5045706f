public import RouterCore

/// One node of a parsed config document: a null, a scalar, a sequence or a mapping, with where it was written.
///
/// Nodes are produced by `YAMLLoader`; aliases are already resolved (an aliased node keeps the locations of its
/// anchor definition) and merge keys already applied. Scalars are plain strings: deciding whether `"10"` is a number
/// or `yes` a boolean is the caller's job.
public struct ConfigNode: Sendable {
    /// The shape and content of a node.
    public enum Kind: Sendable {
        /// `~`, `null`, `Null`, `NULL` or an empty plain value. A quoted `"null"` or `""` is a scalar instead.
        case null
        /// A scalar value, after `${VAR}` interpolation for values (keys are never interpolated).
        case scalar(String)
        /// A sequence, in document order.
        case sequence([ConfigNode])
        /// A mapping in document order; duplicate keys were rejected and merge keys (`<<`) applied.
        case mapping([ConfigEntry])
    }

    /// What the node holds.
    public var kind: Kind
    /// Where the node starts in the source.
    public var location: SourceLocation
    /// Whether a scalar was written with `'`, `"` or as a block scalar (`|`, `>`); false for plain scalars.
    public var isQuoted: Bool

    /// Creates a node; `isQuoted` only matters for scalars.
    public init(kind: Kind, location: SourceLocation, isQuoted: Bool = false) {
        self.kind = kind
        self.location = location
        self.isQuoted = isQuoted
    }

    /// The scalar text, or nil when the node is not a scalar (a null is not a scalar).
    public var scalar: String? {
        if case .scalar(let text) = kind {
            return text
        }
        return nil
    }

    /// The mapping entries in document order, or nil when the node is not a mapping.
    public var mapping: [ConfigEntry]? {
        if case .mapping(let entries) = kind {
            return entries
        }
        return nil
    }

    /// The sequence items, or nil when the node is not a sequence.
    public var sequence: [ConfigNode]? {
        if case .sequence(let items) = kind {
            return items
        }
        return nil
    }

    /// Whether the node is `.null`.
    public var isNull: Bool {
        if case .null = kind {
            return true
        }
        return false
    }

    /// The entry for `key` in a mapping, or nil when the key is absent or the node is not a mapping.
    ///
    /// Keys are unique after loading, so at most one entry can match.
    public subscript(key: String) -> ConfigEntry? {
        mapping?.first { $0.key == key }
    }

    /// A short human name for the node's kind ("a mapping", "a list", "a scalar", "null"), for error messages.
    public var kindDescription: String {
        switch kind {
        case .null:
            return "null"
        case .scalar:
            return "a scalar"
        case .sequence:
            return "a list"
        case .mapping:
            return "a mapping"
        }
    }
}

/// One `key: value` pair of a mapping node.
public struct ConfigEntry: Sendable {
    /// The key text; keys are always scalars and never interpolated.
    public var key: String
    /// Where the key is written.
    public var keyLocation: SourceLocation
    /// The value; its `location` is where the value starts (for an empty value, where the loader saw it).
    public var value: ConfigNode

    /// Creates an entry.
    public init(key: String, keyLocation: SourceLocation, value: ConfigNode) {
        self.key = key
        self.keyLocation = keyLocation
        self.value = value
    }
}
