import Logging
import RouterCore
import RouterSupport

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

/// The writer both file outputs use: one write(2) per group (never per entry), optionally fsync'd, on the shared
/// writer of its path. The driver buffers (`rotating_file`'s `flush_count` and `flush_interval`), retries a failed
/// write with backoff and keeps taking meanwhile (``WhileFailing/holdAndKeepTaking``).
struct FileWriter: OutputWriter {
    let file: SharedFile
    let fsync: Bool
    let format: LineFormat
    let writeErrors: Counter
    let rotations: Counter
    let flushes: Counter
    let tornLinesClosed: Counter
    let logger: Logger
    private var buffer: [UInt8] = []
    /// A group whose first bytes went into a file that was rotated away before the rest failed: those are written,
    /// and the retry of the same group starts after them.
    private var resume: (id: UInt64, firstEvent: UInt64, events: Int, bytes: Int)?

    /// How the driver feeds a file output: write failures hold entries and keep the intake going.
    static func traits(flushCount: Int = 1, flushInterval: Duration = .zero) -> OutputTraits {
        OutputTraits(
            maxGroupEvents: max(flushCount, 1024), flushCount: flushCount, flushInterval: flushInterval,
            whileFailing: .holdAndKeepTaking, opensAtStart: false,
            wording: OutageWording(
                cannotOpen: "cannot open; holding entries and retrying",
                refused: "write failed; holding entries and retrying",
                stoppedWithLosses: "stopping with entries that could not be written", unavailableReason: "write_failed")
        )
    }

    /// Reads the options both file outputs share (`fsync`, `format`).
    init(file: SharedFile, context: StageContext) throws {
        self.file = file
        fsync = try context.options.value(FileOptions.fsync)
        format = LineFormat(rawValue: try context.options.value(FileOptions.format)) ?? .raw
        writeErrors = context.counters.counter("write_errors")
        rotations = context.counters.counter("rotations")
        flushes = context.counters.counter("flushes")
        tornLinesClosed = context.counters.counter("torn_lines_closed")
        logger = context.logger
    }

    var outageMetadata: Logger.Metadata { ["path": "\(file.path)"] }

    mutating func write(_ group: WriteGroup) -> WriteOutcome {
        // The buffer is swapped out while it is filled: appending to it as `self.buffer` from a method that also
        // reads `self` made Swift copy the whole buffer on every write (a fresh allocation and page faults each).
        var bytes: [UInt8] = []
        swap(&bytes, &buffer)
        defer { swap(&bytes, &buffer) }
        bytes.removeAll(keepingCapacity: true)
        for batch in group.batches { FileWriter.append(batch, as: format, to: &bytes) }
        var skip = 0
        if let resume, resume.id == group.id, resume.firstEvent == group.firstEventNumber,
            resume.events == group.eventCount, resume.bytes <= bytes.count
        {
            skip = resume.bytes
        }
        resume = nil
        do {
            let result = try bytes.withUnsafeBytes { all in
                try file.append(UnsafeRawBufferPointer(rebasing: all[skip...]), fsync: fsync)
            }
            if result.rotations > 0 { rotations.add(result.rotations) }
            if result.tornLinesClosed > 0 {
                tornLinesClosed.add(result.tornLinesClosed)
                logger.warning(
                    "the file ended in a partial line (left by a crash?); ended it with a newline first",
                    metadata: ["path": "\(file.path)"])
            }
            flushes.add()
            return .written
        } catch let error as AppendFailure {
            writeErrors.add()
            if skip + error.committedBytes > 0 {
                resume = (group.id, group.firstEventNumber, group.eventCount, skip + error.committedBytes)
            }
            return .retry(error.message)
        } catch {
            writeErrors.add()
            return .retry("\(error)")
        }
    }

    private static func append(_ batch: Batch, as format: LineFormat, to buffer: inout [UInt8]) {
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
        var line = "{\"time\":\"" + Timestamp.iso8601(nanos: batch.arrivalNanos(of: event), digits: 6) + "\""
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
