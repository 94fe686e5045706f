public import RouterCore
import RouterSupport

/// `ack`: tells senders that their entries are stored, once every output they were routed to has written them.
///
/// For entries at `levels` that carry a sequence, it sends `{"ack":true,"sequence":N,"status":"stored"}` from the
/// receiving socket to the sender, after every output downstream has written the entry (after fsync where an
/// output has `fsync: true`); if one of them fails or drops it, `{"ack":false,"sequence":N,"status":"failed",
/// "reason":"..."}`. Entries pass on unchanged. The config check refuses it downstream of a `one_way` input.
public final class Ack: FilterStage {
    /// The `ack` declaration.
    public static let declaration = StageDeclaration(
        type: "ack",
        summary: "Acknowledges entries to their senders after every output they were routed to has written them.",
        options: [
            levels
        ],
        counters: [
            CounterDeclaration("acks_sent", "Positive acknowledgements sent."),
            CounterDeclaration("nacks_sent", "Negative acknowledgements sent (an output failed or dropped the entry)."),
            CounterDeclaration("not_routed", "Tracked entries that reached no output (answered with a nack)."),
        ],
        needsReplyChannel: true,
        example: StageExample("levels: [ERROR, CRITICAL]")
    )

    static let levels = StageOption<[String]>(
        OptionDeclaration(
            "levels", .list(.oneOf(Level.acceptedNames)), .defaultValue(.list([.string("ERROR")])),
            "Levels whose entries are acknowledged (entries without a sequence never are)."))

    private let matches: [Bool]
    private let acksSent: Counter
    private let nacksSent: Counter
    private let notRouted: Counter

    /// Makes the filter.
    public init(context: StageContext) throws {
        var matches = [Bool](repeating: false, count: Int(Level.critical.rawValue) + 1)
        for name in try context.options.value(Ack.levels) {
            guard let level = Level(name: name) else { throw StageError("'\(name)' is not a level") }
            matches[Int(level.rawValue)] = true
        }
        self.matches = matches
        acksSent = context.counters.counter("acks_sent")
        nacksSent = context.counters.counter("nacks_sent")
        notRouted = context.counters.counter("not_routed")
    }

    /// Flags the entries to acknowledge and attaches one tracker for them to the batch.
    public func process(_ batch: Batch, into output: inout FilterOutput) {
        guard let channel = batch.replyChannel else {
            output.emit(batch)
            return
        }
        var pending: [(sequence: Int64, sender: SenderAddress)] = []
        var events = batch.events
        for index in events.indices {
            let event = events[index]
            let level = event.flags.contains(.fieldsExtracted) ? event.level : batch.scanLevel(of: event)
            guard matches[Int(level.rawValue)], event.hasSequence || !event.flags.contains(.fieldsExtracted),
                event.sender.family != 0
            else { continue }
            let sequence = event.hasSequence ? event.sequence : batch.scanSequence(of: event)
            guard let sequence, sequence != Event.noSequence else { continue }
            events[index].flags.insert(.tracked)
            pending.append((sequence, event.sender))
        }
        guard !pending.isEmpty else {
            output.emit(batch)
            return
        }
        let acksSent = self.acksSent
        let nacksSent = self.nacksSent
        let notRouted = self.notRouted
        let waiting = pending
        let tracker = DeliveryTracker { outcome, dropped in
            var replies: [(payload: [UInt8], to: SenderAddress)] = []
            replies.reserveCapacity(waiting.count)
            var refused = 0
            for entry in waiting {
                // An entry dropped on the way (throttled, sampled out, sent to a port nothing reads) was not
                // written, whatever became of the others.
                if let reason = dropped.reason(sender: entry.sender, sequence: entry.sequence) {
                    replies.append((Ack.reply(sequence: entry.sequence, outcome: .failed(reason)), entry.sender))
                    refused += 1
                    if reason == DeliveryTracker.notRoutedReason { notRouted.add(1) }
                } else {
                    replies.append((Ack.reply(sequence: entry.sequence, outcome: outcome), entry.sender))
                }
            }
            channel.sendReplies(replies)
            let rest = waiting.count - refused
            nacksSent.add(refused)
            switch outcome {
            case .written: acksSent.add(rest)
            case .failed: nacksSent.add(rest)
            case .notRouted:
                nacksSent.add(rest)
                notRouted.add(rest)
            }
        }
        var tracked = batch
        tracked.events = events
        tracked.trackers.append(tracker)
        output.track(tracker)
        output.emit(tracked)
    }

    /// The reply datagram for one entry.
    static func reply(sequence: Int64, outcome: DeliveryOutcome) -> [UInt8] {
        switch outcome {
        case .written:
            return Array("{\"ack\":true,\"sequence\":\(sequence),\"status\":\"stored\"}".utf8)
        case .failed(let reason):
            return Array(
                ("{\"ack\":false,\"sequence\":\(sequence),\"status\":\"failed\",\"reason\":" + JSONText.quoted(reason)
                    + "}").utf8)
        case .notRouted:
            return Array(
                ("{\"ack\":false,\"sequence\":\(sequence),\"status\":\"failed\",\"reason\":"
                    + JSONText.quoted(DeliveryTracker.notRoutedReason) + "}").utf8)
        }
    }
}
