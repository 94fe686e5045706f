internal import Synchronization

/// The outcome a ``DeliveryTracker`` reports once every output that got its events has answered.
public enum DeliveryOutcome: Sendable, Equatable {
    /// Every output the events were routed to wrote them; `outputs` counts those deliveries.
    case written(outputs: Int)
    /// At least one output failed or dropped them; the first reason reported.
    case failed(String)
    /// The events reached no output at all (filtered out, or routed to a port nothing consumes).
    case notRouted
}

/// Counts the outputs a group of tracked events was handed to and calls back once all of them have answered.
///
/// The creator (an `ack` filter, an `amqp` input) makes a tracker, flags its events ``EventFlags/tracked``
/// and adds the tracker to the batch before the batch moves on. The runtime counts one pending delivery for
/// each output queue the batch enters and a creation hold that it releases when the synchronous pass through
/// the graph is over; outputs answer through ``Batch/settle(_:)``. The callback runs exactly once, on the
/// thread of whoever answered last.
public final class DeliveryTracker: Sendable {
    private let pending = Atomic<Int>(1)
    private let deliveries = Atomic<Int>(0)
    private let firstFailure = Mutex<String?>(nil)
    private let onSettled: @Sendable (DeliveryOutcome, DroppedEntries) -> Void
    private let dropped = Mutex<[DroppedEntries.Key: String]>([:])
    private let anyDropped = Atomic<Bool>(false)

    /// The tracked entries that a filter or the graph dropped on the way (throttled, sampled out, sent to a port
    /// nothing reads) while others of the same tracker went on: by sender and sequence, with the reason. The
    /// tracker's outcome is about the others; these were not written.
    public struct DroppedEntries: Sendable {
        struct Key: Hashable, Sendable {
            var sender: SenderAddress
            var sequence: Int64
        }
        let reasons: [Key: String]

        /// Why the entry of `sender` with `sequence` was dropped, or nil when it was not.
        public func reason(sender: SenderAddress, sequence: Int64) -> String? {
            reasons.isEmpty ? nil : reasons[Key(sender: sender, sequence: sequence)]
        }

        /// How many entries were dropped.
        public var count: Int { reasons.count }
    }

    /// The reason of entries sent to a port that nothing reads.
    public static let notRoutedReason = "no output took it"

    /// Makes a tracker holding its creation hold; `onSettled` runs once when all deliveries are answered.
    public convenience init(onSettled: @escaping @Sendable (DeliveryOutcome) -> Void) {
        self.init { outcome, _ in onSettled(outcome) }
    }

    /// Makes a tracker holding its creation hold; `onSettled` runs once when all deliveries are answered, with the
    /// entries dropped on the way (see ``markDropped(sender:sequence:reason:)``).
    public init(onSettled: @escaping @Sendable (DeliveryOutcome, DroppedEntries) -> Void) {
        self.onSettled = onSettled
    }

    /// Records that one tracked entry (by its sender and sequence) was dropped before any output, with the reason,
    /// while the rest of what the tracker follows goes on. Call it before the synchronous pass through the graph
    /// ends (filters and the runtime do).
    public func markDropped(sender: SenderAddress, sequence: Int64, reason: String) {
        dropped.withLock { $0[DroppedEntries.Key(sender: sender, sequence: sequence)] = reason }
        anyDropped.store(true, ordering: .releasing)
    }

    /// Deliveries (and the creation hold) not answered yet: 0 once the callback ran; below 0 when some output
    /// settled a batch more than once (a bug the compliance test looks for).
    public var unanswered: Int { pending.load(ordering: .acquiring) }

    /// Called by the runtime when a batch carrying this tracker enters an output's queue.
    public func beginDelivery() {
        deliveries.wrappingAdd(1, ordering: .relaxed)
        pending.wrappingAdd(1, ordering: .relaxed)
    }

    /// An output's answer for one delivery.
    public func settle(_ result: WriteResult) {
        if case .failed(let reason) = result {
            firstFailure.withLock { if $0 == nil { $0 = reason } }
        }
        release()
    }

    /// Releases the creation hold; called by the runtime after the synchronous pass through the graph.
    public func releaseCreationHold() {
        release()
    }

    private func release() {
        let (_, remaining) = pending.subtract(1, ordering: .acquiringAndReleasing)
        guard remaining == 0 else { return }
        let drops = DroppedEntries(
            reasons: anyDropped.load(ordering: .acquiring) ? dropped.withLock { $0 } : [:])
        if let failure = firstFailure.withLock({ $0 }) {
            onSettled(.failed(failure), drops)
        } else {
            let count = deliveries.load(ordering: .relaxed)
            onSettled(count == 0 ? .notRouted : .written(outputs: count), drops)
        }
    }
}
