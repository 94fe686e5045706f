import Logging
public import RouterCore
import RouterSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `amqp` input: consumes a RabbitMQ queue and acknowledges each message only once every output downstream
/// wrote it.
///
/// Each read of what the socket holds (up to `batch_max_events` messages) is one batch with one delivery tracker.
/// When the tracker settles, the input thread acknowledges the batch's messages (one `basic.ack` with `multiple`,
/// in delivery order), or refuses them with requeue when an output failed; messages that no output took (filtered
/// out) are acknowledged. If the connection breaks, the broker requeues what was not acknowledged and delivers it
/// again: at least once (counted in `redelivered`).
public final class AMQPInput: InputStage {
    /// The `amqp` input declaration.
    public static let declaration = StageDeclaration(
        type: "amqp",
        summary: "Consumes a RabbitMQ queue; acks each message once every output downstream wrote it.",
        options: [
            AMQPStageOptions.url, AMQPStageOptions.urls,
            queue,
            declare,
            AMQPQueueArguments.option,
            prefetch,
            batchMaxEvents,
            AMQPStageOptions.heartbeat, SharedOptions.connectTimeout, SharedOptions.reconnectBackoffMax,
            SharedOptions.drainTimeout,
        ] + AMQPStageOptions.tls,
        counters: [
            CounterDeclaration("received", "Messages delivered by the broker."),
            CounterDeclaration("acked", "Messages acknowledged: written by every output (or routed to none)."),
            CounterDeclaration("requeued", "Messages refused with requeue because an output failed."),
            CounterDeclaration(
                "redelivered",
                "Messages the broker delivered again (their earlier delivery was not acknowledged, for example "
                    + "when the connection broke): they may have been written already (at-least-once)."),
            CounterDeclaration(
                "redelivered_entries",
                "Entries in the messages counted as `redelivered` (more than them when messages hold several "
                    + "entries, `application/x-ndjson`): the bound on copies downstream."),
            CounterDeclaration("reconnects", "Connections made again after a lost one."),
            CounterDeclaration("connect_failures", "Connection attempts that failed."),
            CounterDeclaration(
                "failovers", "Connections made to another broker of `urls` than the one before (after a loss)."),
        ],
        example: StageExample(
            """
            url: "${AMQP_URL}"
            queue: routerd_example_input
            """,
            needs: ["AMQP_URL"],
            send: { entries, environment in
                try AMQPExample.publish(entries, url: environment["AMQP_URL"] ?? "", queue: "routerd_example_input")
            }),
        validate: { options in
            var problems = AMQPStageOptions.problems(options) + AMQPQueueArguments.problems(options)
            if (try? options.value(AMQPInput.declare)) == false,
                ((try? options.value(AMQPQueueArguments.option)) ?? nil) != nil
            {
                problems.append(
                    OptionProblemReport(
                        "'queue_arguments' is set but 'declare' is false: routerd declares nothing, so they would "
                            + "not be used", at: options.locations[AMQPQueueArguments.option.name]))
            }
            return problems
        }
    )

    static let queue = StageOption<String>(
        OptionDeclaration("queue", .string, .required, "The queue to consume."))

    static let declare = StageOption<Bool>(
        OptionDeclaration(
            "declare", .bool, .defaultValue(.bool(true)),
            "Declare the queue (durable) at connect, so that routerd can start before any publisher. Turn off "
                + "when the queue is declared elsewhere with other arguments."))

    static let prefetch = StageOption<Int>(
        OptionDeclaration(
            "prefetch", .integer(1...65535), .defaultValue(.integer(2000)),
            "Most messages delivered and not yet acknowledged. Bounds what is in flight in routerd; too small "
                + "and the round trip to the broker limits the rate. Keep it below the smallest "
                + "queue_max_events downstream so that the input never waits on a full queue."))

    static let batchMaxEvents = StageOption<Int>(
        OptionDeclaration(
            "batch_max_events", .integer(1...65535), .defaultValue(.integer(512)),
            "Most entries in one batch (one read of what has arrived); a message of several entries "
                + "(`application/x-ndjson`, from an output's `batch_per_message`) is never cut, so a batch may "
                + "hold more. Each such message is split into its lines, one entry each, and acknowledged only "
                + "when all of them are written (refused with requeue when any is not)."))

    private let urls: [AMQPURL]
    private let tls: AMQPTLS
    private let queue: String
    private let declare: Bool
    private let queueArguments: [AMQPQueueArgument]
    private let prefetch: Int
    private let batchMax: Int
    private let drainTimeout: Duration
    private let heartbeat: Duration
    private let connectTimeout: Duration
    private let backoffMax: Duration
    private let context: StageContext
    private let stopping = Atomic<Bool>(false)
    private let wake: Wakeup
    private let settled = Mutex<[Settlement]>([])

    /// Reads the options; connecting happens on the input's thread.
    public init(context: StageContext) throws {
        let options = context.options
        urls = try AMQPStageOptions.urls(from: options)
        tls = try AMQPStageOptions.tls(from: options)
        queue = try options.value(AMQPInput.queue)
        declare = try options.value(AMQPInput.declare)
        queueArguments = try AMQPQueueArguments.arguments(options)
        prefetch = try options.value(AMQPInput.prefetch)
        batchMax = try options.value(AMQPInput.batchMaxEvents)
        drainTimeout = try options.value(SharedOptions.drainTimeout)
        heartbeat = try options.value(AMQPStageOptions.heartbeat)
        connectTimeout = try options.value(SharedOptions.connectTimeout)
        backoffMax = try options.value(SharedOptions.reconnectBackoffMax)
        self.context = context
        wake = try Wakeup()
    }

    /// Wakes ``run(_:)``, which stops consuming, waits up to `drain_timeout` for acknowledgements and returns.
    public func requestStop() {
        stopping.store(true, ordering: .relaxed)
        wake.signal()
    }

    /// Consumes until stopped, reconnecting with backoff after a failure.
    public func run(_ emitter: InputEmitter) throws {
        var consumer = Consumer(input: self, emitter: emitter)
        consumer.run()
    }

    /// One batch's fate, reported by its tracker from whichever thread settled it.
    fileprivate struct Settlement {
        let generation: Int
        let lastTag: UInt64
        let outcome: DeliveryOutcome
    }

    /// The input thread's state.
    private struct Consumer {
        /// A delivered batch waiting for its tracker.
        struct Outstanding {
            let generation: Int
            let firstTag: UInt64
            let lastTag: UInt64
            let count: Int
            var outcome: DeliveryOutcome?
        }

        let input: AMQPInput
        let emitter: InputEmitter
        var connection: AMQPConnection?
        var brokers: AMQPBrokers
        var generation = 0
        var everConnected = false
        /// The connection's outages: health, the log lines, the backoff between attempts.
        var outage: OutageReporter
        var outstanding: [Outstanding] = []
        /// Spaces out refusals while outputs keep failing, so the broker does not hand the same messages straight
        /// back in a loop (and healthy outputs do not write them again and again).
        var requeueBackoff: Backoff
        var requeueNotBeforeNanos: Int64 = 0
        var requeueing = false
        var bytes: [UInt8] = []
        let received: Counter
        let acked: Counter
        let requeued: Counter
        let redelivered: Counter
        let redeliveredEntries: Counter
        let reconnects: Counter
        let connectFailures: Counter
        let failovers: Counter

        init(input: AMQPInput, emitter: InputEmitter) {
            self.input = input
            self.emitter = emitter
            brokers = AMQPBrokers(input.urls)
            outage = OutageReporter(context: input.context, backoffMax: input.backoffMax)
            requeueBackoff = Backoff(max: input.backoffMax)
            let counters = input.context.counters
            received = counters.counter("received")
            acked = counters.counter("acked")
            requeued = counters.counter("requeued")
            redelivered = counters.counter("redelivered")
            redeliveredEntries = counters.counter("redelivered_entries")
            reconnects = counters.counter("reconnects")
            connectFailures = counters.counter("connect_failures")
            failovers = counters.counter("failovers")
        }

        mutating func run() {
            while !input.stopping.load(ordering: .relaxed) {
                guard let connection else {
                    connect()
                    continue
                }
                do {
                    try acknowledge(on: connection)
                    if !connection.hasBufferedInput {
                        // Sleep until the broker sends something or a tracker settles (or a heartbeat is due).
                        let heartbeatMillis = Int32(clamping: max(100, input.heartbeat.nanoseconds / 2_000_000))
                        var timeoutMillis = min(1000, heartbeatMillis)
                        if case .failed = outstanding.first?.outcome {
                            let due = (requeueNotBeforeNanos - monotonicNanos() + 999_999) / 1_000_000
                            timeoutMillis = min(timeoutMillis, Int32(clamping: max(1, due)))
                        }
                        input.wake.wait(alsoFor: connection.socketDescriptor, timeoutMillis: timeoutMillis)
                    }
                    try readBatch(from: connection)
                } catch let error as AMQPError {
                    lost(error)
                } catch {
                    lost(AMQPError("\(error)"))
                }
            }
            drain()
        }

        /// Connects, declares, sets the prefetch and starts consuming; on failure, schedules the next attempt.
        mutating func connect() {
            let now = monotonicNanos()
            if !outage.mayAttempt {
                let wait = min(outage.retryAtNanos - now, 1_000_000_000)
                input.wake.wait(alsoFor: -1, timeoutMillis: Int32(clamping: max(1, wait / 1_000_000)))
                return
            }
            do {
                let input = input
                let connected = try brokers.connect { url in
                    let connection = try AMQPConnection(
                        url: url, tls: input.tls, heartbeat: input.heartbeat, timeout: input.connectTimeout)
                    if input.declare { try connection.declareQueue(input.queue, arguments: input.queueArguments) }
                    try connection.setPrefetch(input.prefetch)
                    try connection.consume(queue: input.queue)
                    return connection
                }
                self.connection = connected.connection
                generation += 1
                // Deliveries of the broken connection are back in the queue; their acks would be refused.
                outstanding.removeAll()
                let metadata: Logger.Metadata = [
                    "url": "\(connected.url)", "queue": "\(input.queue)", "prefetch": "\(input.prefetch)",
                ]
                brokers.report(
                    connected, logger: input.context.logger, health: input.context.health,
                    metadata: ["queue": "\(input.queue)"], failovers: failovers)
                if everConnected {
                    reconnects.add()
                    outage.recovered("connected again", metadata: metadata)
                } else {
                    outage.recovered("connected", metadata: metadata)
                    input.context.logger.info("consuming", metadata: metadata)
                }
                everConnected = true
            } catch {
                connectFailures.add()
                outage.failed("cannot connect; retrying", reason: "\(error)", metadata: metadata)
            }
        }

        mutating func lost(_ error: AMQPError) {
            connection = nil
            let url = brokers.inUse
            brokers.lost()
            input.context.health.setNote(brokers.note)
            outage.failed(
                "connection lost; reconnecting (unacknowledged messages are redelivered)", reason: error.message,
                metadata: ["url": "\(url)", "queue": "\(input.queue)"])
        }

        var metadata: Logger.Metadata { ["url": "\(brokers.inUse)", "queue": "\(input.queue)"] }

        /// Reads what has arrived (up to batch_max_events) as one batch and sends it through the graph.
        mutating func readBatch(from connection: AMQPConnection) throws {
            bytes.removeAll(keepingCapacity: true)
            var batch = Batch(receivedAtNanos: wallClockNanos())
            var firstTag: UInt64 = 0
            var lastTag: UInt64 = 0
            var again = 0
            var againEntries = 0
            var messages = 0
            var bodies = bytes
            while batch.count < input.batchMax {
                guard
                    let delivery = try connection.nextDelivery(
                        timeout: .zero, { body in bodies.append(contentsOf: body) })
                else { break }
                let start = batch.bytes.count
                batch.bytes.append(contentsOf: bodies)
                bodies.removeAll(keepingCapacity: true)
                let before = batch.count
                if delivery.holdsEntryLines {
                    // batch_per_message: one entry a line. They share the message's fate: the batch's one tracker
                    // acks it once all are written, or refuses it (requeue) when any is not.
                    appendLines(of: start..<batch.bytes.count, to: &batch)
                } else {
                    batch.events.append(
                        Event(start: Int32(start), count: Int32(batch.bytes.count - start), flags: .tracked))
                }
                messages += 1
                if firstTag == 0 { firstTag = delivery.tag }
                lastTag = delivery.tag
                if delivery.redelivered {
                    again += 1
                    againEntries += batch.count - before
                }
            }
            bytes = bodies
            guard messages > 0 else { return }
            received.add(messages)
            if again > 0 {
                redelivered.add(again)
                redeliveredEntries.add(againEntries)
            }
            guard !batch.isEmpty else {
                // Messages with no entry at all (an empty ndjson body): nothing to write, so acknowledged, in
                // order behind the batches still out.
                outstanding.append(
                    Outstanding(
                        generation: generation, firstTag: firstTag, lastTag: lastTag, count: messages,
                        outcome: .notRouted))
                return
            }
            let generation = generation
            let batchLastTag = lastTag
            outstanding.append(
                Outstanding(generation: generation, firstTag: firstTag, lastTag: batchLastTag, count: messages))
            let input = input
            let tracker = DeliveryTracker { outcome in
                input.settled.withLock {
                    $0.append(Settlement(generation: generation, lastTag: batchLastTag, outcome: outcome))
                }
                input.wake.signal()
            }
            batch.trackers = [tracker]
            emitter.emit(batch)
        }

        /// The lines of `range` (an `application/x-ndjson` body) as events; empty lines (and a CR before a LF) are
        /// left out.
        func appendLines(of range: Range<Int>, to batch: inout Batch) {
            var lineStart = range.lowerBound
            var index = range.lowerBound
            func line(_ end: Int) {
                var last = end
                if last > lineStart, batch.bytes[last - 1] == UInt8(ascii: "\r") { last -= 1 }
                if last > lineStart {
                    batch.events.append(Event(start: Int32(lineStart), count: Int32(last - lineStart), flags: .tracked))
                }
            }
            while index < range.upperBound {
                if batch.bytes[index] == UInt8(ascii: "\n") {
                    line(index)
                    lineStart = index + 1
                }
                index += 1
            }
            line(range.upperBound)
        }

        /// Acknowledges (or refuses) settled batches in delivery order: one frame per batch.
        mutating func acknowledge(on connection: AMQPConnection) throws {
            let reports = input.settled.withLock { reports -> [Settlement] in
                defer { reports.removeAll(keepingCapacity: true) }
                return reports
            }
            for report in reports where report.generation == generation {
                if let index = outstanding.firstIndex(where: { $0.lastTag == report.lastTag }) {
                    outstanding[index].outcome = report.outcome
                }
            }
            while let first = outstanding.first, let outcome = first.outcome {
                switch outcome {
                case .written, .notRouted:
                    outstanding.removeFirst()
                    try connection.ack(first.lastTag, multiple: true)
                    acked.add(first.count)
                    if requeueing {
                        requeueing = false
                        requeueBackoff.reset()
                        requeueNotBeforeNanos = 0
                        input.context.logger.info("outputs write again", metadata: ["queue": "\(input.queue)"])
                    }
                case .failed(let reason):
                    // While outputs keep failing, each refusal waits longer (capped by reconnect_backoff_max);
                    // the batches behind it wait too, and prefetch stops the broker sending more.
                    let now = monotonicNanos()
                    guard now >= requeueNotBeforeNanos else { return }
                    outstanding.removeFirst()
                    try connection.nack(first.lastTag, multiple: true, requeue: true)
                    requeued.add(first.count)
                    requeueNotBeforeNanos = now + requeueBackoff.next()
                    if !requeueing {
                        requeueing = true
                        input.context.logger.warning(
                            "an output failed; messages go back to the queue, after a growing pause while it fails",
                            metadata: ["queue": "\(input.queue)", "events": "\(first.count)", "reason": "\(reason)"])
                    }
                }
            }
        }

        /// On stop: wait (bounded) for the outputs to settle what was delivered, acknowledge it, and close.
        mutating func drain() {
            guard let connection else { return }
            let deadline = monotonicNanos() + input.drainTimeout.nanoseconds
            do {
                while !outstanding.isEmpty && monotonicNanos() < deadline {
                    try acknowledge(on: connection)
                    if outstanding.isEmpty { break }
                    input.wake.wait(alsoFor: -1, timeoutMillis: 50)
                }
            } catch {
                input.context.logger.warning(
                    "could not acknowledge on shutdown; the broker delivers those messages again",
                    metadata: ["error": "\(error)"])
            }
            let left = outstanding.reduce(0) { $0 + $1.count }
            if left > 0 {
                input.context.logger.warning(
                    "stopping with unacknowledged messages; the broker delivers them again",
                    metadata: ["queue": "\(input.queue)", "events": "\(left)"])
            }
            connection.close()
            self.connection = nil
        }
    }
}

/// A pipe the input thread sleeps on (with the broker's socket), written to by trackers and by stop.
final class Wakeup: Sendable {
    private let readEnd: Int32
    private let writeEnd: Int32

    init() throws {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw StageError("pipe failed: \(FileDescriptorWriter.describe(errno))") }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        readEnd = ends[0]
        writeEnd = ends[1]
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    /// Wakes a waiting (or the next) ``wait(alsoFor:timeoutMillis:)``. A full pipe already wakes it.
    func signal() {
        var one: UInt8 = 1
        _ = write(writeEnd, &one, 1)
    }

    /// Sleeps until signalled, `other` is readable (when not -1), or the timeout passes; clears the signal.
    func wait(alsoFor other: Int32, timeoutMillis: Int32) {
        var fds = [
            pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0),
            pollfd(fd: other, events: Int16(POLLIN), revents: 0),
        ]
        _ = poll(&fds, other >= 0 ? 2 : 1, timeoutMillis)
        var buffer = [UInt8](repeating: 0, count: 256)
        while read(readEnd, &buffer, buffer.count) > 0 {}
    }
}

/// Publishes entries to a queue (declared first), as the compliance test does with the `amqp` input's example.
enum AMQPExample {
    static func publish(_ entries: [String], url: String, queue: String) throws {
        let connection = try AMQPConnection(url: try AMQPURL(parsing: url), heartbeat: .zero, timeout: .seconds(5))
        defer { connection.close() }
        _ = try connection.declareQueue(queue)
        try connection.enableConfirms()
        var last: UInt64 = 0
        for (index, entry) in entries.enumerated() {
            let id = Array("example-\(index)".utf8)
            last = try id.withUnsafeBytes { idBytes in
                try Array(entry.utf8).withUnsafeBytes { body in
                    try connection.publish(
                        AMQPMessage(
                            exchange: "", routingKey: queue, contentType: "application/json", mandatory: true,
                            messageID: idBytes, body: body))
                }
            }
        }
        let deadline = monotonicNanos() + 10_000_000_000
        var confirmed: UInt64 = 0
        while confirmed < last && monotonicNanos() < deadline {
            // Tags rise: a single ack or a multiple one, the highest tag seen is how far confirms reached.
            if case .ack(let tag, _)? = try connection.poll(timeout: .milliseconds(100)) {
                confirmed = max(confirmed, tag)
            }
        }
        guard confirmed >= last else { throw AMQPError("the broker did not confirm the example's messages") }
    }
}
