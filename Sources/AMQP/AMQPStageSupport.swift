public import Router

/// The options both `amqp` stages take, declared once so that both document and check them the same way.
public enum AMQPStageOptions {
    /// `url`, required.
    public static let url = OptionDeclaration(
        "url", .string, .required,
        "The broker: `amqp://user:password@host:port/vhost` (`%2f` is `/`; port 5672 and vhost `/` when left out). "
            + "Put the password in the environment: `amqp://routerd:${AMQP_PASSWORD}@127.0.0.1/`. Logs and errors "
            + "show it masked.")
    /// `heartbeat`.
    public static let heartbeat = OptionDeclaration(
        "heartbeat", .duration(.zero...(.seconds(3600))), .defaultValue(.duration(.seconds(30))),
        "AMQP heartbeat interval: a broker that stays silent for two of them counts as lost (and so does routerd "
            + "for the broker). 0 turns heartbeats off.")
    /// `connect_timeout`.
    public static let connectTimeout = OptionDeclaration(
        "connect_timeout", .duration(.milliseconds(100)...(.seconds(300))), .defaultValue(.duration(.seconds(5))),
        "Longest a connect, the login or a declare may take before the attempt counts as failed.")
    /// `reconnect_backoff_max`.
    public static let reconnectBackoffMax = OptionDeclaration(
        "reconnect_backoff_max", .duration(.milliseconds(100)...(.seconds(3600))),
        .defaultValue(.duration(.seconds(10))),
        "Longest wait between reconnect attempts: the wait doubles from 100ms up to this, with random jitter so "
            + "that many routers do not reconnect in step.")

    /// The four, in the order the stages list them last.
    public static let connection = [heartbeat, connectTimeout, reconnectBackoffMax]

    /// Parses the `url` option, the error naming the option.
    public static func url(from options: StageOptions) throws -> AMQPURL {
        do {
            return try AMQPURL(parsing: try options.string("url"))
        } catch let error as AMQPError {
            throw StageError("url: \(error.message)")
        }
    }
}

/// Capped exponential backoff with jitter, for reconnects: 100ms, doubling up to a maximum.
public struct Backoff: Sendable {
    private let maxNanos: Int64
    private var currentNanos: Int64 = 100_000_000

    /// Makes a backoff that never waits longer than `max`.
    public init(max: Duration) { maxNanos = max.nanoseconds }

    /// The next wait in nanoseconds: half of the current step plus a random part of the other half (so that many
    /// routers do not retry in step); the step then doubles.
    public mutating func next() -> Int64 {
        let step = min(currentNanos, maxNanos)
        currentNanos = min(currentNanos * 2, maxNanos)
        return step / 2 + Int64.random(in: 0...max(1, step / 2))
    }

    /// Back to the first step, after a success.
    public mutating func reset() { currentNanos = 100_000_000 }
}
