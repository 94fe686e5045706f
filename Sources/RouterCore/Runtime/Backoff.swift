import RouterSupport

/// Capped exponential backoff with jitter: 100ms, doubling up to a maximum. The one retry policy of routerd: the
/// output driver uses it between attempts, the `amqp` input between reconnects.
public struct Backoff: Sendable {
    /// The first step.
    public static let initial: Duration = .milliseconds(100)

    private let maxNanos: Int64
    private var currentNanos: Int64 = Backoff.initial.nanoseconds

    /// Makes a backoff that never waits longer than `max` (and never less than the first step's half).
    public init(max: Duration) { maxNanos = Swift.max(Backoff.initial.nanoseconds, max.nanoseconds) }

    /// The next wait in nanoseconds: half of the current step plus a random part of the other half (so that many
    /// routers do not retry in step); the step then doubles, up to the maximum.
    public mutating func next() -> Int64 {
        let step = min(currentNanos, maxNanos)
        currentNanos = min(currentNanos * 2, maxNanos)
        return step / 2 + Int64.random(in: 0...Swift.max(1, step / 2))
    }

    /// Back to the first step, after a success.
    public mutating func reset() { currentNanos = Backoff.initial.nanoseconds }
}
