import Logging
import RouterConfig
public import RouterCore
import RouterGraph
import RouterSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Runs one output on its own thread: the one place where outputs are taken from their queue, buffered, retried,
/// reported when they fail, drained at shutdown, counted and settled.
///
/// What it promises every output and everyone upstream:
/// - **Order.** Groups are written oldest first; a group given again (after ``WriteOutcome/retry(_:)`` or a lost
///   connection) goes before anything newer.
/// - **One retry policy.** Capped exponential backoff with jitter (``Backoff``), capped by
///   `reconnect_backoff_max`, reset by the first success.
/// - **One outage report.** `/health` says `degraded` with the writer's reason for as long as the output fails;
///   the log gets one line when an outage starts (and when its reason changes), naming what is held, and one when
///   it ends, saying for how long.
/// - **A drain deadline.** At shutdown an output that works writes everything; one that fails keeps trying for
///   `drain_timeout` (counted from the later of the shutdown and the failure), then counts what it still holds and
///   what is queued as dropped with the output's reason, and says so.
/// - **Counters.** `events_out{port="default"}` for what was written, `events_dropped{reason}` for what was not.
/// - **Settling.** Every batch taken is settled exactly once: written, or failed with the reason.
public struct OutputDriver<Writer: OutputWriter> {
    private var writer: Writer
    private let traits: OutputTraits
    private let queue: any OutputSource
    private let context: StageContext
    private let drainTimeoutNanos: Int64
    private let holdLimit: Int
    private let written: Counter

    private var isOpen = false
    /// Taken and not yet grouped (buffering by count and age).
    private var unsent: [Batch] = []
    private var unsentEvents = 0
    private var oldestUnsentNanos: Int64 = 0
    /// Grouped and not written yet, by id: groups given again come first.
    private var toWrite: [WriteGroup] = []
    private var toWriteEvents = 0
    /// Written, waiting for their confirmation, with when they were written.
    private var pending: [(group: WriteGroup, writtenAtNanos: Int64)] = []
    private var pendingEvents = 0
    private var nextGroupID: UInt64 = 0
    private var nextEventNumber: UInt64 = 0
    /// The queue said closed and empty.
    private var drained = false
    /// When the driver first saw the queue closed.
    private var closedAtNanos: Int64?
    /// When the shutdown drain began to count: the first moment after the queue closed that the output failed.
    /// It does not move again when a reconnect succeeds and fails anew, so `drain_timeout` always ends.
    private var drainStartNanos: Int64?
    /// What failed last, while the output fails.
    private var failure: FailureKind?
    private var outage: OutageReporter
    private var lastTickNanos: Int64 = 0
    private var lost = 0

    private enum FailureKind { case cannotOpen, lost, refused }

    /// Makes a driver for `writer`, fed by `queue`, reading the shared output options from `context` and the rest
    /// from `traits`.
    public init(writer: Writer, traits: OutputTraits, queue: any OutputSource, context: StageContext) throws(StageError)
    {
        self.writer = writer
        self.traits = traits
        self.queue = queue
        self.context = context
        outage = OutageReporter(
            context: context, backoffMax: try context.options.value(SharedOptions.reconnectBackoffMax))
        drainTimeoutNanos = try context.options.value(SharedOptions.drainTimeout).nanoseconds
        holdLimit = try context.options.value(SharedOptions.queueMaxEvents)
        written = context.counters.counter("events_out", label: "port", value: "default")
    }

    /// Builds the output's writer on this thread and drives it until the queue is closed and everything taken is
    /// settled. Throws when the output stopped for good (an error with ``StageError/Code/stopped``), after
    /// counting and failing what it held; the caller fails what is still queued.
    public static func run<Output: OutputStage>(_ output: Output, queue: any OutputSource, context: StageContext) throws
    where Output.Writer == Writer {
        var driver = try OutputDriver(
            writer: try output.makeWriter(), traits: output.traits, queue: queue, context: context)
        try driver.run()
    }

    /// Drives the writer until the queue is closed and everything taken is settled.
    public mutating func run() throws {
        defer { writer.close() }
        lastTickNanos = monotonicNanos()
        if traits.opensAtStart { try open() }
        while !(drained && heldEvents == 0 && pending.isEmpty) {
            if shutdownDrainIsOver() {
                giveUp()
                break
            }
            let mayAttempt = outage.mayAttempt
            if mayAttempt && !isOpen && (heldEvents > 0 || outage.isFailing || !pending.isEmpty) { try open() }
            if mayAttempt && isOpen { try writeDue() }
            let tookAny = try takeOrWait()
            if isOpen && !pending.isEmpty {
                try collect(timeout: tookAny || canWriteNow ? .zero : .milliseconds(5))
            }
        }
        if lost > 0 {
            context.logger.error(traits.wording.stoppedWithLosses, metadata: metadata(["events_lost": "\(lost)"]))
        }
    }

    private var heldEvents: Int { unsentEvents + toWriteEvents }

    /// Whether a group waits that could be written at once (open, not failing, room in the pending window).
    private var canWriteNow: Bool {
        !toWrite.isEmpty && isOpen && !outage.isFailing && pendingEvents < traits.maxPendingEvents
    }

    // MARK: Opening and writing

    private mutating func open() throws {
        do {
            try writer.open()
        } catch {
            try stopIfFatal(error)
            fail(.cannotOpen, "\(error)")
            return
        }
        isOpen = true
        // Reconnected with nothing to write: the outage is over. With entries held, it is over once one of them
        // is written (a server that takes connections and drops them at the first write is still an outage).
        if failure != nil && failure != .refused && heldEvents == 0 && pending.isEmpty {
            recover(traits.wording.reopened)
        }
    }

    /// Groups what is due and writes every group in order, as far as the pending window allows.
    private mutating func writeDue() throws {
        let now = monotonicNanos()
        if !unsent.isEmpty
            && (unsentEvents >= traits.flushCount || closedAtNanos != nil || outage.isFailing
                || now - oldestUnsentNanos >= traits.flushInterval.nanoseconds)
        {
            groupUnsent()
        }
        while !toWrite.isEmpty && pendingEvents < traits.maxPendingEvents {
            let group = toWrite.removeFirst()
            toWriteEvents -= group.eventCount
            let startedNanos = monotonicNanos()
            let outcome: WriteOutcome
            do {
                outcome = try writer.write(group)
            } catch {
                reinsert(group)
                try connectionLost(error)
                return
            }
            guard answer(group, outcome, writtenAtNanos: startedNanos) else { return }
        }
    }

    /// Handles one answer; returns false when the group is to be given again (an outage).
    private mutating func answer(_ group: WriteGroup, _ outcome: WriteOutcome, writtenAtNanos: Int64) -> Bool {
        switch outcome {
        case .pending:
            pending.append((group, writtenAtNanos))
            pendingEvents += group.eventCount
            return true
        case .retry(let reason):
            reinsert(group)
            fail(.refused, reason)
            return false
        case .written:
            settle(group, refusals: [], port: nil)
        case .refused(let refusals, let port):
            settle(group, refusals: refusals, port: port)
        case .dropped(let reason, let detail):
            context.counters.dropped(group.eventCount, reason: reason)
            context.health.set(.degraded(detail))
            context.logger.error(
                "write failed; entries dropped",
                metadata: metadata(["error": "\(detail)", "events_lost": "\(group.eventCount)"]))
            for batch in group.batches { batch.settle(.failed(detail)) }
            return true
        }
        if let failure, writtenAtNanos >= outage.lastFailureNanos {
            recover(failure == .refused ? traits.wording.accepted : traits.wording.reopened)
        } else if failure == nil {
            outage.recovered(traits.wording.accepted, metadata: [:])
        }
        return true
    }

    /// Reads the confirmations that have arrived for pending groups.
    private mutating func collect(timeout: Duration) throws {
        let confirmations: [Confirmation]
        do {
            confirmations = try writer.collect(timeout: timeout)
        } catch {
            try connectionLost(error)
            return
        }
        for confirmation in confirmations {
            guard let index = pending.firstIndex(where: { $0.group.id == confirmation.group }) else { continue }
            let (group, writtenAt) = pending.remove(at: index)
            pendingEvents -= group.eventCount
            _ = answer(
                group, confirmation.outcome == .pending ? .retry("confirmed as pending") : confirmation.outcome,
                writtenAtNanos: writtenAt)
        }
    }

    /// A write, collect or tick threw: the connection is gone; everything pending is written again after a reopen.
    private mutating func connectionLost(_ error: any Error) throws {
        try stopIfFatal(error)
        writer.close()
        isOpen = false
        for (group, _) in pending { reinsert(group) }
        pending.removeAll()
        pendingEvents = 0
        fail(.lost, "\(error)")
    }

    private mutating func groupUnsent() {
        var start = 0
        while start < unsent.count {
            var end = start
            var events = 0
            while end < unsent.count && (end == start || events + unsent[end].count <= traits.maxGroupEvents) {
                events += unsent[end].count
                end += 1
            }
            let group = WriteGroup(
                id: nextGroupID, batches: Array(unsent[start..<end]), firstEventNumber: nextEventNumber)
            nextGroupID += 1
            nextEventNumber += UInt64(events)
            toWrite.append(group)
            toWriteEvents += events
            start = end
        }
        unsent.removeAll(keepingCapacity: true)
        unsentEvents = 0
    }

    /// Puts a group back to be written again, in id order, before anything newer.
    private mutating func reinsert(_ group: WriteGroup) {
        var again = group
        again.attempt += 1
        let index = toWrite.firstIndex { $0.id > group.id } ?? toWrite.endIndex
        toWrite.insert(again, at: index)
        toWriteEvents += group.eventCount
    }

    /// Settles a group that was answered for good: refused events go to `port` (or are counted as dropped), the
    /// rest count as written.
    private func settle(_ group: WriteGroup, refusals: [Refusal], port: Int?) {
        guard !refusals.isEmpty else {
            written.add(group.eventCount)
            for batch in group.batches { batch.settle(.written) }
            return
        }
        // Each refused event once, and only events the group has: what is written is the rest.
        var byBatch = [[Refusal]](repeating: [], count: group.batches.count)
        var seen = Set<[Int]>()
        for refusal in refusals
        where refusal.batch >= 0 && refusal.batch < group.batches.count && refusal.event >= 0
            && refusal.event < group.batches[refusal.batch].count
            && seen.insert([refusal.batch, refusal.event]).inserted
        {
            byBatch[refusal.batch].append(refusal)
        }
        written.add(group.eventCount - seen.count)
        for (index, batch) in group.batches.enumerated() {
            let refused = byBatch[index]
            guard !refused.isEmpty else {
                batch.settle(.written)
                continue
            }
            if let port {
                var events: [Event] = []
                var details = batch.details
                events.reserveCapacity(refused.count)
                for refusal in refused.sorted(by: { $0.event < $1.event }) {
                    var event = batch.events[refusal.event]
                    event.reason = refusal.reason
                    event.reasonOffset = refusal.offset
                    event.detail = Int32(details.count)
                    details.append(refusal.detail)
                    events.append(event)
                }
                var rejected = batch.with(events: events)
                rejected.details = details
                // Before settling: whoever waits on the batch's trackers hears once the port's outputs wrote too.
                context.ports.emit(rejected, port: port)
                batch.settle(.written)
            } else {
                for refusal in refused { context.counters.dropped(1, reason: refusal.reason.name) }
                batch.settle(.failed(refused[0].detail))
            }
        }
    }

    // MARK: Taking

    /// Takes from the queue when the output may, or waits for the next thing to do; returns whether it took any.
    private mutating func takeOrWait() throws -> Bool {
        let now = monotonicNanos()
        var dueNanos: Int64?
        func due(_ nanos: Int64) { dueNanos = min(dueNanos ?? nanos, nanos) }
        // While failing, nothing is written before the next attempt: the flush deadline does not matter until then.
        if !unsent.isEmpty && !outage.isFailing { due(oldestUnsentNanos + traits.flushInterval.nanoseconds) }
        if outage.isFailing { due(outage.retryAtNanos) }
        if let tick = traits.tickInterval, isOpen, pending.isEmpty { due(lastTickNanos + tick.nanoseconds) }
        if !pending.isEmpty || canWriteNow { due(now) }
        if let drainStart = drainStartNanos { due(drainStart + drainTimeoutNanos) }
        let failing = outage.isFailing
        let mayTake =
            !drained && pendingEvents < traits.maxPendingEvents
            && (!failing || (traits.whileFailing == .holdAndKeepTaking && !queue.keepsUnsettled))
        if !mayTake {
            if drained || closedAtNanos != nil {
                sleep(until: dueNanos ?? now)
            } else if queue.waitUntilClosed(deadlineNanos: dueNanos ?? Int64.max) {
                noteClosed()
            }
            try tickIfDue()
            return false
        }
        let minEvents = failing ? Int.max : unsent.isEmpty ? 1 : max(1, traits.flushCount - unsentEvents)
        let maxEvents =
            pending.isEmpty && traits.maxPendingEvents >= Int.max / 2
            ? max(traits.flushCount, traits.maxGroupEvents)
            : max(1, min(max(traits.flushCount, traits.maxGroupEvents), traits.maxPendingEvents - pendingEvents))
        let timeout = dueNanos.map { Duration.nanoseconds(max(0, $0 - now)) }
        switch queue.take(maxEvents: maxEvents, minEvents: minEvents, timeout: timeout) {
        case .batches(let batches):
            for batch in batches {
                if unsent.isEmpty { oldestUnsentNanos = monotonicNanos() }
                unsent.append(batch)
                unsentEvents += batch.count
            }
            if failing && heldEvents > holdLimit { dropOldestHeld() }
            return true
        case .timedOut:
            try tickIfDue()
            return false
        case .closed:
            drained = true
            noteClosed()
            return false
        }
    }

    private mutating func tickIfDue() throws {
        // With writes pending, collect() keeps the connection serviced; a tick then could swallow their answers.
        guard let interval = traits.tickInterval, isOpen, pending.isEmpty else { return }
        let now = monotonicNanos()
        guard now - lastTickNanos >= interval.nanoseconds else { return }
        lastTickNanos = now
        do {
            try writer.tick()
        } catch {
            try connectionLost(error)
        }
    }

    private mutating func noteClosed() {
        if closedAtNanos == nil { closedAtNanos = monotonicNanos() }
    }

    // MARK: Outages

    private mutating func fail(_ kind: FailureKind, _ reason: String) {
        let message: Logger.Message
        switch kind {
        case .cannotOpen: message = traits.wording.cannotOpen
        case .lost: message = traits.wording.lost
        case .refused: message = traits.wording.refused
        }
        failure = kind
        let lines = metadata(["held_events": "\(heldEvents + pendingEvents)", "unconfirmed_events": "\(pendingEvents)"])
        outage.failed(message, reason: reason, healthReason: writer.healthReason(reason), metadata: lines)
    }

    private mutating func recover(_ message: Logger.Message) {
        failure = nil
        let lines = metadata(["held_events": "\(heldEvents + pendingEvents)"])
        outage.recovered(message, metadata: lines)
    }

    /// `holdAndKeepTaking`: past `queue_max_events` held, the oldest batches are dropped.
    private mutating func dropOldestHeld() {
        var dropped = 0
        let reason = "dropped: held entries past queue_max_events while writes fail"
        while heldEvents > holdLimit, !toWrite.isEmpty {
            let group = toWrite[0]
            let batch = group.batches[0]
            toWriteEvents -= batch.count
            dropped += batch.count
            batch.settle(.failed(reason))
            if group.batches.count == 1 {
                toWrite.removeFirst()
            } else {
                toWrite[0] = WriteGroup(
                    id: group.id, batches: Array(group.batches.dropFirst()),
                    firstEventNumber: group.firstEventNumber + UInt64(batch.count), attempt: group.attempt)
            }
        }
        while heldEvents > holdLimit, !unsent.isEmpty {
            let batch = unsent.removeFirst()
            unsentEvents -= batch.count
            dropped += batch.count
            batch.settle(.failed(reason))
        }
        guard dropped > 0 else { return }
        context.counters.dropped(dropped, reason: "held_full")
        context.logger.error(
            "dropped held entries while writes fail", metadata: metadata(["events_lost": "\(dropped)"]))
    }

    // MARK: Shutdown

    private mutating func shutdownDrainIsOver() -> Bool {
        if closedAtNanos == nil && queue.isClosed { noteClosed() }
        guard let closedAt = closedAtNanos, outage.isFailing else { return false }
        // A disk buffer keeps what is not written for the next start: no need to wait for the destination.
        if queue.keepsUnsettled { return true }
        let now = monotonicNanos()
        if drainStartNanos == nil { drainStartNanos = max(closedAt, min(now, outage.sinceNanos)) }
        return now - (drainStartNanos ?? now) >= drainTimeoutNanos
    }

    /// Shutting down with the destination still failing after `drain_timeout`: what is held, pending and still
    /// queued is counted as dropped and its senders hear so.
    private mutating func giveUp() {
        let error = outage.reason ?? ""
        if queue.keepsUnsettled {
            let held = heldEvents + pendingEvents
            _ = takeAllHeld()
            context.logger.notice(
                """
                shutting down with the destination unavailable: what is not written stays in the disk buffer \
                for the next start
                """,
                metadata: metadata(["error": "\(error)", "events_kept": "\(held)"]))
            return
        }
        context.logger.error(
            traits.wording.givingUp,
            metadata: metadata([
                "error": "\(error)", "drain_timeout": "\(Units.formatDuration(.nanoseconds(drainTimeoutNanos)))",
            ]))
        let reason = "not written: still unavailable at shutdown (\(error))"
        var batches = takeAllHeld()
        while case .batches(let more) = queue.take(maxEvents: Int.max, minEvents: 1, timeout: .zero) {
            batches += more
        }
        var count = 0
        for batch in batches {
            count += batch.count
            batch.settle(.failed(reason))
        }
        lost += count
        context.counters.dropped(count, reason: traits.wording.unavailableReason)
    }

    /// An error with ``StageError/Code/stopped`` or ``StageError/Code/internalError``: fail what is held and
    /// rethrow, so that the runtime stops the output.
    private mutating func stopIfFatal(_ error: any Error) throws {
        guard let stageError = error as? StageError,
            stageError.code == .stopped || stageError.code == .internalError
        else { return }
        let batches = takeAllHeld()
        // A disk buffer keeps them for the next start.
        if queue.keepsUnsettled { throw stageError }
        let count = batches.reduce(0) { $0 + $1.count }
        context.counters.dropped(count, reason: "output_failed")
        for batch in batches { batch.settle(.failed("output stopped: \(stageError)")) }
        throw stageError
    }

    /// Every batch the driver holds (buffered, to write, pending), oldest first, leaving it holding none.
    private mutating func takeAllHeld() -> [Batch] {
        let batches = unsent + toWrite.flatMap(\.batches) + pending.flatMap(\.group.batches)
        unsent.removeAll()
        unsentEvents = 0
        toWrite.removeAll()
        toWriteEvents = 0
        pending.removeAll()
        pendingEvents = 0
        return batches
    }

    private func metadata(_ extra: Logger.Metadata) -> Logger.Metadata {
        writer.outageMetadata.merging(extra) { _, new in new }
    }

    private func sleep(until deadline: Int64) {
        _ = queue.waitUntilClosed(deadlineNanos: deadline)
        // waitUntilClosed returns at once once the queue is closed: sleep the rest.
        while true {
            let remaining = deadline - monotonicNanos()
            guard remaining > 0 else { return }
            var time = timespec(tv_sec: Int(remaining / 1_000_000_000), tv_nsec: Int(remaining % 1_000_000_000))
            nanosleep(&time, nil)
        }
    }
}

extension OutputStage {
    /// Drives this output with the runtime's ``OutputDriver`` on the calling thread until `queue` is closed and
    /// everything taken is settled (what the runtime runs on each output's thread; tests call it too).
    public func drive(queue: any OutputSource, context: StageContext) throws {
        try OutputDriver<Writer>.run(self, queue: queue, context: context)
    }
}
