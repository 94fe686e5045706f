public import Logging
public import ServiceLifecycle

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

/// A stage that writes entries somewhere. It implements only what is its own (open, write, and for outputs whose
/// writes are confirmed later, collect the confirms); the runtime's ``OutputDriver`` does the rest on the output's
/// own thread: taking from the queue, buffering by count and age, retrying with backoff, the outage report, the
/// drain deadline at shutdown, `events_out` and `events_dropped`, and settling every batch exactly once.
///
/// ``makeWriter()`` is called on the output's thread; the ``OutputWriter`` it returns lives there alone, so it
/// may keep mutable state without locks. A stateless output can be its own writer (`makeWriter()` returns `self`
/// by default when the stage conforms to ``OutputWriter``).
public protocol OutputStage: Stage {
    /// What the driver works with.
    associatedtype Writer: OutputWriter

    /// How the driver feeds this output: group sizes, buffering, what to do while writes fail, the outage
    /// wording. Read once when the output starts.
    var traits: OutputTraits { get }

    /// Makes the writer, on the output's thread. Throwing stops the output: everything queued for it is counted
    /// as dropped (`output_failed`) and its trackers fail.
    func makeWriter() throws -> Writer
}

/// A stage that writes files another tool may rotate (logrotate's `create` mode moves the file away and expects a
/// new one at the path): routerd asks it to reopen them on `SIGUSR1`.
public protocol FileReopening: Sendable {
    /// Closes the files the stage writes, so that the next write opens each path anew. Called from any thread; a
    /// write in progress finishes first, and nothing buffered is lost.
    func reopenFiles()
}

extension OutputStage {
    /// The default traits: each take written at once, retried while it fails, the queue filling meanwhile.
    public var traits: OutputTraits { OutputTraits() }
}

extension OutputStage where Self: OutputWriter {
    /// The stage is its own writer.
    public func makeWriter() throws -> Self { self }
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
///
/// Its ``code`` says what kind of problem it is, so that the runtime (and a library user) can tell a mistake in the
/// config from a destination that is away, an output that must stop, and a bug: as swift-service-lifecycle's
/// `ServiceGroupError`, the codes are an extensible struct over a private enum.
public struct StageError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What kind of error it is.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: Hashable, Sendable {
            case invalidConfiguration, unavailable, stopped, internalError
        }

        private let value: Value

        private init(_ value: Value) { self.value = value }

        /// The options are wrong in a way the declaration cannot express; the user fixes the config.
        public static let invalidConfiguration = Code(.invalidConfiguration)
        /// Something outside routerd is not there or refused (a port taken, a broker away, a disk full): at
        /// start it stops routerd; while an output runs, the driver retries with backoff.
        public static let unavailable = Code(.unavailable)
        /// The output cannot go on at all: the driver stops it and counts what it still holds as dropped.
        public static let stopped = Code(.stopped)
        /// A bug: the stage's declaration and its code disagree.
        public static let internalError = Code(.internalError)

        /// `invalid_configuration`, `unavailable`, `stopped` or `internal_error`.
        public var description: String {
            switch value {
            case .invalidConfiguration: "invalid_configuration"
            case .unavailable: "unavailable"
            case .stopped: "stopped"
            case .internalError: "internal_error"
            }
        }
    }

    /// What kind of error it is.
    public var code: Code
    /// The message, without the stage name (the runtime adds it).
    public var message: String

    /// Makes an error of a kind.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// Makes an ``Code/unavailable`` error: something could not be done (bound, opened, reached).
    public init(_ message: String) { self.init(.unavailable, message) }

    /// The message.
    public var description: String { message }
}

/// A stage that runs services of its own in the process's ``ServiceGroup`` (the `http_stats` HTTP server), so
/// that the group starts them and shuts them down in order, instead of the stage watching for the end itself.
public protocol ServiceProviding {
    /// The stage's services; the runtime collects them in ``Router/services``.
    var services: [any Service] { get }
}

/// A stage that, when a reload changes its options, builds its replacement from the instance it replaces, so that
/// what that instance holds and the new options keep (the `udp` input's sockets, when the address, port and workers
/// stay) passes to the replacement instead of being closed and opened again.
///
/// The runtime builds the replacement while the previous instance still runs, starts it, and only then stops the
/// previous one; the two may run at the same time for a moment (two `udp` inputs reading one socket), so what is
/// taken over must be safe to share. A stage that does not conform is replaced by a new instance built from its
/// options alone.
public protocol Replacing: Stage {
    /// Builds the stage from `context` (the new options), taking over what it can from `previous`, which is still
    /// running. Throwing fails the whole reload: `previous` keeps running as it was.
    init(context: StageContext, replacing previous: Self) throws

    /// Called on the previous instance once its replacement runs, just before the previous one is asked to stop:
    /// what the replacement took over it need not drain (a `udp` input stops at once instead of reading its
    /// sockets dry, which under load would last as long as the load: the replacement reads them now). Not called
    /// when the reload fails; then the previous instance runs on and drains as usual when it is stopped.
    func replacementStarted()
}

extension Replacing {
    /// Nothing to hand over by default.
    public func replacementStarted() {}

    /// ``init(context:replacing:)`` when `previous` is of this type, nil otherwise (for the runtime, which holds
    /// stages as `any Stage`).
    public static func replacement(context: StageContext, previous: any Stage) throws -> (any Stage)? {
        guard let previous = previous as? Self else { return nil }
        return try Self(context: context, replacing: previous)
    }
}
