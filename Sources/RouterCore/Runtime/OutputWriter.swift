public import Logging

/// What an output does itself; the ``OutputDriver`` calls it, always from the output's one thread.
///
/// The contract, in the order the driver calls:
/// - ``open()`` before the first write and again after a failure that lost the connection (a thrown error from
///   ``write(_:)`` or ``collect(timeout:)``), after a backoff. Throwing is an outage: the driver retries.
/// - ``write(_:)`` with a group of batches, oldest first, and answers with a ``WriteOutcome``. A group that comes
///   back with ``WriteOutcome/retry(_:)``, or that was in flight when the connection was lost, is given again,
///   with the same ``WriteGroup/id`` and a higher ``WriteGroup/attempt``, before anything not yet written (groups
///   already pending behind it may be confirmed first).
/// - ``collect(timeout:)``, only for outputs that answer ``WriteOutcome/pending`` (publisher confirms): the
///   answers that have arrived, each for one group it was given.
/// - ``tick()`` when the driver wakes with nothing to write and nothing pending (every
///   ``OutputTraits/tickInterval``).
/// - ``close()`` after a lost connection and once at the end.
///
/// An error thrown with ``StageError/Code/stopped`` (or ``StageError/Code/internalError``) stops the output for
/// good; any other error is an outage, retried.
public protocol OutputWriter {
    /// Opens the file, connects, declares what must exist. Default: nothing to open.
    mutating func open() throws

    /// Writes the group and says what happened. Never settle the batches yourself: the driver does.
    mutating func write(_ group: WriteGroup) throws -> WriteOutcome

    /// The answers for groups written as ``WriteOutcome/pending`` that have arrived, waiting up to `timeout` for
    /// the first. Throwing means the connection is lost: every group still pending is written again after
    /// ``open()``. Default: none.
    mutating func collect(timeout: Duration) throws -> [Confirmation]

    /// Periodic work while idle, with nothing pending (heartbeats, sampling). Throwing is handled as from
    /// ``collect(timeout:)``.
    mutating func tick() throws

    /// Closes what ``open()`` opened. Called after a lost connection and once when the output ends.
    mutating func close()

    /// What the outage log lines carry besides the error and what is held (`url`, `table`).
    var outageMetadata: Logger.Metadata { get }

    /// The `/health` text for an outage with this error (default: the error itself).
    func healthReason(_ error: String) -> String
}

extension OutputWriter {
    /// Nothing to open.
    public mutating func open() throws {}
    /// No confirms arrive later.
    public mutating func collect(timeout: Duration) throws -> [Confirmation] { [] }
    /// Nothing to do while idle.
    public mutating func tick() throws {}
    /// Nothing to close.
    public mutating func close() {}
    /// No extra metadata.
    public var outageMetadata: Logger.Metadata { [:] }
    /// The error itself.
    public func healthReason(_ error: String) -> String { error }
}

/// A group of batches handed to ``OutputWriter/write(_:)`` together.
public struct WriteGroup: Sendable {
    /// Stable across attempts: a group given again has the same id.
    public let id: UInt64
    /// The batches, oldest first.
    public let batches: [Batch]
    /// How many events the batches hold.
    public let eventCount: Int
    /// The position of the group's first event among every event the output has taken (from 0), stable across
    /// attempts: outputs that number their messages (`message_id`) use it.
    public let firstEventNumber: UInt64
    /// 0 the first time, 1 and more when the group is written again (after a retry or a lost connection).
    public package(set) var attempt: Int

    /// Makes a group (tests and library users driving a writer by hand).
    public init(id: UInt64, batches: [Batch], firstEventNumber: UInt64 = 0, attempt: Int = 0) {
        self.id = id
        self.batches = batches
        self.eventCount = batches.reduce(0) { $0 + $1.count }
        self.firstEventNumber = firstEventNumber
        self.attempt = attempt
    }
}

/// What happened to a group.
public enum WriteOutcome: Sendable, Equatable {
    /// Every event is written (durably, as the output defines it).
    case written
    /// Written, except the listed events, refused for good (a row the database refused, a message the broker
    /// returned). They go to the output's port `port` (by index, as ``PortEmitter/port(named:)`` gives) with
    /// their reason and detail, and the batch counts as written once they are written there too; with no port
    /// they are counted as `events_dropped{reason}` and the batch's senders hear the detail as a failure.
    case refused([Refusal], port: Int?)
    /// Nothing written, and nothing will be: every event is counted as `events_dropped{reason}` and the senders
    /// hear `detail` (a closed standard output).
    case dropped(reason: String, detail: String)
    /// Written, to be confirmed later through ``OutputWriter/collect(timeout:)``.
    case pending
    /// Not written (or not known to be): the driver gives the group again after a backoff. The text says why, for
    /// `/health` and the log.
    case retry(String)
}

/// One event refused for good.
public struct Refusal: Sendable, Equatable {
    /// Index of the batch in ``WriteGroup/batches``.
    public var batch: Int
    /// Index of the event in that batch's events.
    public var event: Int
    /// Why (the `events_dropped` reason, and the reason the event carries to a port).
    public var reason: Reason
    /// Details for the dead-letter line and the sender.
    public var detail: String
    /// Byte offset the reason points at, or -1.
    public var offset: Int32

    /// Makes a refusal.
    public init(batch: Int, event: Int, reason: Reason, detail: String, offset: Int32 = -1) {
        self.batch = batch
        self.event = event
        self.reason = reason
        self.detail = detail
        self.offset = offset
    }
}

/// The late answer for a group written as ``WriteOutcome/pending``.
public struct Confirmation: Sendable, Equatable {
    /// The group's ``WriteGroup/id``.
    public var group: UInt64
    /// What happened: anything but ``WriteOutcome/pending``.
    public var outcome: WriteOutcome

    /// Makes a confirmation.
    public init(group: UInt64, outcome: WriteOutcome) {
        self.group = group
        self.outcome = outcome
    }
}

/// How the driver feeds an output, set by the output (from its options) when it is built.
public struct OutputTraits: Sendable {
    /// Most events in one group (a group takes whole batches: one larger batch still makes one group).
    public var maxGroupEvents: Int
    /// Write once this many events wait (1: each take at once). From ``OutputOptions/flushCount`` for outputs
    /// that declare it.
    public var flushCount: Int
    /// ...or once the oldest waiting event is this old.
    public var flushInterval: Duration
    /// Most events written and not yet confirmed (``WriteOutcome/pending``); the rest wait in the queue.
    public var maxPendingEvents: Int
    /// What happens to the intake while writes fail.
    public var whileFailing: WhileFailing
    /// How often ``OutputWriter/tick()`` runs while idle; nil: never.
    public var tickInterval: Duration?
    /// Whether the driver opens the output as soon as it starts, so that a wrong password or an unreachable
    /// server shows in the log and `/health` before the first entry arrives.
    public var opensAtStart: Bool
    /// The words of the outage log lines.
    public var wording: OutageWording

    /// Makes traits; every default is what a simple output wants.
    public init(
        maxGroupEvents: Int = 4096, flushCount: Int = 1, flushInterval: Duration = .zero,
        maxPendingEvents: Int = 10_000, whileFailing: WhileFailing = .holdAndWait, tickInterval: Duration? = nil,
        opensAtStart: Bool = true, wording: OutageWording = OutageWording()
    ) {
        self.maxGroupEvents = max(1, maxGroupEvents)
        self.flushCount = max(1, flushCount)
        self.flushInterval = flushInterval
        self.maxPendingEvents = max(1, maxPendingEvents)
        self.whileFailing = whileFailing
        self.tickInterval = tickInterval
        self.opensAtStart = opensAtStart
        self.wording = wording
    }
}

/// What the driver does with new entries while an output's writes fail.
public enum WhileFailing: Sendable, Equatable {
    /// Take nothing more: the queue in front fills and its `when_full` decides (block the intake, or drop and
    /// count `queue_full`). For destinations that come back (a broker, a database).
    case holdAndWait
    /// Keep taking, so that the intake never waits on this output, holding up to `queue_max_events` and dropping
    /// the oldest past that (counted as `held_full`). What is held is written when the destination works again,
    /// and only then are its senders acknowledged; a sender hears a failure only for entries that are dropped
    /// (held past the limit, or still held when a shutdown's `drain_timeout` ends). The file outputs' policy.
    case holdAndKeepTaking
}

/// The words of an output's outage log lines, so that each output says what failed in its own terms.
public struct OutageWording: Sendable {
    /// When ``OutputWriter/open()`` fails.
    public var cannotOpen: Logger.Message
    /// When a write or collect throws (the connection broke).
    public var lost: Logger.Message
    /// When a write comes back ``WriteOutcome/retry(_:)``.
    public var refused: Logger.Message
    /// When ``OutputWriter/open()`` succeeds again after an outage.
    public var reopened: Logger.Message
    /// When a write succeeds again after refusals.
    public var accepted: Logger.Message
    /// At shutdown, when `drain_timeout` passed with the destination still failing.
    public var givingUp: Logger.Message
    /// The last line when anything had to be dropped at shutdown.
    public var stoppedWithLosses: Logger.Message
    /// The `events_dropped` reason for what is given up at shutdown.
    public var unavailableReason: String

    /// Makes a wording; the defaults fit any destination.
    public init(
        cannotOpen: Logger.Message = "cannot open; retrying",
        lost: Logger.Message = "connection lost; reconnecting",
        refused: Logger.Message = "write failed; holding entries and retrying",
        reopened: Logger.Message = "connected again",
        accepted: Logger.Message = "writing again",
        givingUp: Logger.Message = "giving up: shutting down and the destination is still unavailable",
        stoppedWithLosses: Logger.Message = "stopped with entries that could not be written",
        unavailableReason: String = "write_failed"
    ) {
        self.cannotOpen = cannotOpen
        self.lost = lost
        self.refused = refused
        self.reopened = reopened
        self.accepted = accepted
        self.givingUp = givingUp
        self.stoppedWithLosses = stoppedWithLosses
        self.unavailableReason = unavailableReason
    }
}
