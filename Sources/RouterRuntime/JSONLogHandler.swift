public import Logging
import RouterConfig
import RouterCore
import RouterGraph
import RouterSupport
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
