public import RouterCore

/// The PostgreSQL stage kind (through postgres-nio), for the registry's one explicit list.
public enum PostgresStages {
    /// The `postgres` output.
    public static let outputs: [any Stage.Type] = [PostgresOutput.self]
}
