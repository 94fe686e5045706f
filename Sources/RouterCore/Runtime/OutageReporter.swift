public import Logging
import RouterSupport

/// The one outage report and retry pacing of routerd's stages: the ``OutputDriver`` keeps one per output, a stage
/// that connects by itself (the `amqp` input) keeps its own.
///
/// While a stage fails, `/health` says `degraded` with the reason; the log gets one line when the outage starts
/// (and again when its reason changes: a different failure is news), and one when it ends, saying how long it
/// lasted. Between attempts it waits a capped exponential backoff with jitter (``Backoff``).
public struct OutageReporter {
    private let logger: Logger
    private let health: StageHealth
    private var backoff: Backoff

    /// The current outage's reason, while there is one.
    public private(set) var reason: String?
    /// When the current outage began (monotonic nanoseconds), while there is one.
    public private(set) var sinceNanos: Int64 = 0
    /// When the latest failure was reported (monotonic nanoseconds).
    public private(set) var lastFailureNanos: Int64 = 0
    /// When the next attempt is due (monotonic nanoseconds).
    public private(set) var retryAtNanos: Int64 = 0

    /// Makes a reporter for the stage of `context`, with waits capped at `backoffMax`.
    public init(context: StageContext, backoffMax: Duration) {
        logger = context.logger
        health = context.health
        backoff = Backoff(max: backoffMax)
    }

    /// Whether an outage is under way.
    public var isFailing: Bool { reason != nil }

    /// Whether the next attempt is due (always, when nothing fails).
    public var mayAttempt: Bool { reason == nil || monotonicNanos() >= retryAtNanos }

    /// Reports a failed attempt: `/health` shows `healthReason`, the log says `message` with `reason` as `error`
    /// when the outage is new or its reason changed, and the next attempt waits for the backoff.
    public mutating func failed(
        _ message: Logger.Message, reason: String, healthReason: String? = nil, metadata: Logger.Metadata = [:]
    ) {
        let now = monotonicNanos()
        health.set(.degraded(healthReason ?? reason))
        if self.reason != reason {
            var lines = metadata
            lines["error"] = "\(reason)"
            logger.error(message, metadata: lines)
        }
        if self.reason == nil { sinceNanos = now }
        self.reason = reason
        lastFailureNanos = now
        retryAtNanos = now + backoff.next()
    }

    /// Ends the outage, if there is one: `/health` is `ok` again and the log says `message` with how long it
    /// lasted. The backoff starts over.
    public mutating func recovered(_ message: Logger.Message, metadata: Logger.Metadata = [:]) {
        backoff.reset()
        guard reason != nil else { return }
        reason = nil
        health.set(.ok)
        var lines = metadata
        lines["outage_ms"] = "\((monotonicNanos() - sinceNanos) / 1_000_000)"
        logger.info(message, metadata: lines)
    }
}
