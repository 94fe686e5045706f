import Logging
import Router

#if canImport(Glibc)
    import Glibc
#endif

/// The postgres output's loop, on the output's own thread: take up to `batch_max_events` entries, insert them with
/// one statement, find the rows the database refuses, hand those to `rejected`, settle, and retry with backoff
/// while the database fails.
struct PostgresWriter {
    private let context: StageContext
    private let settings: PostgresSettings
    private let queue: OutputQueue
    private let rejectedPort: Int
    private let reasons: [Reason]
    private let rejectedCounters: [Counter]
    private let written: Counter
    private let inserted: Counter
    private let statements: Counter
    private let retries: Counter
    private let reconnects: Counter
    private let unknownOutcome: Counter

    private var session: PostgresSession?
    private var connectedBefore = false
    /// The last failure's message while the database fails; nil while it works.
    private var failure: String?
    private var backoffNanos: Int64 = PostgresWriter.initialBackoffNanos
    /// When the output first saw its queue closed while the database failed.
    private var closedAtNanos: Int64?
    /// Past `drain_timeout` at shutdown: what is left is dropped without trying.
    private var gaveUp = false
    private var lost = 0

    private static let initialBackoffNanos: Int64 = 100_000_000

    init(context: StageContext, settings: PostgresSettings, queue: OutputQueue) {
        self.context = context
        self.settings = settings
        self.queue = queue
        rejectedPort = context.ports.port(named: "rejected") ?? 1
        reasons = PostgresOutput.rejectReasons.map { Reason($0) }
        rejectedCounters = PostgresOutput.rejectReasons.map {
            context.counters.counter("rejected", label: "reason", value: $0)
        }
        written = context.counters.counter("events_out", label: "port", value: "default")
        inserted = context.counters.counter("inserted")
        statements = context.counters.counter("insert_statements")
        retries = context.counters.counter("retries")
        reconnects = context.counters.counter("reconnects")
        unknownOutcome = context.counters.counter("unknown_outcome")
    }

    mutating func run() {
        // Connect at once, so that a wrong password or an unreachable server shows in the log and /health before
        // the first entry arrives.
        connectWhileIdle()
        loop: while true {
            let timeout: Duration? = failure == nil ? nil : .nanoseconds(nextWaitNanos())
            switch queue.take(maxEvents: settings.batchMaxEvents, timeout: timeout) {
            case .batches(let batches): write(batches)
            case .timedOut: connectWhileIdle()
            case .closed: break loop
            }
        }
        session?.close()
        session = nil
        if lost > 0 {
            context.logger.error(
                "stopped with entries that could not be inserted",
                metadata: ["url": "\(settings.url.masked)", "events_lost": "\(lost)"])
        }
    }

    // MARK: Writing

    private mutating func write(_ batches: [Batch]) {
        var rows = PendingRows(batches: batches, chunk: settings.batchMaxEvents)
        for (index, count) in rows.localRejectCounts.enumerated() where count > 0 {
            rejectedCounters[index].add(count)
        }
        while !rows.isDone && !gaveUp {
            do {
                let session = try readySession()
                try insert(&rows, using: session)
                recovered()
            } catch {
                failed(error)
                pauseBeforeRetry()
            }
        }
        finish(rows)
    }

    /// Inserts every range still to do; a range the database refuses for a row's sake is split in halves until the
    /// refused rows stand alone. Each statement commits on its own (autocommit: one round trip), so what has been
    /// inserted stays inserted when a later statement fails.
    private func insert(_ rows: inout PendingRows, using session: PostgresSession) throws(PostgresFailure) {
        while let range = rows.todo.popLast() {
            statements.add()
            do {
                try session.insert(
                    entries: Array(rows.entries[range]), micros: Array(rows.micros[range]),
                    deadline: monotonicNanos() + settings.writeTimeout.nanoseconds)
                rows.inserted += range.count
                inserted.add(range.count)
                written.add(range.count)
            } catch let failure where failure.kind == .rows {
                if range.count == 1 {
                    rows.reject(row: range.lowerBound, reason: 0, detail: failure.message)
                    rejectedCounters[0].add()
                } else {
                    let middle = range.lowerBound + range.count / 2
                    rows.todo.append(middle..<range.upperBound)
                    rows.todo.append(range.lowerBound..<middle)
                }
            } catch {
                if error.outcomeUnknown { unknownOutcome.add(range.count) }
                rows.todo.append(range)
                throw error
            }
        }
    }

    /// Hands each batch's refused entries to `rejected` (keeping its trackers, so that they wait for that write
    /// too), then settles the batch: written once every row is committed or refused, failed when the output gave
    /// up on some.
    private mutating func finish(_ rows: PendingRows) {
        let unresolved = rows.unresolvedPerBatch()
        for (index, batch) in rows.batches.enumerated() {
            let refused = rows.rejections[index]
            if !refused.isEmpty {
                var events: [Event] = []
                var details = batch.details
                events.reserveCapacity(refused.count)
                for rejection in refused.sorted(by: { $0.event < $1.event }) {
                    var event = batch.events[rejection.event]
                    event.reason = reasons[rejection.reason]
                    event.reasonOffset = rejection.offset
                    event.detail = Int32(details.count)
                    details.append(rejection.detail)
                    events.append(event)
                }
                var rejectedBatch = batch.with(events: events)
                rejectedBatch.details = details
                context.ports.emit(rejectedBatch, port: rejectedPort)
            }
            if unresolved[index] > 0 {
                batch.settle(.failed("not inserted: the database was unavailable at shutdown"))
            } else {
                batch.settle(.written)
            }
        }
        let dropped = unresolved.reduce(0, +)
        if dropped > 0 {
            lost += dropped
            context.counters.dropped(dropped, reason: "database_unavailable")
        }
    }

    // MARK: The connection

    /// The session, connecting and setting it up first when needed.
    private mutating func readySession() throws(PostgresFailure) -> PostgresSession {
        if let session, session.isClosed {
            session.close()
            self.session = nil
        }
        let session: PostgresSession
        if let existing = self.session {
            session = existing
        } else {
            session = try PostgresSession.connect(
                to: settings.url, connectTimeout: settings.connectTimeout,
                deadline: monotonicNanos() + settings.connectTimeout.nanoseconds)
            if connectedBefore { reconnects.add() }
            connectedBefore = true
            self.session = session
        }
        if session.insertStatement == nil {
            try session.setUp(
                table: settings.table, createTable: settings.createTable,
                deadline: monotonicNanos() + settings.writeTimeout.nanoseconds)
            context.logger.info(
                "connected", metadata: ["url": "\(settings.url.masked)", "table": "\(settings.table.displayName)"])
        }
        return session
    }

    private mutating func connectWhileIdle() {
        do {
            _ = try readySession()
            recovered()
        } catch {
            failed(error)
        }
    }

    /// Notes a failure: counts it, drops what cannot be reused, and says so in /health (and in the log when it
    /// is new).
    private mutating func failed(_ error: PostgresFailure) {
        retries.add()
        switch error.kind {
        case .connection:
            session?.close()
            session = nil
        case .statement, .rows:
            session?.invalidateSetUp()
        }
        let reason = "cannot insert into \(settings.table.displayName) at \(settings.url.masked): \(error.message)"
        context.health.set(.degraded(reason))
        if failure != error.message {
            context.logger.error(
                "database unavailable; holding entries and retrying",
                metadata: [
                    "url": "\(settings.url.masked)", "table": "\(settings.table.displayName)",
                    "error": "\(error.message)", "queued_events": "\(queue.depth)",
                ])
        }
        failure = error.message
    }

    private mutating func recovered() {
        backoffNanos = PostgresWriter.initialBackoffNanos
        guard failure != nil else { return }
        failure = nil
        context.health.set(.ok)
        context.logger.info("database available again", metadata: ["url": "\(settings.url.masked)"])
    }

    // MARK: Backoff

    /// The next wait: half the backoff plus a random part of the other half, then the backoff doubles (capped).
    private mutating func nextWaitNanos() -> Int64 {
        let half = backoffNanos / 2
        let wait = half + Int64.random(in: 0...max(0, half))
        backoffNanos = min(
            backoffNanos * 2, max(PostgresWriter.initialBackoffNanos, settings.reconnectMaxInterval.nanoseconds))
        return wait
    }

    /// Waits before the next attempt; at shutdown, gives up once `drain_timeout` has passed since the queue closed.
    private mutating func pauseBeforeRetry() {
        var now = monotonicNanos()
        if closedAtNanos == nil && queue.isClosed { closedAtNanos = now }
        if let closedAt = closedAtNanos, now - closedAt >= settings.drainTimeout.nanoseconds {
            giveUp()
            return
        }
        var deadline = now + nextWaitNanos()
        if closedAtNanos == nil {
            // Notice a shutdown during the wait: the drain timeout counts from it.
            if queue.waitUntilClosed(deadlineNanos: deadline) {
                now = monotonicNanos()
                closedAtNanos = now
            }
        }
        if let closedAt = closedAtNanos { deadline = min(deadline, closedAt + settings.drainTimeout.nanoseconds) }
        sleep(until: deadline)
    }

    private mutating func giveUp() {
        gaveUp = true
        context.logger.error(
            "giving up on the database: shutting down and it is still unavailable",
            metadata: [
                "url": "\(settings.url.masked)", "error": "\(failure ?? "")",
                "drain_timeout": "\(Units.formatDuration(settings.drainTimeout))",
            ])
    }

    private func sleep(until deadline: Int64) {
        while true {
            let remaining = deadline - monotonicNanos()
            guard remaining > 0 else { return }
            var time = timespec(tv_sec: Int(remaining / 1_000_000_000), tv_nsec: Int(remaining % 1_000_000_000))
            nanosleep(&time, nil)
        }
    }
}

/// The rows of one take: the entries that can be inserted, the ranges still to insert, and the refusals.
struct PendingRows {
    /// One refused entry.
    struct Rejection {
        var event: Int
        /// Index into ``PostgresOutput/rejectReasons``.
        var reason: Int
        var offset: Int32
        var detail: String
    }

    let batches: [Batch]
    /// For each row: its batch and its event in that batch.
    var origin: [(batch: Int, event: Int)] = []
    var entries: [String] = []
    /// Receive times, in microseconds since the Unix epoch.
    var micros: [Int64] = []
    /// Row ranges still to insert (a stack: the last is next).
    var todo: [Range<Int>] = []
    var rejections: [[Rejection]]
    var inserted = 0
    /// Entries refused before the database saw them, by reason index.
    var localRejectCounts = [Int](repeating: 0, count: PostgresOutput.rejectReasons.count)

    /// Takes the batches' entries, refusing at once those that are not UTF-8 JSON objects (jsonb cannot hold them,
    /// and one of them would fail every statement it is in).
    init(batches: [Batch], chunk: Int) {
        self.batches = batches
        rejections = [[Rejection]](repeating: [], count: batches.count)
        let total = batches.reduce(0) { $0 + $1.count }
        origin.reserveCapacity(total)
        entries.reserveCapacity(total)
        micros.reserveCapacity(total)
        let anyObject = JSONRequiredKeys([])
        let problems = ["not UTF-8", "not JSON", "not a JSON object"]
        for (batchIndex, batch) in batches.enumerated() {
            let receivedMicros = batch.receivedAtNanos / 1000
            for (eventIndex, event) in batch.events.enumerated() {
                let result = batch.withBytes(of: event) { JSONEntryScanner.scan($0, required: anyObject) }
                let reason: Int?
                switch result.problem {
                case .notUTF8: reason = 1
                case .notJSON: reason = 2
                case .notObject: reason = 3
                // A known field of another type than routerd's own entries use (`"sequence":"abc"`) is still a
                // JSON object: the table decides.
                case .wrongType, .missingField, nil: reason = nil
                }
                if let reason {
                    rejections[batchIndex].append(
                        Rejection(
                            event: eventIndex, reason: reason, offset: result.problemOffset,
                            detail: problems[reason - 1] + " at byte \(result.problemOffset)"))
                    localRejectCounts[reason] += 1
                    continue
                }
                origin.append((batchIndex, eventIndex))
                entries.append(batch.text(of: event))
                micros.append(receivedMicros)
            }
        }
        var start = 0
        var ranges: [Range<Int>] = []
        while start < entries.count {
            let end = min(entries.count, start + chunk)
            ranges.append(start..<end)
            start = end
        }
        todo = ranges.reversed()
    }

    var isDone: Bool { todo.isEmpty }

    mutating func reject(row: Int, reason: Int, detail: String) {
        let (batch, event) = origin[row]
        rejections[batch].append(Rejection(event: event, reason: reason, offset: -1, detail: detail))
    }

    /// Rows not inserted nor refused, by batch.
    func unresolvedPerBatch() -> [Int] {
        var counts = [Int](repeating: 0, count: batches.count)
        for range in todo {
            for row in range { counts[origin[row].batch] += 1 }
        }
        return counts
    }
}
