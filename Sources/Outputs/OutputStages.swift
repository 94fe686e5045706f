public import RouterCore

/// The output stage kinds this module ships (files and standard output, with no dependency beyond the core), for
/// the registry's one explicit list.
public enum OutputStages {
    /// Every output kind of this module.
    public static let builtin: [any Stage.Type] = [RotatingFileOutput.self, FileOutput.self, StdoutOutput.self]
}
