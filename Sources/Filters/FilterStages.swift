public import RouterCore

/// The filter stage kinds routerd ships, for the registry's one explicit list.
public enum FilterStages {
    /// Every built-in filter kind.
    public static let builtin: [any Stage.Type] = [
        ValidateJSON.self, MatchLevel.self, Ack.self, Verify.self, Route.self, Modify.self, Sample.self, Throttle.self,
    ]
}
