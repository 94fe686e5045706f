/// Where replies to a batch's senders go: the socket the entries arrived on.
///
/// Implemented by inputs that can answer (`udp` unless `one_way`). Sending is best effort: a failure is counted by
/// the input and logged, never thrown into the caller.
public protocol ReplyChannel: AnyObject, Sendable {
    /// Sends each payload to its address from the receiving socket, in one system call where possible.
    func sendReplies(_ replies: [(payload: [UInt8], to: SenderAddress)])
}

/// A group of events that travel through the graph together: one `recvmmsg` read is one batch.
///
/// A batch is a value: filters split it into per-port batches that share the same byte storage (copy on write),
/// so routing an entry never copies its bytes. Every per-batch cost (a counter update, a queue lock, a write
/// system call) is paid once for all of its events.
public struct Batch: Sendable {
    /// The raw bytes of every event, back to back.
    public var bytes: [UInt8]
    /// The events, in arrival order.
    public var events: [Event]
    /// Free-text details that events point at through ``Event/detail``.
    public var details: [String]
    /// Where replies to these events' senders go, when the input can reply.
    public var replyChannel: (any ReplyChannel)?
    /// Who waits to hear when outputs have written the ``EventFlags/tracked`` events of this batch.
    public var trackers: [DeliveryTracker]
    /// When the batch's first entry arrived, in nanoseconds since the Unix epoch (for a `udp` input, the kernel's
    /// receive time of the oldest datagram in the batch); each event's own time is ``arrivalNanos(of:)``.
    public var receivedAtNanos: Int64

    /// Makes a batch from its parts.
    public init(
        bytes: [UInt8] = [],
        events: [Event] = [],
        details: [String] = [],
        replyChannel: (any ReplyChannel)? = nil,
        trackers: [DeliveryTracker] = [],
        receivedAtNanos: Int64 = 0
    ) {
        self.bytes = bytes
        self.events = events
        self.details = details
        self.replyChannel = replyChannel
        self.trackers = trackers
        self.receivedAtNanos = receivedAtNanos
    }

    /// Makes a batch of one event per line (without line terminators), for tests and library users.
    public init(lines: [String], receivedAtNanos: Int64 = 0) {
        self.init(receivedAtNanos: receivedAtNanos)
        for line in lines { append(Array(line.utf8)) }
    }

    /// When `event` arrived, in nanoseconds since the Unix epoch: the batch's time plus the event's offset.
    @inlinable
    public func arrivalNanos(of event: Event) -> Int64 {
        receivedAtNanos &+ Int64(event.arrivalOffsetMicros) &* 1000
    }

    /// The number of events.
    public var count: Int { events.count }

    /// Whether there are no events.
    public var isEmpty: Bool { events.isEmpty }

    /// Appends one entry's bytes as a new event and returns its index.
    @discardableResult
    public mutating func append(_ entry: some Collection<UInt8>, sender: SenderAddress = .none) -> Int {
        let start = Int32(bytes.count)
        bytes.append(contentsOf: entry)
        events.append(Event(start: start, count: Int32(bytes.count) - start, sender: sender))
        return events.count - 1
    }

    /// Calls `body` with the raw bytes of `event`.
    @inlinable
    public func withBytes<Result>(
        of event: Event,
        _ body: (UnsafeRawBufferPointer) throws -> Result
    ) rethrows -> Result {
        try bytes.withUnsafeBytes { all in
            try body(UnsafeRawBufferPointer(rebasing: all[Int(event.start)..<Int(event.start + event.count)]))
        }
    }

    /// Calls `body` with the raw bytes of `span`, or an empty buffer when the span is absent.
    @inlinable
    public func withBytes<Result>(
        of span: Span,
        _ body: (UnsafeRawBufferPointer) throws -> Result
    ) rethrows -> Result {
        guard span.isPresent else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try bytes.withUnsafeBytes { all in
            try body(UnsafeRawBufferPointer(rebasing: all[Int(span.start)..<Int(span.start + span.count)]))
        }
    }

    /// The entry's text (invalid UTF-8 repaired with U+FFFD).
    public func text(of event: Event) -> String {
        withBytes(of: event) { String(decoding: $0, as: UTF8.self) }
    }

    /// The free-text detail of an event's reason, or nil.
    public func detail(of event: Event) -> String? {
        event.detail >= 0 && Int(event.detail) < details.count ? details[Int(event.detail)] : nil
    }

    /// A batch with the same storage and only the given events; trackers are kept only if one of them is tracked.
    public func with(events subset: [Event]) -> Batch {
        var copy = self
        copy.events = subset
        if !trackers.isEmpty && !subset.contains(where: { $0.flags.contains(.tracked) }) { copy.trackers = [] }
        return copy
    }

    /// Splits the events over `portCount` batches; `route` picks each event's port (0 is the default port) and
    /// may change the event (set its reason, say). A route outside `0..<portCount` sends the event to port 0.
    public func partition(
        portCount: Int,
        _ route: (inout Event) -> Int
    ) -> [Batch] {
        var buckets = [[Event]](repeating: [], count: portCount)
        for var event in events {
            var port = route(&event)
            if port < 0 || port >= portCount { port = 0 }
            if buckets[port].isEmpty { buckets[port].reserveCapacity(events.count) }
            buckets[port].append(event)
        }
        return buckets.map { with(events: $0) }
    }

    /// A batch of the same events with their bytes rewritten: the supported way for a filter to change entries.
    ///
    /// `rewrite` gets each event's bytes and an empty buffer; it writes the new bytes there and returns true, or
    /// returns false to keep the entry as it is. Everything else carries over, so acks, senders and delivery
    /// tracking stay correct: each event keeps its sender, flags (``EventFlags/tracked``), sequence, level and
    /// reason, and the batch keeps its trackers, reply channel, details and receive time. A rewritten event's
    /// `host` and `app` spans are cleared (they pointed into the old bytes); an unchanged one's move with it.
    /// One allocation for the new bytes of the whole batch.
    public func rewriting(_ rewrite: (_ entry: UnsafeRawBufferPointer, _ output: inout [UInt8]) -> Bool) -> Batch {
        var scratch: [UInt8] = []
        return rewritingByAppending { entry, output in
            scratch.removeAll(keepingCapacity: true)
            guard rewrite(entry, &scratch) else { return false }
            output.append(contentsOf: scratch)
            return true
        }
    }

    /// ``rewriting(_:)`` without the intermediate buffer: `rewrite` appends the new bytes to the end of `output`,
    /// which holds the entries before it (it must append nothing when it returns false).
    package func rewritingByAppending(
        _ rewrite: (_ entry: UnsafeRawBufferPointer, _ output: inout [UInt8]) -> Bool
    ) -> Batch {
        var copy = self
        var newBytes: [UInt8] = []
        newBytes.reserveCapacity(bytes.count + events.count * 32)
        for index in events.indices {
            var event = events[index]
            let start = Int32(newBytes.count)
            let changed = withBytes(of: event) { rewrite($0, &newBytes) }
            if changed {
                event.host = .none
                event.app = .none
            } else {
                newBytes.removeSubrange(Int(start)...)
                withBytes(of: event) { newBytes.append(contentsOf: $0) }
                let shift = start - event.start
                if event.host.isPresent { event.host.start += shift }
                if event.app.isPresent { event.app.start += shift }
            }
            event.start = start
            event.count = Int32(newBytes.count) - start
            copy.events[index] = event
        }
        copy.bytes = newBytes
        return copy
    }

    /// Tells the batch's trackers that its tracked events among `events` were dropped before any output, with the
    /// reason (a filter that drops entries itself calls this; the runtime does for a port that nothing reads).
    public func markDropped(_ events: some Sequence<Event>, reason: String) {
        guard !trackers.isEmpty else { return }
        for event in events where event.flags.contains(.tracked) {
            guard let sequence = event.hasSequence ? event.sequence : scanSequence(of: event) else { continue }
            for tracker in trackers { tracker.markDropped(sender: event.sender, sequence: sequence, reason: reason) }
        }
    }

    /// The sequence of an entry whose event does not carry it (no validator read it, or a change cleared it), or nil.
    public func scanSequence(of event: Event) -> Int64? {
        withBytes(of: event) { bytes in
            let result = JSONEntryScanner.scan(bytes, required: JSONRequiredKeys([]))
            return result.problem == nil ? result.fields.sequence : nil
        }
    }

    /// Reports to every waiting tracker that an output has written (or failed to write) this batch's events.
    ///
    /// An output calls this exactly once per batch it received, after the write is durable as the output
    /// defines it (after `fsync` when configured, after a broker confirm, after a commit).
    public func settle(_ result: WriteResult) {
        for tracker in trackers { tracker.settle(result) }
    }
}

/// What an output reports for a batch it was given.
public enum WriteResult: Sendable, Equatable {
    /// Every event was written.
    case written
    /// The events could not be written; the text says why, for the sender and the log.
    case failed(String)
}

extension Batch {
    /// Appends each event's bytes and a newline to `buffer`: the entries as they arrived, one line each.
    public func appendLines(to buffer: inout [UInt8]) {
        bytes.withUnsafeBufferPointer { all in
            for event in events {
                buffer.append(
                    contentsOf: UnsafeBufferPointer(rebasing: all[Int(event.start)..<Int(event.start + event.count)]))
                buffer.append(0x0A)
            }
        }
    }

    /// Bytes ``appendLines(to:)`` would append.
    public var lineBytes: Int {
        events.reduce(0) { $0 + Int($1.count) + 1 }
    }
}
