public import RouterCore

/// The options both `amqp` stages take, declared once so that both document and check them the same way.
public enum AMQPStageOptions {
    /// `url`, required.
    public static let url = StageOption<String>.string(
        "url",
        "The broker: `amqp://user:password@host:port/vhost` (`%2f` is `/`; port 5672 and vhost `/` when left out). "
            + "Put the password in the environment: `amqp://routerd:${AMQP_PASSWORD}@127.0.0.1/`. Logs and errors "
            + "show it masked.")
    /// `heartbeat`.
    public static let heartbeat = StageOption<Duration>.duration(
        "heartbeat", .zero...(.seconds(3600)), default: .seconds(30),
        "AMQP heartbeat interval: a broker that stays silent for two of them counts as lost (and so does routerd "
            + "for the broker). 0 turns heartbeats off.")

    /// Parses the `url` option, the error naming the option.
    public static func url(from options: StageOptions) throws -> AMQPURL {
        do {
            return try AMQPURL(parsing: try options.value(url))
        } catch let error as AMQPError {
            throw StageError(.invalidConfiguration, "url: \(error.message)")
        }
    }
}
