public import Router

/// The output stage kinds routerd ships, for the registry's one explicit list.
public enum OutputStages {
    /// Every built-in output kind.
    public static let builtin: [any Stage.Type] = [
        RotatingFileOutput.self, FileOutput.self, StdoutOutput.self, HTTPStatsOutput.self, AMQPOutput.self,
        PostgresOutput.self,
    ]
}
