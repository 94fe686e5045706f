import Router
import RouterSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The levels the clients send.
enum EntryLevel: Int, CaseIterable {
    case debug, info, warning, error

    var name: String {
        switch self {
        case .debug: "DEBUG"
        case .info: "INFO"
        case .warning: "WARNING"
        case .error: "ERROR"
        }
    }

    /// The load test's level for an entry: exactly `errorsPerMillion` in a million are ERROR, spread evenly
    /// (entry n is ERROR when floor(n * ratio) steps up); of the rest about 3/4 INFO, 1/8 DEBUG, 1/8 WARNING.
    static func forLoad(sequence: Int64, errorsPerMillion: Int64) -> EntryLevel {
        if errorsPerMillion > 0
            && (sequence &* errorsPerMillion) / 1_000_000 != ((sequence &- 1) &* errorsPerMillion) / 1_000_000
        {
            return .error
        }
        switch UInt64(bitPattern: sequence) &* 0x9E37_79B9_7F4A_7C15 >> 61 {
        case 0: return .debug
        case 1: return .warning
        default: return .info
        }
    }

    /// The sample client's level for entry n (from 1): a fixed cycle of ten with one ERROR (entries 7, 17, ...),
    /// two DEBUG, one WARNING and six INFO, so that `--count 20` always has two ERRORs to acknowledge.
    static func forSample(sequence: Int64) -> EntryLevel {
        let cycle: [EntryLevel] = [.info, .info, .debug, .info, .warning, .info, .error, .info, .debug, .info]
        return cycle[Int(((sequence - 1) % 10 + 10) % 10)]
    }
}

/// The machine's host name (gethostname), or "localhost" when it has none.
func machineHostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
    let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return name.isEmpty ? "localhost" : name
}

/// An entry with the seed's fields, in the seed's order, as one JSON line.
func seedEntry(timestampNanos: Int64, sequence: Int64, app: String, level: EntryLevel, message: String, host: String)
    -> String
{
    "{\"timestamp\":\"\(Timestamp.iso8601(nanos: timestampNanos, digits: 6))\",\"sequence\":\(sequence),\"app\":"
        + JSONText.quoted(app) + ",\"level\":\"\(level.name)\",\"message\":" + JSONText.quoted(message)
        + ",\"host\":" + JSONText.quoted(host) + "}"
}

/// `2026-11-22T10:00:00.123456Z` (27 bytes), kept in place and updated without allocating: the date and time
/// are formatted once per second, the microseconds on every update.
final class TimestampText {
    static let length = 27
    let bytes: UnsafeMutablePointer<UInt8>
    private var second: Int64 = -1

    init() {
        bytes = UnsafeMutablePointer<UInt8>.allocate(capacity: TimestampText.length)
        bytes.initialize(repeating: UInt8(ascii: "0"), count: TimestampText.length)
    }

    deinit {
        bytes.deallocate()
    }

    /// Sets the text to the wall-clock time `nanos` (since the epoch).
    func update(nanos: Int64) {
        let seconds = nanos / 1_000_000_000
        if seconds != second {
            second = seconds
            let prefix = Array(Timestamp.iso8601(nanos: seconds * 1_000_000_000, digits: 0).utf8.prefix(19))
            for index in 0..<min(19, prefix.count) { bytes[index] = prefix[index] }
            bytes[19] = UInt8(ascii: ".")
            bytes[26] = UInt8(ascii: "Z")
        }
        var micros = (nanos % 1_000_000_000) / 1_000
        for index in stride(from: 25, through: 20, by: -1) {
            bytes[index] = UInt8(ascii: "0") + UInt8(micros % 10)
            micros /= 10
        }
    }
}

/// Writes load-test entries straight into a send buffer: constant pieces are prepared once, so an entry costs a
/// few copies and the digits of its sequence.
final class LoadEntryWriter {
    /// The longest entry this writer makes.
    let maxEntryBytes: Int
    private let head: [UInt8]
    private let afterTimestamp: [UInt8]
    private let afterSequence: [UInt8]
    private let tails: [[UInt8]]

    /// `app` and `host` are JSON-escaped; the message is `messageBytes` of printable ASCII filler.
    init(app: String, host: String, messageBytes: Int) {
        head = Array("{\"timestamp\":\"".utf8)
        afterTimestamp = Array("\",\"sequence\":".utf8)
        afterSequence = Array((",\"app\":" + JSONText.quoted(app) + ",\"level\":\"").utf8)
        let filler = Array("load test entry: the quick brown fox jumps over the lazy dog. ".utf8)
        let message = (0..<max(0, messageBytes)).map { filler[$0 % filler.count] }
        let rest =
            Array("\",\"message\":\"".utf8) + message + Array(("\",\"host\":" + JSONText.quoted(host) + "}").utf8)
        tails = EntryLevel.allCases.map { Array($0.name.utf8) + rest }
        maxEntryBytes =
            head.count + TimestampText.length + afterTimestamp.count + 20 + afterSequence.count
            + (tails.map(\.count).max() ?? 0)
    }

    /// Writes one entry at `destination` (which has room for `maxEntryBytes`); returns its length.
    func write(
        sequence: Int64, level: EntryLevel, timestamp: TimestampText, to destination: UnsafeMutablePointer<UInt8>
    ) -> Int {
        var cursor = destination
        @inline(__always) func copy(_ piece: [UInt8]) {
            piece.withUnsafeBufferPointer { source in
                guard let base = source.baseAddress else { return }
                cursor.update(from: base, count: source.count)
                cursor += source.count
            }
        }
        copy(head)
        cursor.update(from: timestamp.bytes, count: TimestampText.length)
        cursor += TimestampText.length
        copy(afterTimestamp)
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let count = withUnsafeMutableBytes(of: &digits) { raw -> Int in
            var value = sequence.magnitude
            var index = raw.count
            repeat {
                index -= 1
                raw[index] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            } while value > 0
            if sequence < 0 {
                index -= 1
                raw[index] = UInt8(ascii: "-")
            }
            let length = raw.count - index
            if let base = raw.baseAddress {
                cursor.update(from: base.advanced(by: index).assumingMemoryBound(to: UInt8.self), count: length)
            }
            return length
        }
        cursor += count
        copy(afterSequence)
        copy(tails[level.rawValue])
        return destination.distance(to: cursor)
    }
}
