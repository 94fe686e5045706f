import Logging
import Router

#if canImport(Glibc)
    import Glibc
#endif

/// How a file output turns events into lines.
enum LineFormat: String, CaseIterable {
    /// The entry as it arrived.
    case raw
    /// `{"time":..,"reason":..,"detail":..,"offset":..,"sender":..,"entry":..}` for dead-letter files.
    case deadLetter = "dead_letter"
}

/// The loop shared by `file` and `rotating_file`: take batches, buffer up to `flushCount` events or
/// `flushInterval`, write with one write(2) per flush, settle the batches, retry failed writes with backoff.
struct FileWriterLoop {
    let file: SharedFile
    let context: StageContext
    /// Flush when this many events are buffered (1: every take is written at once).
    let flushCount: Int
    /// Flush when the oldest buffered event is this old.
    let flushInterval: Duration
    let fsync: Bool
    let format: LineFormat
    /// Most events held while writes fail; older ones past it are dropped and counted.
    let maxHeld: Int

    /// Reads the options both file outputs share (`fsync`, `format`, `queue_max_events`) from the context.
    init(file: SharedFile, context: StageContext, flushCount: Int, flushInterval: Duration) throws {
        self.file = file
        self.context = context
        self.flushCount = flushCount
        self.flushInterval = flushInterval
        fsync = try context.options.bool("fsync")
        format = LineFormat(rawValue: try context.options.string("format")) ?? .raw
        maxHeld = try context.options.integer("queue_max_events")
    }

    func run(_ queue: OutputQueue) {
        let written = context.counters.counter("events_out", label: "port", value: "default")
        let writeErrors = context.counters.counter("write_errors")
        let rotationsCounter = context.counters.counter("rotations")
        let flushes = context.counters.counter("flushes")
        var held: [Batch] = []
        var heldEvents = 0
        var oldestNanos: Int64 = 0
        var buffer: [UInt8] = []
        var failing = false
        var retryAtNanos: Int64 = 0
        var backoffNanos: Int64 = 100_000_000
        var closed = false

        func flush() {
            guard !held.isEmpty else { return }
            let now = monotonicNanos()
            if failing && now < retryAtNanos { return }
            buffer.removeAll(keepingCapacity: true)
            for batch in held { append(batch, to: &buffer) }
            do {
                let rotated = try buffer.withUnsafeBytes { try file.append($0, fsync: fsync) }
                if rotated > 0 { rotationsCounter.add(rotated) }
                flushes.add()
                written.add(heldEvents)
                for batch in held { batch.settle(.written) }
                held.removeAll(keepingCapacity: true)
                heldEvents = 0
                if failing {
                    failing = false
                    backoffNanos = 100_000_000
                    context.health.set(.ok)
                    context.logger.info("writing again", metadata: ["path": "\(file.path)"])
                }
            } catch {
                writeErrors.add()
                let reason = "\(error)"
                if !failing {
                    context.logger.error(
                        "write failed; holding entries and retrying",
                        metadata: ["error": "\(reason)", "held_events": "\(heldEvents)"])
                }
                failing = true
                context.health.set(.degraded(reason))
                retryAtNanos = now + backoffNanos
                backoffNanos = min(backoffNanos * 2, 5_000_000_000)
                // Tell the waiting senders now (a nack): the entries are not stored yet. They stay held and are
                // written when the file works again, so a sender that resends may store them twice.
                for index in held.indices {
                    held[index].settle(.failed(reason))
                    held[index].trackers = []
                }
            }
        }

        while true {
            let timeout: Duration?
            if held.isEmpty {
                timeout = closed ? .zero : nil
            } else {
                let dueNanos = failing ? retryAtNanos : oldestNanos + flushInterval.nanoseconds
                timeout = .nanoseconds(max(0, dueNanos - monotonicNanos()))
            }
            if closed {
                retryAtNanos = 0
                flush()
                if held.isEmpty || failing { break }
                continue
            }
            // Sleep until enough entries for a flush are queued (or the oldest held one is due), not per batch.
            // With nothing held, wake for the first entry: the flush interval counts from its arrival.
            let needed = held.isEmpty ? 1 : failing ? Int.max : max(1, flushCount - heldEvents)
            switch queue.take(maxEvents: max(flushCount, 1024), minEvents: needed, timeout: timeout) {
            case .batches(let batches):
                for batch in batches {
                    if held.isEmpty { oldestNanos = monotonicNanos() }
                    held.append(batch)
                    heldEvents += batch.count
                }
                if failing && heldEvents > maxHeld { dropOldest() }
                if heldEvents >= flushCount { flush() }
            case .timedOut:
                flush()
            case .closed:
                closed = true
            }
        }
        if !held.isEmpty {
            context.counters.dropped(heldEvents, reason: "write_failed")
            context.logger.error(
                "stopping with entries that could not be written",
                metadata: ["path": "\(file.path)", "events_lost": "\(heldEvents)"])
            for batch in held { batch.settle(.failed("not written before shutdown")) }
        }

        func dropOldest() {
            var dropped = 0
            while heldEvents > maxHeld, !held.isEmpty {
                let batch = held.removeFirst()
                heldEvents -= batch.count
                dropped += batch.count
                batch.settle(.failed("dropped: held entries past queue_max_events while writes fail"))
            }
            context.counters.dropped(dropped, reason: "held_full")
            context.logger.error(
                "dropped held entries while writes fail",
                metadata: ["path": "\(file.path)", "events_lost": "\(dropped)"])
        }
    }

    private func append(_ batch: Batch, to buffer: inout [UInt8]) {
        switch format {
        case .raw:
            batch.appendLines(to: &buffer)
        case .deadLetter:
            for event in batch.events {
                buffer.append(contentsOf: DeadLetter.line(for: event, in: batch).utf8)
                buffer.append(0x0A)
            }
        }
    }
}

/// The dead-letter line format.
enum DeadLetter {
    /// `{"time":"...","reason":"not_json","detail":"...","offset":12,"sender":"127.0.0.1:5000","entry":"..."}`;
    /// an entry that is not valid UTF-8 also gets `entry_base64` with its exact bytes.
    static func line(for event: Event, in batch: Batch) -> String {
        var line = "{\"time\":\"" + Timestamp.iso8601(nanos: batch.receivedAtNanos, digits: 6) + "\""
        line += ",\"reason\":" + JSONText.quoted(event.reason == .none ? "unknown" : event.reason.name)
        if let detail = batch.detail(of: event) { line += ",\"detail\":" + JSONText.quoted(detail) }
        if event.reasonOffset >= 0 { line += ",\"offset\":\(event.reasonOffset)" }
        if event.sender.family != 0 { line += ",\"sender\":\"\(event.sender)\"" }
        let valid = batch.withBytes(of: event) { bytes in
            String(validating: bytes.assumingMemoryBound(to: UInt8.self), as: UTF8.self)
        }
        line += ",\"entry\":" + JSONText.quoted(valid ?? batch.text(of: event))
        if valid == nil {
            line += ",\"entry_base64\":\"" + batch.withBytes(of: event) { Base64.encode($0) } + "\""
        }
        return line + "}"
    }
}

/// Standard base64 (RFC 4648, with padding).
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: UnsafeRawBufferPointer) -> String {
        var output: [UInt8] = []
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var index = 0
        while index + 2 < bytes.count {
            let value = UInt32(bytes[index]) << 16 | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2])
            for shift in [18, 12, 6, 0] { output.append(alphabet[Int((value >> UInt32(shift)) & 63)]) }
            index += 3
        }
        let rest = bytes.count - index
        if rest > 0 {
            var value = UInt32(bytes[index]) << 16
            if rest == 2 { value |= UInt32(bytes[index + 1]) << 8 }
            output.append(alphabet[Int((value >> 18) & 63)])
            output.append(alphabet[Int((value >> 12) & 63)])
            output.append(rest == 2 ? alphabet[Int((value >> 6) & 63)] : UInt8(ascii: "="))
            output.append(UInt8(ascii: "="))
        }
        return String(decoding: output, as: UTF8.self)
    }
}
