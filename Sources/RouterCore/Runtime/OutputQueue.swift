import RouterSupport

/// What an output's queue does when it is full.
public enum WhenFull: String, Sendable, CaseIterable {
    /// The receiving thread waits until there is room: nothing is dropped inside routerd, and if the wait is long
    /// the kernel's socket buffer fills and drops instead (counted as `kernel_drops` on the input).
    case block
    /// The new batch is dropped and counted as `events_dropped{reason="queue_full"}`; its trackers are failed.
    case dropNewest = "drop_newest"
}

/// The bounded queue in front of an output: the receiving side pushes batches, the output's thread takes them.
///
/// The bound counts events, not batches, so that memory stays bounded whatever the batch sizes. One lock per
/// batch, never per event.
public final class OutputQueue: @unchecked Sendable {
    // Safe to share: `state` is only touched with `lock` held.
    /// What ``take(maxEvents:timeout:)`` gives back.
    public enum Take: Sendable {
        /// One or more batches, oldest first.
        case batches([Batch])
        /// Nothing arrived before the timeout.
        case timedOut
        /// The queue is closed and empty: flush, close and return.
        case closed
    }

    /// The most events the queue holds.
    public let capacity: Int
    /// What a push does when the queue is full.
    public let whenFull: WhenFull

    private static let consumer = 0
    private static let producers = 1
    private let lock = ConditionLock(conditions: 2)
    private let state: UnsafeMutablePointer<QueueState>
    private let droppedQueueFull: Counter
    private let droppedOutputFailed: Counter

    /// Makes a queue holding at most `capacity` events; drops are counted on `counters`.
    public init(capacity: Int, whenFull: WhenFull, counters: StageCounters) {
        self.capacity = max(1, capacity)
        self.whenFull = whenFull
        state = UnsafeMutablePointer<QueueState>.allocate(capacity: 1)
        state.initialize(to: QueueState())
        droppedQueueFull = counters.counter("events_dropped", label: "reason", value: "queue_full")
        droppedOutputFailed = counters.counter("events_dropped", label: "reason", value: "output_failed")
    }

    /// Makes the queue an output's `queue_max_events` and `when_full` options ask for.
    public convenience init(options: StageOptions, counters: StageCounters) throws(StageError) {
        let whenFull = WhenFull(rawValue: try options.value(SharedOptions.whenFull)) ?? .block
        self.init(capacity: try options.value(SharedOptions.queueMaxEvents), whenFull: whenFull, counters: counters)
    }

    deinit {
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Events waiting.
    public var depth: Int { lock.withLock { state.pointee.events } }

    /// Hands a batch to the output. Under `block`, waits for room; under `drop_newest`, drops it when full.
    /// Returns whether the batch was queued; a batch not queued has been counted and its trackers failed.
    ///
    /// The output's thread is woken only when it waits and enough events are queued for it (see
    /// ``take(maxEvents:minEvents:timeout:)``), so a buffering output is not woken for every batch.
    @discardableResult
    public func push(_ batch: Batch) -> Bool {
        guard !batch.isEmpty else { return true }
        for tracker in batch.trackers { tracker.beginDelivery() }
        lock.lock()
        // A batch larger than the whole queue is still accepted once the queue is empty, so it cannot wait forever.
        while state.pointee.events > 0 && state.pointee.events + batch.count > capacity
            && whenFull == .block && !state.pointee.closed && !state.pointee.failed && !state.pointee.shuttingDown
        {
            // A consumer waiting for more than fits would never be woken: hand it what there is.
            if state.pointee.consumerWaiting {
                state.pointee.consumerWaiting = false
                lock.signal(OutputQueue.consumer)
            }
            state.pointee.waitingProducers += 1
            lock.wait(OutputQueue.producers)
            state.pointee.waitingProducers -= 1
        }
        let full =
            state.pointee.events > 0 && state.pointee.events + batch.count > capacity
            && !(whenFull == .block && state.pointee.shuttingDown)
        if state.pointee.failed || state.pointee.closed || full {
            let reason = full && !state.pointee.failed && !state.pointee.closed ? "queue_full" : "output_failed"
            lock.unlock()
            (reason == "queue_full" ? droppedQueueFull : droppedOutputFailed).add(batch.count)
            batch.settle(.failed(reason == "queue_full" ? "dropped: output queue full" : "output is not running"))
            return false
        }
        state.pointee.batches.append(batch)
        state.pointee.events += batch.count
        let wake = state.pointee.consumerWaiting && state.pointee.events >= state.pointee.consumerThreshold
        if wake { state.pointee.consumerWaiting = false }
        lock.unlock()
        if wake { lock.signal(OutputQueue.consumer) }
        return true
    }

    /// Takes every waiting batch up to about `maxEvents` events (at least one batch).
    ///
    /// Waits up to `timeout` (forever when nil) until at least `minEvents` events are queued; when the timeout
    /// passes with fewer (but some) queued, returns those; with none, ``Take/timedOut``. A buffering output passes
    /// how many more events it needs before it would write, so that it sleeps until then. When a producer is
    /// blocked because the queue is full, it returns what is queued at once, so a `minEvents` larger than what
    /// fits never stalls intake.
    public func take(maxEvents: Int = Int.max, minEvents: Int = 1, timeout: Duration? = nil) -> Take {
        let deadline = timeout.map { monotonicNanos() &+ max(0, $0.nanoseconds) }
        // At most half the queue, so that the room left keeps taking batches while the consumer sleeps.
        let wanted = max(1, min(minEvents, capacity / 2))
        lock.lock()
        defer { lock.unlock() }
        while state.pointee.events < wanted && !state.pointee.closed
            && !(state.pointee.waitingProducers > 0 && state.pointee.events > 0)
        {
            state.pointee.consumerWaiting = true
            state.pointee.consumerThreshold = wanted
            if let deadline {
                if !lock.wait(OutputQueue.consumer, untilMonotonicNanos: deadline) && monotonicNanos() >= deadline {
                    break
                }
            } else {
                lock.wait(OutputQueue.consumer)
            }
        }
        state.pointee.consumerWaiting = false
        if state.pointee.head == state.pointee.batches.count {
            return state.pointee.closed ? .closed : .timedOut
        }
        var taken: [Batch] = []
        var events = 0
        while state.pointee.head < state.pointee.batches.count && (taken.isEmpty || events < maxEvents) {
            let batch = state.pointee.batches[state.pointee.head]
            state.pointee.head += 1
            events += batch.count
            taken.append(batch)
        }
        state.pointee.events -= events
        if state.pointee.head == state.pointee.batches.count {
            state.pointee.batches.removeAll(keepingCapacity: true)
            state.pointee.head = 0
        } else if state.pointee.head > 1024 {
            state.pointee.batches.removeFirst(state.pointee.head)
            state.pointee.head = 0
        }
        if state.pointee.waitingProducers > 0 { lock.broadcast(OutputQueue.producers) }
        return .batches(taken)
    }

    /// Whether ``close()`` was called (events may still be queued: ``take(maxEvents:minEvents:timeout:)`` hands
    /// them out before it says ``Take/closed``).
    public var isClosed: Bool { lock.withLock { state.pointee.closed } }

    /// Waits, taking nothing, until the queue is closed or the monotonic deadline (nanoseconds) passes; returns
    /// whether it is closed. For an output that pauses between retries and must notice a shutdown at once.
    public func waitUntilClosed(deadlineNanos: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while !state.pointee.closed && !state.pointee.failed {
            if !lock.wait(OutputQueue.consumer, untilMonotonicNanos: deadlineNanos) && monotonicNanos() >= deadlineNanos
            {
                break
            }
        }
        return state.pointee.closed
    }

    /// Shutdown has begun: under `block`, a push no longer waits for room, so that an input blocked on this full
    /// queue can emit what it has already received and stop. The queue may then hold more than ``capacity`` (at
    /// most what the inputs had received) until the output has written it, or given up on it after its
    /// `drain_timeout` and counted it as dropped.
    public func beginShutdown() {
        lock.withLock {
            state.pointee.shuttingDown = true
            lock.broadcast(OutputQueue.producers)
        }
    }

    /// No more pushes will come: the output drains what is queued, then sees ``Take/closed``.
    public func close() {
        lock.withLock {
            state.pointee.closed = true
            lock.broadcast(OutputQueue.consumer)
            lock.broadcast(OutputQueue.producers)
        }
    }

    /// The output has stopped for good: everything queued, and every later push, is dropped and counted with the
    /// reason `output_failed`. Returns how many events were dropped now.
    @discardableResult
    public func fail(reason: String) -> Int {
        let dropped: [Batch] = lock.withLock {
            state.pointee.failed = true
            let rest = Array(state.pointee.batches[state.pointee.head...])
            state.pointee.batches.removeAll()
            state.pointee.head = 0
            state.pointee.events = 0
            lock.broadcast(OutputQueue.consumer)
            lock.broadcast(OutputQueue.producers)
            return rest
        }
        let count = dropped.reduce(0) { $0 + $1.count }
        droppedOutputFailed.add(count)
        for batch in dropped { batch.settle(.failed(reason)) }
        return count
    }
}

private struct QueueState {
    var batches: [Batch] = []
    var head = 0
    var events = 0
    var closed = false
    var failed = false
    var shuttingDown = false
    var consumerWaiting = false
    var consumerThreshold = 1
    var waitingProducers = 0
}

/// Where an output's driver takes its batches from: the output's queue, or a disk buffer behind it.
public protocol OutputSource: AnyObject, Sendable {
    /// Takes waiting batches, as ``OutputQueue/take(maxEvents:minEvents:timeout:)`` does.
    func take(maxEvents: Int, minEvents: Int, timeout: Duration?) -> OutputQueue.Take
    /// Waits until the source is closed or the monotonic deadline passes; returns whether it is closed.
    func waitUntilClosed(deadlineNanos: Int64) -> Bool
    /// Whether no more batches will be added (some may still be waiting).
    var isClosed: Bool { get }
    /// Whether the source keeps what the driver leaves unsettled (a disk buffer keeps it for the next start):
    /// then, at shutdown and when the output stops, the driver leaves batches unsettled instead of dropping them.
    var keepsUnsettled: Bool { get }
}

extension OutputQueue: OutputSource {
    /// A memory queue keeps nothing: what is not written is dropped and counted.
    public var keepsUnsettled: Bool { false }
}
