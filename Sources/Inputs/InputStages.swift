public import RouterCore

/// The input stage kinds this module ships, for the registry's one explicit list.
public enum InputStages {
    /// Every input kind of this module.
    public static let builtin: [any Stage.Type] = [UDPInput.self]
}
