import CRouterShims
import Histogram
import Router
import RouterSupport
import Synchronization

/// What one load-test worker is told to do.
struct LoadWorkerPlan {
    /// Worker number, from 0; entries carry app `loadtest-<index>`.
    var index: Int
    /// Entries per second for this worker; 0 sends as fast as the socket takes them.
    var rate: Double
    /// Entries to send, or nil for no limit (then `deadlineNanos` ends the run).
    var total: Int?
    /// Monotonic time at which to stop sending, or nil.
    var deadlineNanos: Int64?
    /// How long to keep listening for acks after the last send.
    var ackWaitNanos: Int64
    var errorsPerMillion: Int64
    var messageBytes: Int
    var hostName: String
    var appPrefix: String = "loadtest-"
}

/// Live counters a worker publishes for the progress line (relaxed atomics, stored once per batch).
final class WorkerProgress: Sendable {
    let sent = Atomic<Int>(0)
    let acked = Atomic<Int>(0)
    let errorsSent = Atomic<Int>(0)
    let finished = Atomic<Bool>(false)
}

/// What a worker did, read after its thread has been joined.
struct WorkerResult {
    var sent = 0
    var failed = 0
    /// Times the socket reported "port unreachable" (nothing listening).
    var refused = 0
    var lastError: String?
    var errorsSent = 0
    var acked = 0
    var nacked = 0
    /// Acks for sequences not waited for (duplicates or late after a nack).
    var strayAcks = 0
    var unackedSequences: [Int64] = []
    var nackReasons: [String: Int] = [:]
    var startNanos: Int64 = 0
    var endNanos: Int64 = 0
    /// Ack latency in microseconds.
    var latency = Histogram<UInt64>(
        lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three)
}

/// Process-wide request to stop sending (SIGINT during a load test).
let loadStopRequested = Atomic<Bool>(false)

/// One load-test sender: its own connected socket, driven by one thread, paced by a token bucket.
///
/// The bucket holds at most 20 ms of tokens (and at least one batch). On a machine where routerd and the sender
/// share two cores, the sender is regularly descheduled for a few milliseconds; with a 5 ms bucket it fell 3 to
/// 5 % short of 300,000/s, with 20 ms it holds the rate, and a longer stall still lowers the achieved rate rather
/// than turning into a burst of unbounded size.
///
/// Each round it takes a batch of up to 64 entries from the bucket, writes them into a preallocated buffer and
/// sends them with one sendmmsg call; between batches it waits in select(2) on the socket so that an ack is read
/// the moment it arrives. At `rate` 0 there is no waiting: acks are read (without blocking) after every batch,
/// so a latency can be overstated by up to one batch's send time.
///
/// Ack latency runs from just before the sendmmsg call that carried the ERROR entry to the read of its ack.
final class LoadWorker: @unchecked Sendable {
    // Safe to share: the owning command makes it, hands it to exactly one thread, and reads `result` only after
    // joining that thread; `progress` is atomic.
    static let maxBatch = 64

    let plan: LoadWorkerPlan
    let progress = WorkerProgress()
    private(set) var result = WorkerResult()
    private let socket: ClientSocket
    private let writer: LoadEntryWriter
    private let batchSize: Int

    init(plan: LoadWorkerPlan, host: String, port: Int, sendBufferBytes: Int) throws {
        self.plan = plan
        socket = try ClientSocket(
            host: host, port: port, sendBufferBytes: sendBufferBytes, receiveBufferBytes: 4 << 20)
        writer = LoadEntryWriter(
            app: plan.appPrefix + String(plan.index), host: plan.hostName, messageBytes: plan.messageBytes)
        // A batch holds at most about a millisecond of entries, so that slow rates go out smoothly.
        batchSize = plan.rate > 0 ? max(1, min(LoadWorker.maxBatch, Int(plan.rate / 1000))) : LoadWorker.maxBatch
    }

    /// Where the socket sends.
    var peer: String { socket.peer }

    /// Sends until the total is reached, the deadline passes or a stop is requested; then waits for acks.
    func run() {
        let stride = writer.maxEntryBytes
        let buffer = UnsafeMutablePointer<UInt8>.allocate(capacity: stride * batchSize)
        let datagrams = UnsafeMutablePointer<routerd_out_dgram>.allocate(capacity: batchSize)
        let errorsInBatch = UnsafeMutablePointer<Int64>.allocate(capacity: batchSize)
        defer {
            buffer.deallocate()
            datagrams.deallocate()
            errorsInBatch.deallocate()
        }
        let slots = ReplySlots(count: 64, capacity: 512)
        let timestamp = TimestampText()
        var pending: [Int64: Int64] = [:]
        var result = WorkerResult()
        var sequence: Int64 = 0
        let rate = plan.rate
        let bucketCapacity = max(Double(batchSize), rate * 0.020)
        var tokens = 0.0
        let start = monotonicNanos()
        var refilled = start
        result.startNanos = start
        result.endNanos = start

        func readAcks() {
            while true {
                let count = socket.receiveWaiting(slots)
                let now = monotonicNanos()
                for index in 0..<count {
                    guard let reply = AckReply(slots.bytes(index)) else { continue }
                    guard let sentAt = pending.removeValue(forKey: reply.sequence) else {
                        result.strayAcks += 1
                        continue
                    }
                    if reply.stored {
                        result.acked += 1
                        let micros = UInt64(max(0, now - sentAt) / 1_000)
                        _ = result.latency.record(min(micros, result.latency.highestTrackableValue))
                    } else {
                        result.nacked += 1
                        result.nackReasons[reply.reason ?? "no reason given", default: 0] += 1
                    }
                }
                progress.acked.store(result.acked, ordering: .relaxed)
                if count < slots.count { return }
            }
        }

        while !loadStopRequested.load(ordering: .relaxed) {
            let remaining = plan.total.map { $0 - Int(sequence) } ?? Int.max
            guard remaining > 0 else { break }
            let want = min(batchSize, remaining)
            if let deadline = plan.deadlineNanos, monotonicNanos() >= deadline { break }
            if rate > 0 {
                let now = monotonicNanos()
                tokens = min(bucketCapacity, tokens + Double(now - refilled) * rate / 1e9)
                refilled = now
                if tokens < Double(want) {
                    var wait = Int64((Double(want) - tokens) / rate * 1e9) + 1
                    if let deadline = plan.deadlineNanos { wait = min(wait, max(0, deadline - now)) }
                    if socket.waitReadable(nanoseconds: wait) { readAcks() }
                    continue
                }
                tokens -= Double(want)
            }
            timestamp.update(nanos: wallClockNanos())
            var errorCount = 0
            for index in 0..<want {
                sequence += 1
                let level = EntryLevel.forLoad(sequence: sequence, errorsPerMillion: plan.errorsPerMillion)
                let entry = buffer + index * stride
                let length = writer.write(sequence: sequence, level: level, timestamp: timestamp, to: entry)
                datagrams[index] = routerd_out_dgram(buffer: UnsafeRawPointer(entry), length: length, address: nil)
                if level == .error {
                    errorsInBatch[errorCount] = sequence
                    errorCount += 1
                }
            }
            let sentAt = monotonicNanos()
            for index in 0..<errorCount { pending[errorsInBatch[index]] = sentAt }
            let outcome = socket.send(UnsafeBufferPointer(start: datagrams, count: want))
            result.sent += outcome.sent
            result.failed += outcome.failed
            if let error = outcome.lastError { result.lastError = error }
            result.errorsSent += errorCount
            result.endNanos = monotonicNanos()
            progress.sent.store(result.sent, ordering: .relaxed)
            progress.errorsSent.store(result.errorsSent, ordering: .relaxed)
            readAcks()
        }
        let ackDeadline = monotonicNanos() + plan.ackWaitNanos
        while !pending.isEmpty && !loadStopRequested.load(ordering: .relaxed) {
            let now = monotonicNanos()
            guard now < ackDeadline else { break }
            if socket.waitReadable(nanoseconds: min(ackDeadline - now, 50_000_000)) { readAcks() }
        }
        result.unackedSequences = pending.keys.sorted()
        result.refused = socket.portUnreachable
        self.result = result
        progress.finished.store(true, ordering: .releasing)
    }
}
