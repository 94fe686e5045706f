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
    private let onSettled: @Sendable (DeliveryOutcome) -> Void

    /// Makes a tracker holding its creation hold; `onSettled` runs once when all deliveries are answered.
    public init(onSettled: @escaping @Sendable (DeliveryOutcome) -> Void) {
        self.onSettled = onSettled
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
        if let failure = firstFailure.withLock({ $0 }) {
            onSettled(.failed(failure))
        } else {
            let count = deliveries.load(ordering: .relaxed)
            onSettled(count == 0 ? .notRouted : .written(outputs: count))
        }
    }
}
