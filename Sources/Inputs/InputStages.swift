public import Router

/// The input stage kinds routerd ships, for the registry's one explicit list.
public enum InputStages {
    /// Every built-in input kind.
    public static let builtin: [any Stage.Type] = [UDPInput.self, AMQPInput.self]
}
