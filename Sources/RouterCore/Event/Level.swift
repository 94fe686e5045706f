/// The severity of a log entry, ordered from least to most severe.
///
/// Parsed case-insensitively from an entry's `level` field. `WARN` is `warning`, `ERR` is `error`, `FATAL` and
/// `CRIT` are `critical`. A level routerd does not know (for example `TRACE` or `NOTICE`) is `unknown`, which
/// sorts below `debug`, so `min_level` never matches it and a `levels` list only matches it through `unknown`.
public enum Level: UInt8, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    /// Absent, not a string, or a name routerd does not know.
    case unknown = 0
    /// `DEBUG`.
    case debug = 1
    /// `INFO`.
    case info = 2
    /// `WARNING` or `WARN`.
    case warning = 3
    /// `ERROR` or `ERR`.
    case error = 4
    /// `CRITICAL`, `CRIT` or `FATAL`.
    case critical = 5

    /// Orders levels by severity.
    public static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }

    /// The canonical upper-case name (`ERROR`), or `UNKNOWN`.
    public var description: String {
        switch self {
        case .unknown: "UNKNOWN"
        case .debug: "DEBUG"
        case .info: "INFO"
        case .warning: "WARNING"
        case .error: "ERROR"
        case .critical: "CRITICAL"
        }
    }

    /// Every spelling accepted in configs and entries, canonical names first.
    public static let acceptedNames: [String] = [
        "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", "WARN", "ERR", "FATAL", "CRIT",
    ]

    /// Parses a level name case-insensitively, returning nil for a name that is not a level.
    public init?(name: some StringProtocol) {
        let level = Array(name.utf8).withUnsafeBytes { Level(bytes: $0) }
        if level == .unknown && name.uppercased() != "UNKNOWN" { return nil }
        self = level
    }

    /// Parses raw ASCII bytes of a level name case-insensitively, without allocating; `unknown` when not a level.
    public init(bytes: UnsafeRawBufferPointer) {
        // Fold to upper case into a fixed 8-byte word; no level name is longer than 8 bytes.
        guard bytes.count >= 3, bytes.count <= 8 else {
            self = .unknown
            return
        }
        var word: UInt64 = 0
        for index in 0..<bytes.count {
            var byte = bytes[index]
            if byte >= 0x61 && byte <= 0x7A { byte -= 0x20 }
            word |= UInt64(byte) << (8 * UInt64(index))
        }
        switch word {
        case Level.word("DEBUG"): self = .debug
        case Level.word("INFO"): self = .info
        case Level.word("WARNING"), Level.word("WARN"): self = .warning
        case Level.word("ERROR"), Level.word("ERR"): self = .error
        case Level.word("CRITICAL"), Level.word("CRIT"), Level.word("FATAL"): self = .critical
        default: self = .unknown
        }
    }

    private static func word(_ text: StaticString) -> UInt64 {
        var word: UInt64 = 0
        text.withUTF8Buffer { buffer in
            for (index, byte) in buffer.enumerated() { word |= UInt64(byte) << (8 * UInt64(index)) }
        }
        return word
    }
}
