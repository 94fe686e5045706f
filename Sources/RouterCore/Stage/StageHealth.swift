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
    private let noteText = Mutex<String?>(nil)

    /// Makes a healthy stage's health.
    public init() {}

    /// The current state.
    public var current: HealthState { state.withLock { $0 } }

    /// Sets the state.
    public func set(_ newState: HealthState) { state.withLock { $0 = newState } }

    /// What `/health` says of the stage whether it is ok or not (the broker an `amqp` stage uses and its
    /// failovers), or nil. Keep it one short line: every `/health` answer carries it.
    public var note: String? { noteText.withLock { $0 } }

    /// Sets (or, with nil, clears) the note.
    public func setNote(_ text: String?) { noteText.withLock { $0 = text } }
}
