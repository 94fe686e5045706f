internal import Synchronization

/// Whether a stage is doing its job, as shown in `/health`.
public enum HealthState: Sendable, Equatable {
    /// Working.
    case ok
    /// Working poorly or not at all (an output that cannot write, a broker that is away); the reason says why.
    case degraded(String)
}

/// A stage's current health, set by the stage and read by `/health` and `/stats`.
public final class StageHealth: Sendable {
    private let state = Mutex<HealthState>(.ok)

    /// Makes a healthy stage's health.
    public init() {}

    /// The current state.
    public var current: HealthState { state.withLock { $0 } }

    /// Sets the state.
    public func set(_ newState: HealthState) { state.withLock { $0 = newState } }
}
