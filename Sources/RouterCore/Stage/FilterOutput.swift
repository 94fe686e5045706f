/// Collects what a filter sends to each of its ports during one ``FilterStage/process(_:into:)`` call.
public struct FilterOutput {
    /// The batches sent to each port, by port index (0 is the default port).
    public private(set) var ports: [[Batch]]
    /// Trackers the filter created during this call; the runtime releases their creation hold afterwards.
    public private(set) var createdTrackers: [DeliveryTracker] = []

    /// Makes an empty output for a stage with `portCount` ports.
    public init(portCount: Int) {
        ports = [[Batch]](repeating: [], count: max(1, portCount))
    }

    /// Sends a batch to a port; an empty batch is ignored, a port out of range goes to the default port.
    public mutating func emit(_ batch: Batch, port: Int = 0) {
        guard !batch.isEmpty else { return }
        ports[port >= 0 && port < ports.count ? port : 0].append(batch)
    }

    /// Sends each of `batches` to the port of the same index (the result of ``Batch/partition(portCount:_:)``).
    public mutating func emit(partitioned batches: [Batch]) {
        for (port, batch) in batches.enumerated() { emit(batch, port: port) }
    }

    /// Registers a tracker this call created, so that its creation hold is released once the batch has been
    /// handed to every output downstream.
    public mutating func track(_ tracker: DeliveryTracker) {
        createdTrackers.append(tracker)
    }
}

/// How an input hands its batches to the graph.
public final class InputEmitter: Sendable {
    private let deliver: @Sendable (Batch) -> Void

    /// Makes an emitter around the runtime's delivery function (tests pass their own).
    public init(_ deliver: @escaping @Sendable (Batch) -> Void) {
        self.deliver = deliver
    }

    /// Runs the batch through every filter downstream, synchronously, and hands it to the output queues.
    ///
    /// Blocks when an output queue with `when_full: block` is full. Trackers already on the batch were
    /// created by the input: their creation hold is released when this returns.
    public func emit(_ batch: Batch) {
        guard !batch.isEmpty else { return }
        deliver(batch)
        for tracker in batch.trackers { tracker.releaseCreationHold() }
    }
}
