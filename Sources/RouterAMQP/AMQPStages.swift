public import RouterCore

/// The RabbitMQ stage kinds (through rabbitmq-c), for the registry's one explicit list.
public enum AMQPStages {
    /// The `amqp` input.
    public static let inputs: [any Stage.Type] = [AMQPInput.self]
    /// The `amqp` output.
    public static let outputs: [any Stage.Type] = [AMQPOutput.self]
}
