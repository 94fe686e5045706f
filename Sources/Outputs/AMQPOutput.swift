internal import AMQP
import Logging
public import Router

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
            AMQPStageOptions.url,
            OptionDeclaration(
                "exchange", .string, .defaultValue(.string("")),
                "Exchange to publish to. Empty: the default exchange, which delivers to the queue named by the "
                    + "routing key."),
            OptionDeclaration(
                "exchange_type", .oneOf(["direct", "fanout", "topic", "headers"]), .optional,
                "When set, routerd declares `exchange` (durable) with this type; when not, the exchange must already "
                    + "exist (checked at connect)."),
            OptionDeclaration(
                "routing_key", .string, .optional,
                "Routing key of every message. Default: the `queue` name (what the default exchange needs)."),
            OptionDeclaration(
                "queue", .string, .optional,
                "A queue routerd declares (durable) at connect, and binds to `exchange` with the routing key when an "
                    + "exchange is set, so that no message is published before it has somewhere to go."),
            OptionDeclaration(
                "content_type", .string, .defaultValue(.string("application/json")),
                "The content_type property of every message."),
            OptionDeclaration(
                "max_in_flight", .integer(1...1_000_000), .defaultValue(.integer(10_000)),
                "Most entries published and not yet confirmed. The rest wait in the queue."),
            OptionDeclaration(
                "confirm_timeout", .duration(.seconds(1)...(.seconds(3600))), .defaultValue(.duration(.seconds(30))),
                "A publish the broker has not confirmed after this long counts as lost: routerd reconnects and "
                    + "publishes it again."),
            OptionDeclaration(
                "drain_timeout", .duration(.zero...(.seconds(3600))), .defaultValue(.duration(.seconds(10))),
                "At shutdown, how long to keep trying to reach a broker that is away before counting what is still "
                    + "unconfirmed or queued as dropped (reason broker_unavailable). Keep it below the router's "
                    + "shutdown_timeout, less one connect_timeout."),
        ] + AMQPStageOptions.connection,
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
        ]
    )

    private let settings: PublisherSettings
    private let context: StageContext

    /// Reads and checks the options; connecting happens on the output's thread.
    public init(context: StageContext) throws {
        let options = context.options
        let url = try AMQPStageOptions.url(from: options)
        let exchange = try options.string("exchange")
        let queue = try options.optionalString("queue")
        let routingKey = try options.optionalString("routing_key") ?? queue
        guard let routingKey else {
            throw StageError("set `queue` or `routing_key`: every message needs a routing key")
        }
        if exchange.isEmpty, let queue, routingKey != queue {
            throw StageError(
                "routing_key '\(routingKey)' with the default exchange does not reach queue '\(queue)'; leave "
                    + "routing_key out, or set an exchange")
        }
        settings = PublisherSettings(
            url: url, exchange: exchange, exchangeType: try options.optionalString("exchange_type"),
            routingKey: routingKey, queue: queue, contentType: try options.string("content_type"),
            maxInFlight: try options.integer("max_in_flight"), confirmTimeout: try options.duration("confirm_timeout"),
            heartbeat: try options.duration("heartbeat"), connectTimeout: try options.duration("connect_timeout"),
            backoffMax: try options.duration("reconnect_backoff_max"),
            drainTimeout: try options.duration("drain_timeout"))
        self.context = context
    }

    /// Publishes until the queue is closed and everything taken is confirmed.
    public func run(_ queue: OutputQueue) throws {
        var publisher = Publisher(settings: settings, context: context)
        publisher.run(queue)
    }
}

struct PublisherSettings: Sendable {
    let url: AMQPURL
    let exchange: String
    let exchangeType: String?
    let routingKey: String
    let queue: String?
    let contentType: String
    let maxInFlight: Int
    let confirmTimeout: Duration
    let heartbeat: Duration
    let connectTimeout: Duration
    let backoffMax: Duration
    let drainTimeout: Duration
}

/// The output thread's state: the connection, the batches in flight and the confirm bookkeeping.
private struct Publisher {
    /// A batch taken from the queue and not settled yet.
    struct InFlight {
        var batch: Batch
        /// The message id number of its first event (ids stay the same when it is published again).
        let firstID: UInt64
        /// Delivery tags on the current connection, once published.
        var firstTag: UInt64 = 0
        var lastTag: UInt64 = 0
        var published = false
        var publishedAtNanos: Int64 = 0
        /// Published on an earlier connection (or nacked): publishing it again counts as retried.
        var publishedBefore = false
        var nacked = false
        var returned = 0
        var returnReason = ""
    }

    let settings: PublisherSettings
    let context: StageContext
    let idPrefix: [UInt8]
    var connection: AMQPConnection?
    var everConnected = false
    var failing = false
    var lastFailure = ""
    var backoff: Backoff
    var nextConnectNanos: Int64 = 0
    var inFlight: [InFlight] = []
    var inFlightEvents = 0
    var nextID: UInt64 = 1
    /// Every tag up to this one is answered (acked or nacked).
    var answeredThrough: UInt64 = 0
    var answeredAbove: Set<UInt64> = []
    var closed = false
    /// When the queue was seen closed (shutdown) while the broker was away; `drain_timeout` counts from it.
    var closedAtNanos: Int64?
    /// Entries given up on at shutdown.
    var lost = 0
    /// While the broker refuses messages (nacks: a full queue with `reject-publish`, an internal error), publishing
    /// pauses between attempts, longer each time, instead of looping.
    var nackBackoff: Backoff
    var publishNotBeforeNanos: Int64 = 0
    var refused = false
    var lastRefusalNanos: Int64 = 0

    let published: Counter
    let confirmed: Counter
    let returnedCounter: Counter
    let retried: Counter
    let reconnects: Counter
    let connectFailures: Counter
    let written: Counter

    init(settings: PublisherSettings, context: StageContext) {
        self.settings = settings
        self.context = context
        backoff = Backoff(max: settings.backoffMax)
        nackBackoff = Backoff(max: settings.backoffMax)
        idPrefix = Array(String(UInt64.random(in: 0...UInt64.max), radix: 36).utf8) + [UInt8(ascii: "-")]
        let counters = context.counters
        published = counters.counter("published")
        confirmed = counters.counter("confirmed")
        returnedCounter = counters.counter("returned")
        retried = counters.counter("retried")
        reconnects = counters.counter("reconnects")
        connectFailures = counters.counter("connect_failures")
        written = counters.counter("events_out", label: "port", value: "default")
    }

    mutating func run(_ queue: OutputQueue) {
        while !(closed && inFlight.isEmpty) {
            guard let connection else {
                if shutdownDrainIsOver(queue) {
                    giveUp(queue)
                    break
                }
                waitAndConnect(queue)
                continue
            }
            do {
                try publishPending(on: connection)
                var tookAny = false
                if !closed && inFlightEvents < settings.maxInFlight {
                    // Idle: sleep in the queue, waking now and then to keep the heartbeat going.
                    let timeout: Duration = inFlight.isEmpty ? .seconds(1) : .zero
                    tookAny = take(from: queue, maxEvents: settings.maxInFlight - inFlightEvents, timeout: timeout)
                    if tookAny { try publishPending(on: connection) }
                }
                // Wait a little for confirms when there is nothing new to publish.
                let wait: Duration = !inFlight.isEmpty && !tookAny ? .milliseconds(5) : .zero
                try readConfirms(from: connection, firstWait: wait)
                settleAnswered()
                if let oldest = inFlight.first, oldest.published,
                    monotonicNanos() - oldest.publishedAtNanos > settings.confirmTimeout.nanoseconds
                {
                    throw AMQPError("no confirm from \(settings.url) within \(settings.confirmTimeout)")
                }
            } catch let error as AMQPError {
                lost(error)
            } catch {
                lost(AMQPError("\(error)"))
            }
        }
        connection?.close()
        connection = nil
        if lost > 0 {
            context.logger.error(
                "stopped with entries that could not be published",
                metadata: ["url": "\(settings.url)", "events_lost": "\(lost)"])
        }
    }

    /// Whether the router is shutting down and the broker stayed away for `drain_timeout` since it began.
    mutating func shutdownDrainIsOver(_ queue: OutputQueue) -> Bool {
        if closedAtNanos == nil && queue.isClosed { closedAtNanos = monotonicNanos() }
        guard let closedAt = closedAtNanos else { return false }
        return monotonicNanos() - closedAt >= settings.drainTimeout.nanoseconds
    }

    /// Shutting down with the broker away: fails what is in flight and what is still queued, counted as dropped.
    mutating func giveUp(_ queue: OutputQueue) {
        context.logger.error(
            "giving up on the broker: shutting down and it is still unavailable",
            metadata: [
                "url": "\(settings.url)", "error": "\(lastFailure)",
                "drain_timeout": "\(Units.formatDuration(settings.drainTimeout))",
            ])
        let reason = "not published: the broker was unavailable at shutdown"
        for item in inFlight {
            item.batch.settle(.failed(reason))
            lost += item.batch.count
        }
        inFlight.removeAll()
        inFlightEvents = 0
        while case .batches(let batches) = queue.take(maxEvents: Int.max, minEvents: 1, timeout: .zero) {
            for batch in batches {
                batch.settle(.failed(reason))
                lost += batch.count
            }
        }
        closed = true
        if lost > 0 { context.counters.dropped(lost, reason: "broker_unavailable") }
    }

    /// Takes batches into flight; returns whether any came. Sets `closed` when the queue is closed and empty.
    mutating func take(from queue: OutputQueue, maxEvents: Int, timeout: Duration) -> Bool {
        switch queue.take(maxEvents: maxEvents, minEvents: 1, timeout: timeout) {
        case .batches(let batches):
            for batch in batches {
                inFlight.append(InFlight(batch: batch, firstID: nextID))
                nextID += UInt64(batch.count)
                inFlightEvents += batch.count
            }
            return true
        case .timedOut:
            return false
        case .closed:
            closed = true
            return false
        }
    }

    /// While disconnected: wait out the backoff (watching the queue when nothing is in flight), then connect.
    mutating func waitAndConnect(_ queue: OutputQueue) {
        let now = monotonicNanos()
        var connectAt = nextConnectNanos
        if let closedAt = closedAtNanos { connectAt = min(connectAt, closedAt + settings.drainTimeout.nanoseconds) }
        if now < connectAt {
            let remaining = Duration.nanoseconds(connectAt - now)
            if inFlight.isEmpty && !closed {
                _ = take(from: queue, maxEvents: settings.maxInFlight, timeout: remaining)
            } else {
                usleep(UInt32(clamping: min(remaining.nanoseconds, 100_000_000) / 1000))
            }
            return
        }
        do {
            let connection = try AMQPConnection(
                url: settings.url, heartbeat: settings.heartbeat, timeout: settings.connectTimeout)
            if let type = settings.exchangeType {
                try connection.declareExchange(settings.exchange, type: type)
            } else if !settings.exchange.isEmpty {
                try connection.declareExchange(settings.exchange, type: nil)
            }
            if let queue = settings.queue {
                try connection.declareQueue(queue)
                if !settings.exchange.isEmpty {
                    try connection.bindQueue(queue, exchange: settings.exchange, routingKey: settings.routingKey)
                }
            }
            try connection.enableConfirms()
            self.connection = connection
            answeredThrough = 0
            answeredAbove.removeAll()
            for index in inFlight.indices where inFlight[index].published {
                inFlight[index].published = false
                inFlight[index].publishedBefore = true
            }
            backoff.reset()
            context.health.set(.ok)
            if everConnected { reconnects.add() }
            context.logger.info(
                everConnected ? "connected again" : "connected",
                metadata: ["url": "\(settings.url)", "unconfirmed_events": "\(inFlightEvents)"])
            everConnected = true
            failing = false
            lastFailure = ""
        } catch {
            connectFailures.add()
            fail("\(error)", message: "cannot connect; retrying")
        }
    }

    /// The connection broke (or a confirm is overdue): drop it; everything unconfirmed is published again later.
    mutating func lost(_ error: AMQPError) {
        connection = nil
        fail(error.message, message: "connection lost; reconnecting")
    }

    mutating func fail(_ reason: String, message: Logger.Message) {
        context.health.set(.degraded(reason))
        // One line per outage, and again only when the reason changes, not one per attempt.
        if !failing || reason != lastFailure {
            context.logger.error(
                message,
                metadata: [
                    "url": "\(settings.url)", "error": "\(reason)", "unconfirmed_events": "\(inFlightEvents)",
                ])
        }
        failing = true
        lastFailure = reason
        nextConnectNanos = monotonicNanos() + backoff.next()
    }

    /// Publishes every batch in flight that is not published on this connection.
    mutating func publishPending(on connection: AMQPConnection) throws {
        guard publishNotBeforeNanos == 0 || monotonicNanos() >= publishNotBeforeNanos else { return }
        var idBuffer = [UInt8](repeating: 0, count: 64)
        for index in inFlight.indices where !inFlight[index].published {
            let item = inFlight[index]
            var firstTag: UInt64 = 0
            var lastTag: UInt64 = 0
            for (offset, event) in item.batch.events.enumerated() {
                let idLength = formatID(item.firstID + UInt64(offset), into: &idBuffer)
                let tag = try idBuffer.withUnsafeBytes { idBytes in
                    try item.batch.withBytes(of: event) { body in
                        try connection.publish(
                            AMQPMessage(
                                exchange: settings.exchange, routingKey: settings.routingKey,
                                contentType: settings.contentType, mandatory: true,
                                messageID: UnsafeRawBufferPointer(rebasing: idBytes[0..<idLength]), body: body))
                    }
                }
                if offset == 0 { firstTag = tag }
                lastTag = tag
            }
            published.add(item.batch.count)
            if item.publishedBefore { retried.add(item.batch.count) }
            inFlight[index].firstTag = firstTag
            inFlight[index].lastTag = lastTag
            inFlight[index].published = true
            inFlight[index].publishedAtNanos = monotonicNanos()
            inFlight[index].nacked = false
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

    /// Reads every confirm and return already there, waiting up to `firstWait` for the first.
    mutating func readConfirms(from connection: AMQPConnection, firstWait: Duration) throws {
        var wait = firstWait
        while let event = try connection.poll(timeout: wait) {
            wait = .zero
            switch event {
            case .ack(let tag, let multiple):
                answer(tag, multiple: multiple, nacked: false)
            case .nack(let tag, let multiple):
                answer(tag, multiple: multiple, nacked: true)
            case .returned(let messageID, let reason):
                markReturned(messageID, reason: reason)
            }
        }
    }

    mutating func answer(_ tag: UInt64, multiple: Bool, nacked: Bool) {
        if nacked {
            for index in inFlight.indices where inFlight[index].published {
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

    /// The broker refused (nacked) messages: publish them, and anything newer, again only after a pause.
    mutating func pauseAfterRefusal(_ events: Int) {
        let now = monotonicNanos()
        lastRefusalNanos = now
        guard publishNotBeforeNanos <= now else { return }  // one pause per round of refusals
        let pause = nackBackoff.next()
        publishNotBeforeNanos = now + pause
        if !refused {
            refused = true
            context.logger.warning(
                "the broker refused messages (nack); publishing them again after a growing pause",
                metadata: [
                    "url": "\(settings.url)", "routing_key": "\(settings.routingKey)", "events": "\(events)",
                ])
        }
    }

    mutating func markReturned(_ messageID: String, reason: String) {
        guard messageID.utf8.starts(with: idPrefix), let number = UInt64(messageID.dropFirst(idPrefix.count)) else {
            return
        }
        for index in inFlight.indices {
            let item = inFlight[index]
            if number >= item.firstID && number < item.firstID + UInt64(item.batch.count) {
                inFlight[index].returned += 1
                inFlight[index].returnReason = reason
                return
            }
        }
    }

    /// Settles, oldest first, every batch whose messages are all answered; nacked ones are published again.
    mutating func settleAnswered() {
        var index = 0
        while index < inFlight.count {
            let item = inFlight[index]
            guard item.published, item.lastTag <= answeredThrough else {
                index += 1
                continue
            }
            if item.nacked {
                inFlight[index].published = false
                inFlight[index].publishedBefore = true
                inFlight[index].returned = 0
                index += 1
                pauseAfterRefusal(item.batch.count)
                continue
            }
            // Only a message published after the latest refusal and then confirmed shows the broker takes them again.
            if refused && item.publishedAtNanos > lastRefusalNanos {
                refused = false
                nackBackoff.reset()
                publishNotBeforeNanos = 0
                context.logger.info("the broker takes messages again", metadata: ["url": "\(settings.url)"])
            }
            inFlight.remove(at: index)
            inFlightEvents -= item.batch.count
            let stored = item.batch.count - item.returned
            confirmed.add(stored)
            written.add(stored)
            if item.returned > 0 {
                returnedCounter.add(item.returned)
                context.counters.dropped(item.returned, reason: "returned")
                context.logger.error(
                    "the broker returned messages: no queue is bound for their routing key",
                    metadata: [
                        "exchange": "\(settings.exchange)", "routing_key": "\(settings.routingKey)",
                        "reason": "\(item.returnReason)", "events_lost": "\(item.returned)",
                    ])
                item.batch.settle(.failed("returned by the broker: \(item.returnReason)"))
            } else {
                item.batch.settle(.written)
            }
        }
    }
}
