internal import Synchronization

/// How an output hands batches to its own ports (`rejected`), from its own thread.
///
/// An output that declares ports besides its default one reaches them through ``StageContext/ports``. The default
/// port of an output is what it writes and feeds nothing; every other port feeds the stages that list it
/// (`store.rejected`) exactly as a filter's port does: ``emit(_:port:)`` runs the batch synchronously through the
/// filters downstream and into the output queues downstream, counting `events_out{port}` on the output, and counts
/// it as `events_discarded` when nothing reads the port.
///
/// Trackers: the batch keeps its trackers, and every output queue it enters begins a delivery on them. Emit before
/// settling the original batch (``Batch/settle(_:)``), so that whoever waits on the trackers (an `ack` filter, an
/// `amqp` input) hears only once the downstream outputs have written the emitted events too.
///
/// Emitting blocks while a downstream queue with `when_full: block` is full. An emitter the runtime has not
/// connected yet (before ``Router/start()``, or ``unconnected`` in a context made by hand) drops what it is given.
public final class PortEmitter: Sendable {
    /// The emitting stage's port names, by index (``StageDeclaration/portNames``; 0 is `default`).
    public let portNames: [String]
    private let deliver: Mutex<(@Sendable (Batch, Int) -> Void)?>

    /// Makes an emitter that calls `deliver` with each batch and its port index (tests and library users who
    /// build an output by hand pass their own).
    public init(portNames: [String], _ deliver: @escaping @Sendable (Batch, Int) -> Void) {
        self.portNames = portNames
        self.deliver = Mutex(deliver)
    }

    /// Makes an emitter that the runtime connects once the graph is built.
    package init(portNames: [String]) {
        self.portNames = portNames
        self.deliver = Mutex(nil)
    }

    /// An emitter that is never connected, for contexts made by hand: what it is given is dropped.
    public static let unconnected = PortEmitter(portNames: ["default"])

    /// Sets the delivery function; the runtime calls it when it starts.
    package func connect(_ deliver: @escaping @Sendable (Batch, Int) -> Void) {
        self.deliver.withLock { $0 = deliver }
    }

    /// The index of the port named `name`, or nil when the stage has no such port (or it is `default`).
    public func port(named name: String) -> Int? {
        guard let index = portNames.firstIndex(of: name), index > 0 else { return nil }
        return index
    }

    /// Runs `batch` through the stages that read port `port` (an index from ``port(named:)``), synchronously.
    ///
    /// An empty batch, port 0 (an output's default port is what it writes) and a port out of range are ignored.
    public func emit(_ batch: Batch, port: Int) {
        guard !batch.isEmpty, port > 0, port < portNames.count else { return }
        guard let deliver = deliver.withLock({ $0 }) else { return }
        deliver(batch, port)
    }
}
