public import RouterCore

/// The dashboard's stage kind (through Hummingbird), for the registry's one explicit list.
public enum HTTPStatsStages {
    /// The `http_stats` output.
    public static let outputs: [any Stage.Type] = [HTTPStatsOutput.self]
}
