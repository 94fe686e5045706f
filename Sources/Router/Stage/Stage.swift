public import Logging

/// A stage kind: one declaration, and an initializer that builds a configured instance.
///
/// A library user's stage registers exactly like a built-in one: conform to ``InputStage``, ``FilterStage`` or
/// ``OutputStage``, give the ``declaration``, and pass the type to ``StageRegistry/register(_:)``.
public protocol Stage: AnyObject, Sendable {
    /// The kind's one declaration: type name, summary, options, ports, counters.
    static var declaration: StageDeclaration { get }

    /// Builds the stage from checked options. Throwing here (a port already bound, a directory that cannot be
    /// made) stops routerd before anything runs, with the error printed against the stage's name.
    init(context: StageContext) throws
}

/// A stage that receives entries from outside and emits them as batches.
public protocol InputStage: Stage {
    /// Receives and emits until ``requestStop()``; runs on a thread of its own and may block.
    ///
    /// Before returning it must emit everything it has already received (for `udp`: what sits in the socket's
    /// receive buffer at the moment of the stop), so that a graceful shutdown loses nothing accepted.
    func run(_ emitter: InputEmitter) throws

    /// Asks ``run(_:)`` to return soon. Called once, from another thread.
    func requestStop()
}

/// A stage that routes or changes entries, synchronously, on the batch.
///
/// Filters run on the receiving thread, several at once when there are several inputs or `workers`; they must
/// keep no per-call mutable state outside of atomics and their counters, and must never block.
public protocol FilterStage: Stage {
    /// Sends the batch's events to the stage's ports through `output`.
    func process(_ batch: Batch, into output: inout FilterOutput)
}

/// A stage that writes entries somewhere, on a thread of its own, fed by a bounded queue.
public protocol OutputStage: Stage {
    /// Takes batches from `queue` and writes them until the queue is closed and drained; then flushes and
    /// closes what it holds and returns. Every batch taken must be settled (``Batch/settle(_:)``) exactly once.
    ///
    /// Throwing ends the output: the runtime logs the error, counts what was still queued as dropped with the
    /// reason `output_failed` and fails the trackers of those batches.
    ///
    /// An output that declares ports besides its default one (a `rejected` port for what a database refused)
    /// sends batches to them with ``StageContext/ports`` (``PortEmitter``), from this thread; it emits a batch's
    /// refused events before it settles the batch, so that trackers wait for the downstream writes too. The
    /// runtime closes an output's queue only after every output that feeds it through such a port has returned.
    func run(_ queue: OutputQueue) throws
}

/// What a stage is given when it is built.
public struct StageContext: Sendable {
    /// The stage's name in the config (`server_log`).
    public var name: String
    /// The stage's kind (`rotating_file`).
    public var type: String
    /// The checked options, with defaults filled in.
    public var options: StageOptions
    /// A logger whose lines carry `stage` and `type`.
    public var logger: Logger
    /// The stage's counters (standard and declared).
    public var counters: StageCounters
    /// The stage's health, shown in `/health` and `/stats`.
    public var health: StageHealth
    /// A read-only view of the whole router, for stages that report on it (`http_stats`).
    public var router: RouterObserver
    /// Where the stage is declared in the config, when it came from one.
    public var location: SourceLocation?
    /// For outputs that declare ports besides the default one (`rejected`): how to send batches to them.
    public var ports: PortEmitter

    /// Makes a context; the runtime does this, and tests that build a stage by hand.
    public init(
        name: String,
        type: String,
        options: StageOptions,
        logger: Logger,
        counters: StageCounters,
        health: StageHealth,
        router: RouterObserver,
        location: SourceLocation? = nil,
        ports: PortEmitter = .unconnected
    ) {
        self.name = name
        self.type = type
        self.options = options
        self.logger = logger
        self.counters = counters
        self.health = health
        self.router = router
        self.location = location
        self.ports = ports
    }
}

/// An error a stage throws while it is built or while it runs, naming what went wrong in words a user acts on.
public struct StageError: Error, Sendable, CustomStringConvertible {
    /// The message, without the stage name (the runtime adds it).
    public var message: String

    /// Makes an error.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}
