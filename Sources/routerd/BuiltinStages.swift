import Filters
import Inputs
import Outputs
import Router
import RouterAMQP
import RouterHTTPStats
import RouterPostgres

/// The one explicit list of stage kinds routerd ships. A library user builds a registry the same way, from the
/// modules they link, and adds their own kinds with `register(_:)`.
enum BuiltinStages {
    static let all: [any Stage.Type] =
        InputStages.builtin + AMQPStages.inputs + FilterStages.builtin + OutputStages.builtin
        + HTTPStatsStages.outputs + AMQPStages.outputs + PostgresStages.outputs

    static func registry() throws -> StageRegistry {
        try StageRegistry(all)
    }
}
