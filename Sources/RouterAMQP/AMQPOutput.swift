import Logging
public import RouterCore
import RouterSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `amqp` output: publishes every entry as a persistent message with publisher confirms.
///
/// An entry counts as written (for `ack`, and for an `amqp` input upstream) only once the broker confirmed it.
/// While the broker is unreachable the output stops taking from its queue, so entries wait there (and
/// `when_full` decides what happens when it is full); what was published but not confirmed is published again
/// after the reconnect. Delivery is at least once: a message the broker stored just before the connection broke
/// is published again (counted in `retried`), with the same `message_id` so that consumers can drop the copy.
public final class AMQPOutput: OutputStage {
    /// The `amqp` output declaration.
    public static let declaration = StageDeclaration(
        type: "amqp",
        summary: "Publishes each entry as a persistent RabbitMQ message; written once the broker confirms it.",
        options: [
            AMQPStageOptions.url, AMQPStageOptions.urls,
            exchange,
            exchangeType,
            routingKey,
            queue,
            AMQPQueueArguments.option,
            contentType,
            batchPerMessage,
            maxInFlight,
            confirmTimeout,
            AMQPStageOptions.heartbeat, SharedOptions.connectTimeout,
        ] + AMQPStageOptions.tls,
        counters: [
            CounterDeclaration("published", "Messages published (including publishes again)."),
            CounterDeclaration(
                "confirmed", "Messages the broker confirmed: stored, in the queue(s) it routed them to."),
            CounterDeclaration(
                "returned",
                "Messages the broker returned because no queue was bound for their routing key (counted as dropped "
                    + "with the reason `returned`; a waiting `ack` gets a nack)."),
            CounterDeclaration(
                "retried",
                "Messages published again after a reconnect or a broker nack: the broker may hold two copies "
                    + "(at-least-once; same message_id)."),
            CounterDeclaration("reconnects", "Connections made again after a lost one."),
            CounterDeclaration("connect_failures", "Connection attempts that failed."),
            CounterDeclaration(
                "failovers", "Connections made to another broker of `urls` than the one before (after a loss)."),
        ],
        example: StageExample(
            """
            url: "${AMQP_URL}"
            queue: routerd_example_output
            """, needs: ["AMQP_URL"]),
        validate: { options in AMQPStageOptions.problems(options) + AMQPQueueArguments.problems(options) }
    )

    static let exchange = StageOption<String>(
        OptionDeclaration(
            "exchange", .string, .defaultValue(.string("")),
            "Exchange to publish to. Empty: the default exchange, which delivers to the queue named by the "
                + "routing key."))

    static let exchangeType = StageOption<String?>(
        OptionDeclaration(
            "exchange_type", .oneOf(["direct", "fanout", "topic", "headers"]), .optional,
            "When set, routerd declares `exchange` (durable) with this type; when not, the exchange must already "
                + "exist (checked at connect)."))

    static let routingKey = StageOption<String?>(
        OptionDeclaration(
            "routing_key", .string, .optional,
            "Routing key of every message. Default: the `queue` name (what the default exchange needs)."))

    static let queue = StageOption<String?>(
        OptionDeclaration(
            "queue", .string, .optional,
            "A queue routerd declares (durable) at connect, and binds to `exchange` with the routing key when an "
                + "exchange is set, so that no message is published before it has somewhere to go."))

    static let contentType = StageOption<String>(
        OptionDeclaration(
            "content_type", .string, .defaultValue(.string("application/json")),
            "The content_type property of every message."))

    static let batchPerMessage = StageOption<Int>(
        OptionDeclaration(
            "batch_per_message", .integer(1...10_000), .defaultValue(.integer(1)),
            "Entries per AMQP message. 1 (the default): one entry a message, with `content_type`, what the seed's "
                + "consumer reads. More: up to this many entries in one message, one a line (newline-delimited), "
                + "with content type `application/x-ndjson`, which an `amqp` input splits again; the last message "
                + "of a write may hold fewer. RabbitMQ's cost is per message, so this multiplies what one broker "
                + "takes; the entries of a message are confirmed, returned, retried and acknowledged together. An "
                + "entry that is empty or holds a newline byte goes alone, with `content_type`, so that no line is "
                + "split or lost. Consumers other than routerd must split such messages themselves."))

    static let maxInFlight = StageOption<Int>(
        OptionDeclaration(
            "max_in_flight", .integer(1...1_000_000), .defaultValue(.integer(10_000)),
            "Most entries published and not yet confirmed. The rest wait in the queue."))

    static let confirmTimeout = StageOption<Duration>(
        OptionDeclaration(
            "confirm_timeout", .duration(.seconds(1)...(.seconds(3600))), .defaultValue(.duration(.seconds(30))),
            "A publish the broker has not confirmed after this long counts as lost: routerd reconnects and "
                + "publishes it again."))

    private let settings: PublisherSettings
    private let context: StageContext

    /// Reads and checks the options; connecting happens on the output's thread.
    public init(context: StageContext) throws {
        let options = context.options
        let urls = try AMQPStageOptions.urls(from: options)
        let exchange = try options.value(AMQPOutput.exchange)
        let queue = try options.value(AMQPOutput.queue)
        let routingKey = try options.value(AMQPOutput.routingKey) ?? queue
        guard let routingKey else {
            throw StageError(.invalidConfiguration, "set `queue` or `routing_key`: every message needs a routing key")
        }
        if exchange.isEmpty, let queue, routingKey != queue {
            throw StageError(
                .invalidConfiguration,
                "routing_key '\(routingKey)' with the default exchange does not reach queue '\(queue)'; leave "
                    + "routing_key out, or set an exchange")
        }
        settings = PublisherSettings(
            urls: urls, tls: try AMQPStageOptions.tls(from: options), exchange: exchange,
            exchangeType: try options.value(AMQPOutput.exchangeType),
            routingKey: routingKey, queue: queue, queueArguments: try AMQPQueueArguments.arguments(options),
            contentType: try options.value(AMQPOutput.contentType),
            batchPerMessage: try options.value(AMQPOutput.batchPerMessage),
            maxInFlight: try options.value(AMQPOutput.maxInFlight),
            confirmTimeout: try options.value(AMQPOutput.confirmTimeout),
            heartbeat: try options.value(AMQPStageOptions.heartbeat),
            connectTimeout: try options.value(SharedOptions.connectTimeout))
        self.context = context
    }

    /// Publishes up to `max_in_flight` unconfirmed entries; while the broker is away, entries wait in the queue.
    public var traits: OutputTraits {
        OutputTraits(
            maxPendingEvents: settings.maxInFlight, tickInterval: .seconds(1),
            wording: OutageWording(
                cannotOpen: "cannot connect; retrying", lost: "connection lost; reconnecting",
                refused: "the broker refused messages (nack); publishing them again after a growing pause",
                reopened: "connected again", accepted: "the broker takes messages again",
                givingUp: "giving up on the broker: shutting down and it is still unavailable",
                stoppedWithLosses: "stopped with entries that could not be published",
                unavailableReason: "broker_unavailable"))
    }

    /// The publisher, on the output's thread.
    public func makeWriter() -> some OutputWriter { Publisher(settings: settings, context: context) }
}

struct PublisherSettings: Sendable {
    let urls: [AMQPURL]
    let tls: AMQPTLS
    let exchange: String
    let exchangeType: String?
    let routingKey: String
    let queue: String?
    let queueArguments: [AMQPQueueArgument]
    let contentType: String
    let batchPerMessage: Int
    let maxInFlight: Int
    let confirmTimeout: Duration
    let heartbeat: Duration
    let connectTimeout: Duration
}

/// The connection and the confirm bookkeeping; the driver keeps the groups, retries and outages.
private struct Publisher: OutputWriter {
    /// A group published on the current connection and not answered yet.
    struct InFlight {
        let group: WriteGroup
        var firstTag: UInt64
        var lastTag: UInt64
        var publishedAtNanos: Int64
        /// With `batch_per_message` above 1: the offset (in the group) of each message's first entry.
        var messageStarts: [Int] = []
        var nacked = false
        /// Offsets (in the group) of the messages the broker returned.
        var returned: [Int] = []
        var returnReason = ""
    }

    let settings: PublisherSettings
    let context: StageContext
    let idPrefix: [UInt8]
    var connection: AMQPConnection?
    var brokers: AMQPBrokers
    var everConnected = false
    var inFlight: [InFlight] = []
    /// Every tag up to this one is answered (acked or nacked).
    var answeredThrough: UInt64 = 0
    var answeredAbove: Set<UInt64> = []
    var idBuffer = [UInt8](repeating: 0, count: 64)
    /// The body of the message being gathered (`batch_per_message` above 1).
    var lines: [UInt8] = []
    /// The broker's reason while it blocks publishing (connection.blocked), nil otherwise.
    var blockedReason: String?
    /// Groups handed back unpublished while the broker blocked, on their first attempt: not retries when published.
    var heldUnpublished: Set<UInt64> = []

    let published: Counter
    let confirmed: Counter
    let returnedCounter: Counter
    let retried: Counter
    let reconnects: Counter
    let connectFailures: Counter
    let failovers: Counter

    init(settings: PublisherSettings, context: StageContext) {
        self.settings = settings
        self.context = context
        brokers = AMQPBrokers(settings.urls)
        idPrefix = Array(String(UInt64.random(in: 0...UInt64.max), radix: 36).utf8) + [UInt8(ascii: "-")]
        let counters = context.counters
        published = counters.counter("published")
        confirmed = counters.counter("confirmed")
        returnedCounter = counters.counter("returned")
        retried = counters.counter("retried")
        reconnects = counters.counter("reconnects")
        connectFailures = counters.counter("connect_failures")
        failovers = counters.counter("failovers")
    }

    var outageMetadata: Logger.Metadata { ["url": "\(brokers.inUse)"] }

    /// Connects to the first broker of the list that answers (from where the last connect left off) and declares
    /// what must exist there.
    mutating func open() throws {
        let connected: AMQPBrokers.Connected<AMQPConnection>
        do {
            let settings = settings
            connected = try brokers.connect { url in try Publisher.connect(to: url, settings) }
        } catch {
            connectFailures.add()
            throw error
        }
        let connection = connected.connection
        self.connection = connection
        blockedReason = nil
        answeredThrough = 0
        answeredAbove.removeAll()
        inFlight.removeAll()
        if everConnected {
            reconnects.add()
        } else {
            context.logger.info("connected", metadata: ["url": "\(connected.url)"])
        }
        brokers.report(
            connected, logger: context.logger, health: context.health, metadata: [:], failovers: failovers)
        everConnected = true
    }

    /// A connection to `url` with the exchange, queue and binding declared and confirms on.
    private static func connect(to url: AMQPURL, _ settings: PublisherSettings) throws -> AMQPConnection {
        let connection = try AMQPConnection(
            url: url, tls: settings.tls, heartbeat: settings.heartbeat, timeout: settings.connectTimeout)
        if let type = settings.exchangeType {
            try connection.declareExchange(settings.exchange, type: type)
        } else if !settings.exchange.isEmpty {
            try connection.declareExchange(settings.exchange, type: nil)
        }
        if let queue = settings.queue {
            try connection.declareQueue(queue, arguments: settings.queueArguments)
            if !settings.exchange.isEmpty {
                try connection.bindQueue(queue, exchange: settings.exchange, routingKey: settings.routingKey)
            }
        }
        try connection.enableConfirms()
        return connection
    }

    /// After a lost connection (and at the end): the next ``open()`` starts at the broker after this one.
    mutating func close() {
        connection?.close()
        connection = nil
        inFlight.removeAll()
        brokers.lost()
        context.health.setNote(brokers.note)
    }

    /// Publishes every event of the group; confirms arrive through ``collect(timeout:)``. While the broker blocks
    /// publishing, publishes nothing and asks the driver to try again later; a socket that takes nothing for
    /// `confirm_timeout` counts as a lost connection.
    mutating func write(_ group: WriteGroup) throws -> WriteOutcome {
        guard let connection else { throw AMQPError("not connected") }
        while let event = try connection.poll(timeout: .zero) { handle(event) }
        if let blockedReason {
            if group.attempt == 0 { heldUnpublished.insert(group.id) }
            return .retry("the broker blocks publishing (\(blockedReason)); waiting for it to unblock")
        }
        var firstTag: UInt64 = 0
        var lastTag: UInt64 = 0
        var messageStarts: [Int] = []
        if settings.batchPerMessage == 1 {
            var offset = 0
            for batch in group.batches {
                for event in batch.events {
                    let tag = try batch.withBytes(of: event) { body in
                        try publish(
                            body, contentType: settings.contentType, number: group.firstEventNumber + UInt64(offset))
                    }
                    if offset == 0 { firstTag = tag }
                    lastTag = tag
                    offset += 1
                }
            }
        } else {
            (firstTag, lastTag, messageStarts) = try publishLines(group)
        }
        published.add(group.eventCount)
        if group.attempt > 0 && heldUnpublished.remove(group.id) == nil { retried.add(group.eventCount) }
        inFlight.append(
            InFlight(
                group: group, firstTag: firstTag, lastTag: lastTag, publishedAtNanos: monotonicNanos(),
                messageStarts: messageStarts))
        return .pending
    }

    /// Publishes one message whose `message_id` is `<prefix><number + 1>` (the number of its first entry), once
    /// the socket takes bytes (within `confirm_timeout`).
    private mutating func publish(
        _ body: UnsafeRawBufferPointer, contentType: String, number: UInt64
    ) throws -> UInt64 {
        guard let connection else { throw AMQPError("not connected") }
        let stallMillis = Int32(clamping: settings.confirmTimeout.nanoseconds / 1_000_000)
        if !connection.waitWritable(timeoutMillis: 0), !connection.waitWritable(timeoutMillis: stallMillis) {
            throw AMQPError("\(brokers.inUse) took no bytes for \(settings.confirmTimeout) (confirm_timeout)")
        }
        let idLength = formatID(number + 1, into: &idBuffer)
        let settings = settings
        return try idBuffer.withUnsafeBytes { idBytes in
            try connection.publish(
                AMQPMessage(
                    exchange: settings.exchange, routingKey: settings.routingKey, contentType: contentType,
                    mandatory: true, messageID: UnsafeRawBufferPointer(rebasing: idBytes[0..<idLength]), body: body))
        }
    }

    /// `batch_per_message`: the group's entries as messages of up to that many lines; an empty entry or one that
    /// holds a newline byte goes alone with `content_type`. Returns the tags and where each message starts.
    private mutating func publishLines(_ group: WriteGroup) throws -> (UInt64, UInt64, [Int]) {
        var firstTag: UInt64 = 0
        var lastTag: UInt64 = 0
        var starts: [Int] = []
        var gathered = 0
        var offset = 0
        lines.removeAll(keepingCapacity: true)  // what a publish that threw left
        func sent(_ tag: UInt64) {
            if firstTag == 0 { firstTag = tag }
            lastTag = tag
        }
        func flush() throws {
            guard gathered > 0 else { return }
            let start = offset - gathered
            starts.append(start)
            // Taken out while it is published (publish needs self), and put back with its capacity.
            var body: [UInt8] = []
            swap(&body, &lines)
            let tag = try body.withUnsafeBytes { bytes in
                try publish(
                    bytes, contentType: AMQPDelivery.entryLinesType, number: group.firstEventNumber + UInt64(start))
            }
            body.removeAll(keepingCapacity: true)
            swap(&body, &lines)
            sent(tag)
            gathered = 0
        }
        for batch in group.batches {
            for event in batch.events {
                let alone = batch.withBytes(of: event) { body in
                    body.isEmpty || body.contains(UInt8(ascii: "\n"))
                }
                if alone {
                    try flush()
                    starts.append(offset)
                    let tag = try batch.withBytes(of: event) { body in
                        try publish(
                            body, contentType: settings.contentType, number: group.firstEventNumber + UInt64(offset))
                    }
                    sent(tag)
                    offset += 1
                    continue
                }
                if gathered > 0 { lines.append(UInt8(ascii: "\n")) }
                batch.withBytes(of: event) { body in lines.append(contentsOf: body) }
                gathered += 1
                offset += 1
                if gathered == settings.batchPerMessage { try flush() }
            }
        }
        try flush()
        return (firstTag, lastTag, starts)
    }

    /// Heartbeats: reads (and answers) what the broker sent while idle. The driver ticks only with nothing in
    /// flight, so no confirm can be read (and lost) here.
    mutating func tick() throws {
        guard inFlight.isEmpty, let connection else { return }
        while let event = try connection.poll(timeout: .zero) { handle(event) }
    }

    /// Acts on what the broker said: confirms and returns for the groups in flight, blocked and unblocked.
    mutating func handle(_ event: AMQPPublisherEvent) {
        switch event {
        case .ack(let tag, let multiple):
            answer(tag, multiple: multiple, nacked: false)
        case .nack(let tag, let multiple):
            answer(tag, multiple: multiple, nacked: true)
        case .returned(let messageID, let reason):
            markReturned(messageID, reason: reason)
        case .blocked(let reason):
            if blockedReason == nil {
                context.logger.warning(
                    "the broker blocked publishing; entries wait in the queue until it unblocks",
                    metadata: ["url": "\(brokers.inUse)", "reason": "\(reason)"])
            }
            blockedReason = reason
            // Said at once, not only when the next group is handed back: what is in flight waits for the unblock.
            context.health.set(.degraded("the broker blocks publishing (\(reason)); waiting for it to unblock"))
        case .unblocked:
            if blockedReason != nil {
                context.logger.info("the broker unblocked publishing", metadata: ["url": "\(brokers.inUse)"])
                context.health.set(.ok)
            }
            blockedReason = nil
        }
    }

    /// `<prefix>-<number>` into `buffer`; returns its length.
    func formatID(_ number: UInt64, into buffer: inout [UInt8]) -> Int {
        var length = 0
        for byte in idPrefix {
            buffer[length] = byte
            length += 1
        }
        var digits: [UInt8] = []
        var value = number
        repeat {
            digits.append(UInt8(ascii: "0") + UInt8(value % 10))
            value /= 10
        } while value > 0
        for digit in digits.reversed() {
            buffer[length] = digit
            length += 1
        }
        return length
    }

    /// Reads every confirm and return already there (waiting up to `timeout` for the first) and answers, oldest
    /// first, every group whose messages are all answered.
    mutating func collect(timeout: Duration) throws -> [Confirmation] {
        guard let connection else { throw AMQPError("not connected") }
        // Before reading: a confirm overdue means the connection is lost; nothing answered is dropped with it.
        if let oldest = inFlight.first,
            monotonicNanos() - oldest.publishedAtNanos > settings.confirmTimeout.nanoseconds
        {
            throw AMQPError("no confirm from \(brokers.inUse) within \(settings.confirmTimeout)")
        }
        var wait = timeout
        while let event = try connection.poll(timeout: wait) {
            wait = .zero
            handle(event)
        }
        var confirmations: [Confirmation] = []
        var index = 0
        while index < inFlight.count {
            let item = inFlight[index]
            guard item.lastTag <= answeredThrough else {
                index += 1
                continue
            }
            inFlight.remove(at: index)
            confirmations.append(Confirmation(group: item.group.id, outcome: outcome(of: item)))
        }
        return confirmations
    }

    private func outcome(of item: InFlight) -> WriteOutcome {
        if item.nacked { return .retry("the broker refused messages (nack)") }
        let stored = item.group.eventCount - item.returned.count
        confirmed.add(stored)
        guard !item.returned.isEmpty else { return .written }
        returnedCounter.add(item.returned.count)
        context.logger.error(
            "the broker returned messages: no queue is bound for their routing key",
            metadata: [
                "exchange": "\(settings.exchange)", "routing_key": "\(settings.routingKey)",
                "reason": "\(item.returnReason)", "events_lost": "\(item.returned.count)",
            ])
        let reason = Reason("returned")
        let detail = "returned by the broker: \(item.returnReason)"
        var refusals: [Refusal] = []
        var returned = Set(item.returned)
        var offset = 0
        for (batchIndex, batch) in item.group.batches.enumerated() {
            for eventIndex in batch.events.indices {
                if returned.remove(offset) != nil {
                    refusals.append(Refusal(batch: batchIndex, event: eventIndex, reason: reason, detail: detail))
                }
                offset += 1
            }
        }
        return .refused(refusals, port: nil)
    }

    mutating func answer(_ tag: UInt64, multiple: Bool, nacked: Bool) {
        if nacked {
            for index in inFlight.indices {
                let item = inFlight[index]
                let hit =
                    multiple
                    ? item.firstTag <= tag && item.lastTag > answeredThrough
                    : (item.firstTag...item.lastTag).contains(tag)
                if hit { inFlight[index].nacked = true }
            }
        }
        if multiple {
            answeredThrough = max(answeredThrough, tag)
        } else if tag > answeredThrough {
            answeredAbove.insert(tag)
        }
        while answeredAbove.remove(answeredThrough + 1) != nil { answeredThrough += 1 }
        if !answeredAbove.isEmpty, multiple { answeredAbove = answeredAbove.filter { $0 > answeredThrough } }
    }

    mutating func markReturned(_ messageID: String, reason: String) {
        guard messageID.utf8.starts(with: idPrefix), let number = UInt64(messageID.dropFirst(idPrefix.count)) else {
            return
        }
        for index in inFlight.indices {
            let first = inFlight[index].group.firstEventNumber + 1
            let count = inFlight[index].group.eventCount
            if number >= first && number < first + UInt64(count) {
                let offset = Int(number - first)
                let starts = inFlight[index].messageStarts
                if let position = starts.firstIndex(of: offset) {
                    // A message of several entries: every one of them was returned.
                    let end = position + 1 < starts.count ? starts[position + 1] : count
                    inFlight[index].returned.append(contentsOf: offset..<end)
                } else {
                    inFlight[index].returned.append(offset)
                }
                inFlight[index].returnReason = reason
                return
            }
        }
    }
}
