public import RouterCore

/// One queue argument (`x-queue-type: quorum`, `x-max-length: 100000`) with the type RabbitMQ expects for it.
public struct AMQPQueueArgument: Sendable, Equatable {
    /// A typed value: RabbitMQ refuses `x-max-length` as a string.
    public enum Value: Sendable, Equatable {
        /// A string (`quorum`, `reject-publish`, an exchange name).
        case string(String)
        /// An integer (lengths, bytes, milliseconds, priorities).
        case long(Int64)
        /// A boolean (`x-single-active-consumer`).
        case bool(Bool)
    }

    /// The argument's name.
    public var name: String
    /// Its value.
    public var value: Value

    /// Makes an argument.
    public init(name: String, value: Value) {
        self.name = name
        self.value = value
    }
}

/// `queue_arguments`, declared once for both amqp stages: RabbitMQ's known arguments are typed and their values
/// checked before anything starts; an unknown one is passed as an integer, a boolean or a string, as it reads.
public enum AMQPQueueArguments {
    /// `queue_arguments`.
    public static let option = StageOption<[String: String]?>(
        OptionDeclaration(
            "queue_arguments", .mapping(.string), .optional,
            "Arguments of the queue routerd declares, as RabbitMQ names them: `x-queue-type: quorum` (a queue "
                + "replicated over the cluster's nodes, which survives losing one), `x-max-length`, "
                + "`x-max-length-bytes`, `x-overflow: reject-publish` (a full queue nacks, and the output publishes "
                + "again after a pause) or `drop-head`, `x-dead-letter-exchange`, `x-dead-letter-routing-key`, "
                + "`x-message-ttl` (ms), `x-delivery-limit`, ... Known ones are checked (integers, allowed values) "
                + "before start. A queue that already exists with other arguments is an error naming the argument "
                + "and both values: declare it the same way everywhere (an `amqp` input and output on one queue "
                + "need the same `queue_arguments`)."))

    static let integers: Set<String> = [
        "x-max-length", "x-max-length-bytes", "x-message-ttl", "x-expires", "x-max-priority", "x-delivery-limit",
        "x-quorum-initial-group-size", "x-initial-cluster-size", "x-stream-max-segment-size-bytes",
    ]
    static let booleans: Set<String> = ["x-single-active-consumer"]
    static let choices: [String: [String]] = [
        "x-queue-type": ["classic", "quorum", "stream"],
        "x-overflow": ["drop-head", "reject-publish", "reject-publish-dlx"],
        "x-queue-mode": ["default", "lazy"],
        "x-dead-letter-strategy": ["at-most-once", "at-least-once"],
        "x-queue-leader-locator": ["client-local", "balanced"],
    ]

    /// The typed arguments of `map` (sorted by name), or the problems with them.
    public static func parse(_ map: [String: String]) -> Result<[AMQPQueueArgument], QueueArgumentProblems> {
        var arguments: [AMQPQueueArgument] = []
        var problems: [String] = []
        for (name, text) in map.sorted(by: { $0.key < $1.key }) {
            if integers.contains(name) {
                guard let number = Int64(text), number >= 0 else {
                    problems.append("queue_arguments: '\(name)' must be a whole number, got '\(text)'")
                    continue
                }
                arguments.append(AMQPQueueArgument(name: name, value: .long(number)))
            } else if booleans.contains(name) {
                guard text == "true" || text == "false" else {
                    problems.append("queue_arguments: '\(name)' must be true or false, got '\(text)'")
                    continue
                }
                arguments.append(AMQPQueueArgument(name: name, value: .bool(text == "true")))
            } else if let allowed = choices[name] {
                guard allowed.contains(text) else {
                    problems.append(
                        "queue_arguments: '\(name)' must be one of \(allowed.joined(separator: ", ")), got '\(text)'")
                    continue
                }
                arguments.append(AMQPQueueArgument(name: name, value: .string(text)))
            } else if let number = Int64(text) {
                arguments.append(AMQPQueueArgument(name: name, value: .long(number)))
            } else if text == "true" || text == "false" {
                arguments.append(AMQPQueueArgument(name: name, value: .bool(text == "true")))
            } else {
                arguments.append(AMQPQueueArgument(name: name, value: .string(text)))
            }
        }
        if map.count > 64 { problems.append("queue_arguments: at most 64 arguments") }
        return problems.isEmpty ? .success(arguments) : .failure(QueueArgumentProblems(messages: problems))
    }

    /// The problems of a stage's `queue_arguments`, at the option.
    static func problems(_ options: StageOptions) -> [OptionProblemReport] {
        guard let map = (try? options.value(option)) ?? nil, case .failure(let problems) = parse(map) else {
            return []
        }
        return problems.messages.map { OptionProblemReport($0, at: options.locations[option.name]) }
    }

    /// The arguments of checked options.
    static func arguments(_ options: StageOptions) throws -> [AMQPQueueArgument] {
        guard let map = try options.value(option) else { return [] }
        switch parse(map) {
        case .success(let arguments): return arguments
        case .failure(let problems): throw StageError(.invalidConfiguration, problems.messages.joined(separator: "; "))
        }
    }

    /// RabbitMQ's words for a declare that differs from the queue as it is (`PRECONDITION_FAILED - inequivalent
    /// arg 'x-queue-type' for queue 'logs' in vhost '/': received the value 'quorum' of type 'longstr' but current
    /// is none`), said plainly: which argument, what the queue has, what routerd asked for, what to do.
    static func explainConflict(_ error: AMQPError, queue: String) -> AMQPError {
        let text = error.message
        guard let argStart = text.firstRange(of: "inequivalent arg '"),
            let argEnd = text[argStart.upperBound...].firstIndex(of: "'"),
            let received = text[argEnd...].firstRange(of: ": received "),
            let current = text[received.upperBound...].firstRange(of: " but current is ")
        else { return error }
        let argument = text[argStart.upperBound..<argEnd]
        func value(_ phrase: Substring) -> String {
            // "the value 'quorum' of type 'longstr'", or "none".
            guard let open = phrase.firstRange(of: "the value '"),
                let close = phrase[open.upperBound...].firstRange(of: "' of type '")
            else { return phrase == "none" ? "not set" : String(phrase) }
            return "'\(phrase[open.upperBound..<close.lowerBound])'"
        }
        let asked = value(text[received.upperBound..<current.lowerBound])
        let has = value(text[current.upperBound...])
        return AMQPError(
            "queue '\(queue)' already exists with other arguments: \(argument) is \(has) on the queue, and this "
                + "stage asks for \(asked) (queue_arguments); declare it the same way everywhere, or delete the "
                + "queue so that it is declared again")
    }
}

/// What is wrong with a `queue_arguments` option, one message a problem.
public struct QueueArgumentProblems: Error, Sendable, Equatable {
    /// The messages.
    public var messages: [String]
}
