/// A byte range inside a ``Batch``'s bytes: where a field's raw (still JSON-escaped) text sits.
public struct Span: Sendable, Hashable {
    /// Offset of the first byte in ``Batch/bytes``; negative when absent.
    public var start: Int32
    /// Number of bytes.
    public var count: Int32

    /// Makes a span.
    public init(start: Int32, count: Int32) {
        self.start = start
        self.count = count
    }

    /// The absent span.
    public static let none = Span(start: -1, count: 0)

    /// Whether the field was present.
    public var isPresent: Bool { start >= 0 }
}

/// Bits carried by each event.
public struct EventFlags: OptionSet, Sendable, Hashable {
    /// The raw bits.
    public var rawValue: UInt8

    /// Makes flags from raw bits.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The datagram was larger than `max_datagram_bytes`; only its first bytes were kept.
    public static let truncated = EventFlags(rawValue: 1 << 0)
    /// A JSON validator has filled ``Event/level``, ``Event/sequence``, ``Event/host`` and ``Event/app``.
    public static let fieldsExtracted = EventFlags(rawValue: 1 << 1)
    /// ``Event/host`` contains JSON escapes and must be decoded before use as text.
    public static let hostEscaped = EventFlags(rawValue: 1 << 2)
    /// ``Event/app`` contains JSON escapes and must be decoded before use as text.
    public static let appEscaped = EventFlags(rawValue: 1 << 3)
    /// Somebody (an `ack` filter, an `amqp` input) waits to hear when every output has written this event.
    public static let tracked = EventFlags(rawValue: 1 << 4)
}

/// One log entry as it travels through the graph.
///
/// An event is plain data (no references), so a batch of them is one contiguous allocation that filters can
/// partition cheaply. The entry's bytes live in the owning ``Batch``; ``start`` and ``count`` locate them.
public struct Event: Sendable {
    /// Offset of the entry's first byte in ``Batch/bytes``.
    public var start: Int32
    /// Length of the entry in bytes (a trailing LF or CRLF is already removed).
    public var count: Int32
    /// The entry's `sequence` (or `seq`), or ``Event/noSequence``.
    public var sequence: Int64
    /// The `host` (or `hostname`) string's raw bytes.
    public var host: Span
    /// The `app` string's raw bytes.
    public var app: Span
    /// The entry's level; `unknown` until a validator has read it.
    public var level: Level
    /// Per-event bits.
    public var flags: EventFlags
    /// Why this event was sent to a side port (`invalid`, `rejected`), or ``Reason/none``.
    public var reason: Reason
    /// Index into ``Batch/details`` of a free-text detail about ``reason``, or -1.
    public var detail: Int32
    /// Byte offset in the entry where ``reason`` was found, or -1.
    public var reasonOffset: Int32
    /// Microseconds after ``Batch/receivedAtNanos`` that this entry arrived (the kernel's receive time of its
    /// datagram); 0 for entries that arrived with the batch. Read it with ``Batch/arrivalNanos(of:)``.
    public var arrivalOffsetMicros: Int32
    /// Who sent it (for acks and the loss ledger); ``SenderAddress/none`` when not from a socket.
    public var sender: SenderAddress

    /// The value of ``sequence`` when the entry has none.
    public static let noSequence = Int64.min

    /// Makes an event for `count` bytes at `start`, with no fields extracted yet.
    public init(start: Int32, count: Int32, sender: SenderAddress = .none, flags: EventFlags = []) {
        self.start = start
        self.count = count
        self.sequence = Event.noSequence
        self.host = .none
        self.app = .none
        self.level = .unknown
        self.flags = flags
        self.reason = .none
        self.detail = -1
        self.reasonOffset = -1
        self.arrivalOffsetMicros = 0
        self.sender = sender
    }

    /// Whether the entry carries a sequence number.
    public var hasSequence: Bool { sequence != Event.noSequence }
}
