public import Logging
internal import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// routerd's own log: one JSON object per line on stderr.
///
/// `{"time":"2026-11-22T10:00:00.123Z","level":"info","message":"listening","stage":"udp_in","address":"..."}`.
/// Metadata keys become top-level fields; nested metadata is flattened to text.
public struct JSONLogHandler: LogHandler {
    /// The least severe level written.
    public var logLevel: Logger.Level
    /// Metadata added to every line.
    public var metadata: Logger.Metadata = [:]
    private let label: String

    /// Makes a handler; `label` is the logger's label (not written: every line already names its stage).
    public init(label: String, level: Logger.Level = .info) {
        self.label = label
        self.logLevel = level
    }

    /// Reads or sets one metadata value.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes one line.
    public func log(event: LogEvent) {
        var line = "{\"time\":\"" + Timestamp.iso8601(nanos: wallClockNanos(), digits: 3) + "\",\"level\":\""
        line += event.level.rawValue + "\",\"message\":"
        JSONText.appendString("\(event.message)", to: &line)
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        for key in merged.keys.sorted() {
            guard let value = merged[key] else { continue }
            line += ","
            JSONText.appendString(key, to: &line)
            line += ":"
            JSONText.appendString(value.description, to: &line)
        }
        line += "}\n"
        stderrLock.withLock { _ in
            line.utf8CString.withUnsafeBufferPointer { buffer in
                var offset = 0
                let total = buffer.count - 1
                while offset < total {
                    let written = write(2, buffer.baseAddress.map { $0 + offset }, total - offset)
                    if written <= 0 { break }
                    offset += written
                }
            }
        }
    }

    /// Deprecated metadata provider requirement; routerd uses none.
    public var metadataProvider: Logger.MetadataProvider? {
        get { nil }
        set {}
    }
}

private let stderrLock = Mutex(())

/// Escaping text into JSON strings.
public enum JSONText {
    /// Appends `text` as a quoted, escaped JSON string.
    public static func appendString(_ text: String, to output: inout String) {
        output += "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            case "<": output += "\\u003c"
            case ">": output += "\\u003e"
            case "&": output += "\\u0026"
            default:
                if scalar.value < 0x20 || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    let hex = String(scalar.value, radix: 16)
                    output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        output += "\""
    }

    /// `text` as a quoted, escaped JSON string.
    public static func quoted(_ text: String) -> String {
        var output = ""
        appendString(text, to: &output)
        return output
    }
}

/// Time formatting without Foundation.
public enum Timestamp {
    /// `2026-11-22T10:00:00.123Z` (UTC) with `digits` fractional digits (0 to 9).
    public static func iso8601(nanos: Int64, digits: Int = 3) -> String {
        var seconds = time_t(nanos / 1_000_000_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        var text = pad(parts.tm_year + 1900, 4) + "-" + pad(parts.tm_mon + 1, 2) + "-" + pad(parts.tm_mday, 2)
        text += "T" + pad(parts.tm_hour, 2) + ":" + pad(parts.tm_min, 2) + ":" + pad(parts.tm_sec, 2)
        let clamped = min(9, max(0, digits))
        if clamped > 0 {
            let fraction = String(nanos % 1_000_000_000)
            let padded = String(repeating: "0", count: 9 - fraction.count) + fraction
            text += "." + padded.prefix(clamped)
        }
        return text + "Z"
    }
}
