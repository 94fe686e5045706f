import Logging
import RouterCore
import RouterSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The postgres output's writer, on the output's own thread: inserts each group with one statement per
/// `batch_max_events` rows, finds the rows the database refuses (they go to `rejected`), and says what failed; the
/// driver retries with backoff, reports the outage and drains at shutdown.
struct PostgresWriter: OutputWriter {
    private let context: StageContext
    private let settings: PostgresSettings
    private let rejectedPort: Int
    private let reasons: [Reason]
    private let rejectedCounters: [Counter]
    private let inserted: Counter
    private let statements: Counter
    private let retries: Counter
    private let reconnects: Counter
    private let unknownOutcome: Counter

    private var session: PostgresSession?
    private var connectedBefore = false
    /// The seed columns last said to be missing from the table, so that a reconnect does not say it again.
    private var loggedSkipped: [String] = []
    /// The group being inserted: what is done stays done when a later statement of it fails and it is given again.
    private var current: (id: UInt64, rows: PendingRows)?

    init(context: StageContext, settings: PostgresSettings) {
        self.context = context
        self.settings = settings
        rejectedPort = context.ports.port(named: "rejected") ?? 1
        reasons = PostgresOutput.rejectReasons.map { Reason($0) }
        rejectedCounters = PostgresOutput.rejectReasons.map {
            context.counters.counter("rejected", label: "reason", value: $0)
        }
        inserted = context.counters.counter("inserted")
        statements = context.counters.counter("insert_statements")
        retries = context.counters.counter("retries")
        reconnects = context.counters.counter("reconnects")
        unknownOutcome = context.counters.counter("unknown_outcome")
    }

    var outageMetadata: Logger.Metadata {
        ["url": "\(settings.url.masked)", "table": "\(settings.table.displayName)"]
    }

    func healthReason(_ error: String) -> String {
        "cannot insert into \(settings.table.displayName) at \(settings.url.masked): \(error)"
    }

    /// Connects and sets the table up.
    mutating func open() throws {
        _ = try readySession()
    }

    mutating func close() {
        session?.close()
        session = nil
    }

    mutating func write(_ group: WriteGroup) throws -> WriteOutcome {
        if current?.id != group.id {
            let rows = PendingRows(batches: group.batches, chunk: settings.batchMaxEvents)
            for (index, count) in rows.localRejectCounts.enumerated() where count > 0 {
                rejectedCounters[index].add(count)
            }
            current = (group.id, rows)
        }
        guard var rows = current?.rows else { return .retry("no rows") }
        defer { current?.rows = rows }
        do {
            let session = try readySession()
            try insert(&rows, using: session)
        } catch {
            if case .connection = error.kind { throw error }
            // The statement itself was refused (no table, no permission): set the session up again next time.
            session?.invalidateSetUp()
            return .retry(error.message)
        }
        current = nil
        var refusals: [Refusal] = []
        for (batch, rejections) in rows.rejections.enumerated() {
            for rejection in rejections {
                refusals.append(
                    Refusal(
                        batch: batch, event: rejection.event, reason: reasons[rejection.reason],
                        detail: rejection.detail, offset: rejection.offset))
            }
        }
        return refusals.isEmpty ? .written : .refused(refusals, port: rejectedPort)
    }

    /// Inserts every range still to do, with the values cast in Swift to the table's column types: a row whose
    /// value a column cannot take goes to `rejected` before anything is sent. A range the database still refuses
    /// for a row's sake (a constraint) is split in halves until the refused rows stand alone. Each statement
    /// commits on its own, so what has been inserted stays inserted when a later statement fails.
    private func insert(_ rows: inout PendingRows, using session: PostgresSession) throws(PostgresFailure) {
        guard let plan = session.plan else {
            throw PostgresFailure(kind: .statement, message: "the session is not set up")
        }
        let badValue = PostgresOutput.rejectReasons.firstIndex(of: "bad_value") ?? 0
        while let range = rows.todo.popLast() {
            let (values, refusedNow) = rows.values(range, plan: plan, reason: badValue)
            if refusedNow > 0 { rejectedCounters[badValue].add(refusedNow) }
            guard !values.rows.isEmpty else { continue }
            statements.add()
            do {
                try session.insert(
                    values.bindings(), deadline: monotonicNanos() + settings.writeTimeout.nanoseconds)
                rows.inserted += values.rows.count
                inserted.add(values.rows.count)
            } catch let failure where failure.kind == .rows {
                if values.rows.count == 1 {
                    rows.reject(row: values.rows[0], reason: 0, detail: failure.message)
                    rejectedCounters[0].add()
                } else {
                    let middle = values.rows[values.rows.count / 2]
                    rows.todo.append(middle..<range.upperBound)
                    rows.todo.append(range.lowerBound..<middle)
                }
            } catch {
                if error.outcomeUnknown { unknownOutcome.add(values.rows.count) }
                rows.todo.append(range)
                retries.add()
                throw error
            }
        }
    }

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
            do {
                session = try PostgresSession.connect(
                    to: settings.url, tls: settings.tlsContext, tlsFiles: settings.tlsFiles,
                    connectTimeout: settings.connectTimeout,
                    deadline: monotonicNanos() + settings.connectTimeout.nanoseconds)
            } catch {
                retries.add()
                throw error
            }
            if connectedBefore { reconnects.add() }
            connectedBefore = true
            self.session = session
        }
        if session.plan == nil {
            do {
                try session.setUp(
                    table: settings.table, createTable: settings.createTable,
                    deadline: monotonicNanos() + settings.writeTimeout.nanoseconds)
            } catch {
                retries.add()
                if case .connection = error.kind {
                    session.close()
                    self.session = nil
                }
                throw error
            }
            context.logger.info(
                "connected", metadata: ["url": "\(settings.url.masked)", "table": "\(settings.table.displayName)"])
            if let skipped = session.plan?.skipped, skipped != loggedSkipped {
                loggedSkipped = skipped
                if !skipped.isEmpty {
                    context.logger.notice(
                        "the table lacks some of the seed's columns; they are not filled",
                        metadata: [
                            "table": "\(settings.table.displayName)", "columns": "\(skipped.joined(separator: ", "))",
                        ])
                }
            }
        }
        return session
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
    /// Rows already refused (by a cast, or by the database), skipped when a range is sent again.
    var refused: [Bool] = []
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
        let firstLocal = PostgresOutput.rejectReasons.firstIndex(of: "not_utf8") ?? 1
        for (batchIndex, batch) in batches.enumerated() {
            for (eventIndex, event) in batch.events.enumerated() {
                let result = batch.withBytes(of: event) { JSONEntryScanner.scan($0, required: anyObject) }
                let problem: Int?
                switch result.problem {
                case .notUTF8: problem = 0
                case .notJSON: problem = 1
                case .notObject: problem = 2
                // A known field of another type than routerd's own entries use (`"sequence":"abc"`) is still a
                // JSON object: the columns' casts decide.
                case .wrongType, .missingField, nil: problem = nil
                }
                if let problem {
                    rejections[batchIndex].append(
                        Rejection(
                            event: eventIndex, reason: firstLocal + problem, offset: result.problemOffset,
                            detail: problems[problem] + " at byte \(result.problemOffset)"))
                    localRejectCounts[firstLocal + problem] += 1
                    continue
                }
                origin.append((batchIndex, eventIndex))
                entries.append(batch.text(of: event))
                micros.append(batch.arrivalNanos(of: event) / 1000)
            }
        }
        refused = [Bool](repeating: false, count: entries.count)
        var start = 0
        var ranges: [Range<Int>] = []
        while start < entries.count {
            let end = min(entries.count, start + chunk)
            ranges.append(start..<end)
            start = end
        }
        todo = ranges.reversed()
    }

    /// The values of the rows of `range` not refused yet, cast for `plan`; a row whose value a column cannot take
    /// is refused (for `reason`, with a detail naming the column) and left out. Also says how many were refused.
    mutating func values(_ range: Range<Int>, plan: InsertPlan, reason: Int) -> (RowValues, refused: Int) {
        var refusedNow = 0
        var values = RowValues(plan: plan, capacity: range.count)
        let reader = plan.fields.isEmpty ? nil : JSONFieldReader(paths: plan.fields.map(\.path))
        for row in range where !refused[row] {
            var problem: String?
            if let reader {
                problem = entries[row].withUTF8 { utf8 in
                    values.append(fields: reader.read(UnsafeRawBufferPointer(utf8)), in: UnsafeRawBufferPointer(utf8))
                }
            }
            if let problem {
                reject(row: row, reason: reason, detail: problem)
                refusedNow += 1
                continue
            }
            values.rows.append(row)
            if plan.usesEntry { values.entries.append(entries[row]) }
            if plan.usesReceivedAt { values.micros.append(micros[row]) }
        }
        return (values, refusedNow)
    }

    mutating func reject(row: Int, reason: Int, detail: String) {
        refused[row] = true
        let (batch, event) = origin[row]
        rejections[batch].append(Rejection(event: event, reason: reason, offset: -1, detail: detail))
    }
}

/// The values of some rows for one ``InsertPlan``, column by column: its bind parameters.
struct RowValues {
    let plan: InsertPlan
    /// Which row of ``PendingRows`` each value belongs to.
    var rows: [Int] = []
    /// For each field column, its text in each row ("" where NULL).
    var fields: [[String]]
    /// For each 63 field columns, a bit per column set where the value is NULL.
    var nulls: [[Int64]]
    var entries: [String] = []
    var micros: [Int64] = []

    init(plan: InsertPlan, capacity: Int) {
        self.plan = plan
        fields = [[String]](repeating: [], count: plan.fields.count)
        nulls = [[Int64]](
            repeating: [], count: (plan.fields.count + InsertPlan.flagsPerMask - 1) / InsertPlan.flagsPerMask)
        rows.reserveCapacity(capacity)
    }

    /// Casts one row's field values and appends them; the refusal (naming the column) when one cannot be cast, and
    /// then nothing is appended.
    mutating func append(fields found: [JSONValue?], in bytes: UnsafeRawBufferPointer) -> String? {
        var texts: [String?] = []
        texts.reserveCapacity(found.count)
        for (index, value) in found.enumerated() {
            let column = plan.columns[plan.fields[index].column]
            switch column.cast.convert(value, in: bytes) {
            case .success(let text): texts.append(text)
            case .failure(let refusal):
                return "column \(column.name) (\(column.type)): \(refusal.why)"
            }
        }
        var masks = [Int64](repeating: 0, count: nulls.count)
        for (index, text) in texts.enumerated() {
            fields[index].append(text ?? "")
            if text == nil { masks[index / InsertPlan.flagsPerMask] |= 1 << Int64(index % InsertPlan.flagsPerMask) }
        }
        for (index, mask) in masks.enumerated() { nulls[index].append(mask) }
        return nil
    }
}
