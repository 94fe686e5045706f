import Filters
import Inputs
import Outputs
import Router

/// The one explicit list of stage kinds routerd ships. A library user builds a registry the same way and adds
/// their own kinds with `register(_:)`.
enum BuiltinStages {
    static let all: [any Stage.Type] = InputStages.builtin + FilterStages.builtin + OutputStages.builtin

    static func registry() throws -> StageRegistry {
        try StageRegistry(all)
    }
}
