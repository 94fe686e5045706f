import Logging
package import RouterCore
import RouterSupport
import Synchronization

/// A disk-buffered output's source: an appender thread moves batches from the output's queue into the
/// ``DiskBuffer`` (answering their senders once they are durable, per `sync`), and the output's driver takes them
/// from the buffer.
///
/// The queue stays in front, so that the receiving thread never waits for the disk: it hands a batch over under
/// one lock, as for any output.
package final class BufferedSource: OutputSource, @unchecked Sendable {
    // Safe to share: `appender` is started once before the driver runs and joined after it; the rest is
    // immutable or synchronized by the buffer and the queue.
    package let buffer: DiskBuffer
    private let front: OutputQueue
    private let context: StageContext
    private let drainNanos: Int64
    private let droppedFull: Counter
    private var appender: WorkerThread?

    /// How often settlements are written to the ledger (at most): the window of entries an unclean stop can
    /// deliver twice.
    package static let checkpointInterval: Duration = .milliseconds(100)

    /// Longest the appender waits to gather more entries into one append while they flow.
    static let gatherNanos: Int64 = 5_000_000

    package init(buffer: DiskBuffer, front: OutputQueue, context: StageContext) throws(StageError) {
        self.buffer = buffer
        self.front = front
        self.context = context
        drainNanos = try context.options.value(SharedOptions.drainTimeout).nanoseconds
        droppedFull = context.counters.counter("events_dropped", label: "reason", value: "buffer_full")
    }

    /// Starts the appender thread.
    package func start() throws {
        let thread = WorkerThread(name: "buf-\(context.name)") { [self] in runAppender() }
        try thread.start()
        appender = thread
    }

    /// After the driver returned: waits for the appender, then writes the last checkpoint and closes the files.
    package func finish() {
        if appender == nil { buffer.closeInput(drainNanos: 0) }
        appender?.join()
        do {
            try buffer.close()
        } catch {
            context.logger.error(
                """
                cannot write the disk buffer's ledger at shutdown; entries written since the last checkpoint may \
                be delivered again
                """, metadata: ["buffer": "\(buffer.directory)", "error": "\(error)"])
        }
        let snapshot = buffer.snapshot
        if snapshot.events > 0 {
            context.logger.notice(
                "disk buffer keeps entries for the next start",
                metadata: [
                    "buffer": "\(buffer.directory)", "events_kept": "\(snapshot.events)",
                    "bytes": "\(snapshot.bytes)",
                ])
        }
    }

    // MARK: OutputSource

    package func take(maxEvents: Int, minEvents: Int, timeout: Duration?) -> OutputQueue.Take {
        let taken = buffer.take(maxEvents: maxEvents, minEvents: minEvents, timeout: timeout)
        if let failure = buffer.failure, !readFailureReported.exchange(true, ordering: .relaxed) {
            // /health and /stats say so too (the buffer's report carries it).
            context.logger.error(
                "disk buffer cannot be read; its entries stay on disk until routerd restarts",
                metadata: [
                    "buffer": "\(buffer.directory)", "error": "\(failure)", "events_kept": "\(buffer.report.events)",
                ])
        }
        return taken
    }

    package func waitUntilClosed(deadlineNanos: Int64) -> Bool {
        buffer.waitUntilClosed(deadlineNanos: deadlineNanos)
    }

    package var isClosed: Bool { buffer.isInputClosed }

    package var keepsUnsettled: Bool { true }

    // MARK: The appender

    /// Whether a read failure was logged (once).
    private let readFailureReported = Atomic<Bool>(false)

    // The appender thread's own state.
    private var awaitingSync: [Batch] = []
    private var lastSyncNanos: Int64 = 0
    private var syncFailure: String?
    /// Since when appends find the buffer full (nil while they fit), and when the appender first saw the queue
    /// closed while full.
    private var fullSince: Int64?
    private var shutdownSeenNanos: Int64?

    /// Syncs what was appended, then answers the senders of the batches that waited for it.
    private func syncNow() {
        do {
            try buffer.sync()
            if syncFailure != nil {
                syncFailure = nil
                context.logger.notice("disk buffer syncs again", metadata: ["buffer": "\(buffer.directory)"])
            }
        } catch {
            // The entries are written, but may not survive a power cut; the senders still hear (the data is in
            // the page cache, as with sync: none), and the log says so.
            if syncFailure == nil {
                context.logger.error(
                    "cannot sync the disk buffer; entries may not survive a power cut",
                    metadata: ["buffer": "\(buffer.directory)", "error": "\(error)"])
            }
            syncFailure = "\(error)"
        }
        for batch in awaitingSync { batch.settle(.written) }
        awaitingSync.removeAll(keepingCapacity: true)
        lastSyncNanos = monotonicNanos()
    }

    private func runAppender() {
        let settings = buffer.settings
        lastSyncNanos = monotonicNanos()
        var lastCheckpointNanos = lastSyncNanos
        var busy = false
        let checkpointNanos = BufferedSource.checkpointInterval.nanoseconds
        while true {
            let now = monotonicNanos()
            var due = now + 1_000_000_000
            if case .interval(let interval) = settings.sync, !awaitingSync.isEmpty {
                due = min(due, lastSyncNanos + interval.nanoseconds)
            }
            if buffer.needsCheckpoint { due = min(due, lastCheckpointNanos + checkpointNanos) }
            // While entries flow, wait for a few thousand (or 5 ms) per append: fewer wake-ups and larger writes. When
            // idle, the first entry wakes the appender at once.
            let flowing = busy && due - now > BufferedSource.gatherNanos
            let taken = front.take(
                maxEvents: 8192, minEvents: flowing ? 2048 : 1,
                timeout: .nanoseconds(max(0, flowing ? BufferedSource.gatherNanos : due - now)))
            if case .batches = taken { busy = true } else { busy = false }
            var closed = false
            switch taken {
            case .batches(let batches):
                if append(batches) {
                    if settings.acknowledge == .whenBuffered { awaitingSync += batches }
                    switch settings.sync {
                    case .everyBatch: syncNow()
                    case .none:
                        for batch in awaitingSync { batch.settle(.written) }
                        awaitingSync.removeAll(keepingCapacity: true)
                    case .interval: break
                    }
                }
            case .timedOut: break
            case .closed: closed = true
            }
            let after = monotonicNanos()
            if case .interval(let interval) = settings.sync, !awaitingSync.isEmpty,
                closed || after - lastSyncNanos >= interval.nanoseconds
            {
                syncNow()
            }
            if closed && !awaitingSync.isEmpty { syncNow() }
            if buffer.needsCheckpoint && (closed || after - lastCheckpointNanos >= checkpointNanos) {
                checkpoint()
                lastCheckpointNanos = after
            }
            if closed { break }
        }
        buffer.closeInput(drainNanos: drainNanos)
    }

    private func checkpoint() {
        do {
            try buffer.checkpoint()
        } catch {
            context.logger.error(
                "cannot write the disk buffer's ledger; settled entries stay on disk until it works",
                metadata: ["buffer": "\(buffer.directory)", "error": "\(error)"])
        }
    }

    /// Appends, waiting for room under `when_full: block`; returns whether the batches are in the buffer (false:
    /// dropped, counted and their senders told).
    private func append(_ batches: [Batch]) -> Bool {
        while true {
            let result: DiskBuffer.AppendResult
            do {
                result = try buffer.append(batches)
            } catch {
                result = .full("\(error)")
            }
            guard case .full(let reason) = result else {
                if fullSince != nil {
                    fullSince = nil
                    context.logger.notice("disk buffer has room again", metadata: ["buffer": "\(buffer.directory)"])
                }
                return true
            }
            let events = batches.reduce(0) { $0 + $1.count }
            let shuttingDown = front.isClosed
            // At shutdown, a full buffer waits drain_timeout in all (not per batch) before it drops.
            let waitedTooLong =
                fullSince.map { monotonicNanos() - max($0, shutdownSeenNanos ?? $0) >= drainNanos } ?? false
            if shuttingDown && shutdownSeenNanos == nil { shutdownSeenNanos = monotonicNanos() }
            if buffer.settings.whenFull == .dropNewest || (shuttingDown && waitedTooLong) {
                droppedFull.add(events)
                buffer.countDroppedFull(events)
                context.logger.error(
                    "disk buffer full; entries dropped",
                    metadata: ["buffer": "\(buffer.directory)", "reason": "\(reason)", "events_lost": "\(events)"])
                for batch in batches { batch.settle(.failed("dropped: disk buffer full (\(reason))")) }
                return false
            }
            if fullSince == nil {
                fullSince = monotonicNanos()
                context.logger.warning(
                    "disk buffer full; waiting for the output to make room",
                    metadata: ["buffer": "\(buffer.directory)", "reason": "\(reason)", "events_waiting": "\(events)"])
            }
            // What was appended before waits for no one: sync it, so that its senders hear.
            if !awaitingSync.isEmpty { syncNow() }
            checkpoint()
            buffer.waitForRoom(deadlineNanos: monotonicNanos() + 100_000_000)
        }
    }
}
