import RouterSupport

/// Parsing and rendering of byte sizes and durations as written in config files.
///
/// Numbers are decimal with an optional fraction (`1.5GiB`), computed exactly (no floating point); the result must
/// be a whole number of bytes or nanoseconds. Space between the number and the unit is allowed (`10 KiB`), as is
/// surrounding whitespace. Signs are not accepted: `-1MB` is an error, and so is `+1MB`.
public enum Units {
    private static let sizeUnits: [(name: String, bytes: Int)] = [
        ("B", 1),
        ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000), ("TB", 1_000_000_000_000),
        ("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("TiB", 1 << 40),
    ]

    private static let durationUnits: [(name: String, nanoseconds: Int)] = [
        ("ns", 1), ("us", 1_000), ("ms", 1_000_000), ("s", 1_000_000_000),
        ("m", 60_000_000_000), ("h", 3_600_000_000_000),
    ]

    private static let sizeUnitList = "B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
    private static let durationUnitList = "ns, us, ms, s, m or h"

    /// "4MiB", "100MB", "65536", "512B", "1.5GiB", "10 KiB"; KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024;
    /// unit letters case-insensitive ("100mb" == 100MB). Returns bytes or an error message naming the accepted units.
    ///
    /// A bare number is a number of bytes. Errors: empty text, a sign, a malformed number, an unknown unit, a
    /// fraction that is not a whole number of bytes, or a result larger than `Int.max`.
    public static func parseSize(_ text: String) -> Result<Int, UnitError> {
        let trimmed = trimmed(text)
        guard !trimmed.isEmpty else {
            return .failure(UnitError(message: "empty size (write e.g. 4MiB or 100MB)"))
        }
        let number: ExactDecimal
        let unit: String
        switch split(trimmed) {
        case .success(let parts):
            (number, unit) = parts
        case .failure(let problem):
            return .failure(numberError(problem, text: trimmed, kind: "size", examples: "4MiB or 100MB"))
        }
        let multiplier: Int
        if unit.isEmpty {
            multiplier = 1
        } else if let match = sizeUnits.first(where: { $0.name.lowercased() == unit.lowercased() }) {
            multiplier = match.bytes
        } else {
            return .failure(
                UnitError(message: "unknown size unit '\(unit)' in '\(trimmed)' (use \(sizeUnitList))"))
        }
        switch number.scaled(by: multiplier) {
        case .value(let bytes):
            return .success(bytes)
        case .fractional:
            return .failure(UnitError(message: "size '\(trimmed)' is not a whole number of bytes"))
        case .overflow:
            return .failure(UnitError(message: "size '\(trimmed)' is too large"))
        }
    }

    /// "5s", "250ms", "1m", "2h", "1.5s", "100us", "0"; a bare number other than 0 is an error:
    /// "missing unit in '5' (use e.g. 5s or 250ms)".
    ///
    /// Units are `ns`, `us`, `ms`, `s`, `m` (minutes) and `h`, case-insensitive. Errors: empty text, a sign, a
    /// malformed number, a missing or unknown unit, a fraction of a nanosecond, or more than `Int.max` nanoseconds.
    public static func parseDuration(_ text: String) -> Result<Duration, UnitError> {
        let trimmed = trimmed(text)
        guard !trimmed.isEmpty else {
            return .failure(UnitError(message: "empty duration (write e.g. 5s or 250ms)"))
        }
        let number: ExactDecimal
        let unit: String
        switch split(trimmed) {
        case .success(let parts):
            (number, unit) = parts
        case .failure(let problem):
            return .failure(numberError(problem, text: trimmed, kind: "duration", examples: "5s or 250ms"))
        }
        let multiplier: Int
        if unit.isEmpty {
            guard number.isZero else {
                return .failure(UnitError(message: "missing unit in '\(trimmed)' (use e.g. 5s or 250ms)"))
            }
            multiplier = 1
        } else if let match = durationUnits.first(where: { $0.name == unit.lowercased() }) {
            multiplier = match.nanoseconds
        } else {
            return .failure(
                UnitError(message: "unknown duration unit '\(unit)' in '\(trimmed)' (use \(durationUnitList))"))
        }
        switch number.scaled(by: multiplier) {
        case .value(let nanoseconds):
            return .success(.nanoseconds(nanoseconds))
        case .fractional:
            return .failure(UnitError(message: "duration '\(trimmed)' is not a whole number of nanoseconds"))
        case .overflow:
            return .failure(UnitError(message: "duration '\(trimmed)' is too large"))
        }
    }

    /// Renders a size / duration back in the shortest exact unit form ("4MiB", "100MB", "5s", "250ms") for docs.
    ///
    /// The result always parses back to `bytes` with `parseSize`. Among the units that divide `bytes` exactly the
    /// shortest text wins (the larger unit on a tie); 0 is `0B`. A negative value (not a valid size) is rendered in
    /// bytes, e.g. `-5B`.
    public static func formatSize(_ bytes: Int) -> String {
        guard bytes > 0 else {
            return "\(bytes)B"
        }
        return shortest(bytes, units: sizeUnits.map { ($0.name, $0.bytes) })
    }

    /// Renders a duration in the shortest exact unit form ("5s", "250ms", "2h") for docs.
    ///
    /// The result parses back to `duration` with `parseDuration`, except that sub-nanosecond parts are dropped and
    /// negative durations (not valid config values) render with a leading `-`. Zero is `0s`.
    public static func formatDuration(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        if seconds < 0 || attoseconds < 0 {
            return "-" + formatDuration(.zero - duration)
        }
        let (wholeNanoseconds, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (nanoseconds, overflow2) = wholeNanoseconds.addingReportingOverflow(attoseconds / 1_000_000_000)
        guard !overflow, !overflow2 else {
            return "\(seconds)s"
        }
        guard nanoseconds > 0 else {
            return "0s"
        }
        return shortest(Int(nanoseconds), units: durationUnits.map { ($0.name, $0.nanoseconds) })
    }

    private static func shortest(_ value: Int, units: [(String, Int)]) -> String {
        var best: String?
        for (name, multiplier) in units.sorted(by: { $0.1 > $1.1 }) where value % multiplier == 0 {
            let candidate = "\(value / multiplier)\(name)"
            if let current = best, current.count <= candidate.count {
                continue
            }
            best = candidate
        }
        return best ?? "\(value)\(units.first?.0 ?? "")"
    }

    private static func trimmed(_ text: String) -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        let start = text.firstIndex { !isSpace($0) } ?? text.endIndex
        let end = text.lastIndex { !isSpace($0) }.map { text.index(after: $0) } ?? start
        return text[start..<end]
    }

    private enum NumberProblem: Error {
        case negative
        case malformed
        case overflow
        case tooPrecise
    }

    /// Splits "1.5 GiB" into the exact number and the unit text ("GiB"); the unit may be empty.
    private static func split(_ text: Substring) -> Result<(ExactDecimal, String), NumberProblem> {
        if text.first == "-" {
            return .failure(.negative)
        }
        let scalars = Array(text.unicodeScalars)
        var index = 0
        var integerDigits: [Int] = []
        var fractionDigits: [Int] = []
        while index < scalars.count, let digit = digitValue(scalars[index]) {
            integerDigits.append(digit)
            index += 1
        }
        if index < scalars.count, scalars[index] == "." {
            index += 1
            while index < scalars.count, let digit = digitValue(scalars[index]) {
                fractionDigits.append(digit)
                index += 1
            }
            guard !fractionDigits.isEmpty else {
                return .failure(.malformed)
            }
        }
        guard !integerDigits.isEmpty else {
            return .failure(.malformed)
        }
        while index < scalars.count, scalars[index] == " " || scalars[index] == "\t" {
            index += 1
        }
        let unit = String(String.UnicodeScalarView(scalars[index...]))
        guard unit.unicodeScalars.allSatisfy({ $0.properties.isAlphabetic }) else {
            return .failure(.malformed)
        }
        // Trailing zeros do not count; 10^18 is the largest power of ten an Int can hold.
        let significantFractionDigits = fractionDigits.lastIndex { $0 != 0 }.map { $0 + 1 } ?? 0
        guard significantFractionDigits <= 18 else {
            return .failure(.tooPrecise)
        }
        guard let number = ExactDecimal(integerDigits: integerDigits, fractionDigits: fractionDigits) else {
            return .failure(.overflow)
        }
        return .success((number, unit))
    }

    private static func digitValue(_ scalar: Unicode.Scalar) -> Int? {
        guard scalar >= "0", scalar <= "9" else {
            return nil
        }
        return Int(scalar.value - 48)
    }

    private static func numberError(
        _ problem: NumberProblem, text: Substring, kind: String, examples: String
    ) -> UnitError {
        switch problem {
        case .negative:
            return UnitError(message: "\(kind) must not be negative: '\(text)'")
        case .malformed:
            return UnitError(message: "invalid \(kind) '\(text)' (write a number and a unit, e.g. \(examples))")
        case .overflow:
            return UnitError(message: "\(kind) '\(text)' is too large")
        case .tooPrecise:
            return UnitError(message: "\(kind) '\(text)' has too many decimal places")
        }
    }

    /// An exact non-negative decimal `numerator / 10^scale`.
    private struct ExactDecimal {
        var numerator: Int
        var scale: Int

        enum Scaled {
            case value(Int)
            case fractional
            case overflow
        }

        /// Builds the number from its digits; nil when it does not fit (trailing fraction zeros are ignored).
        init?(integerDigits: [Int], fractionDigits: [Int]) {
            var fraction = fractionDigits
            while fraction.last == 0 {
                fraction.removeLast()
            }
            // 10^18 is the largest power of ten an Int can hold.
            guard fraction.count <= 18 else {
                return nil
            }
            var numerator = 0
            for digit in integerDigits + fraction {
                let (shifted, overflow1) = numerator.multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = shifted.addingReportingOverflow(digit)
                guard !overflow1, !overflow2 else {
                    return nil
                }
                numerator = sum
            }
            self.numerator = numerator
            self.scale = fraction.count
        }

        var isZero: Bool { numerator == 0 }

        /// `self * multiplier`, if that is a whole number that fits in an Int.
        func scaled(by multiplier: Int) -> Scaled {
            var divisor = 1
            for _ in 0..<scale {
                divisor *= 10
            }
            let common = Self.gcd(multiplier, divisor)
            let reducedDivisor = divisor / common
            guard numerator % reducedDivisor == 0 else {
                return .fractional
            }
            let (product, overflow) = (numerator / reducedDivisor).multipliedReportingOverflow(by: multiplier / common)
            return overflow ? .overflow : .value(product)
        }

        private static func gcd(_ a: Int, _ b: Int) -> Int {
            var (x, y) = (a, b)
            while y != 0 {
                (x, y) = (y, x % y)
            }
            return x
        }
    }
}

/// Why a size or duration could not be parsed; `message` is ready to show to the user.
public struct UnitError: Error, Sendable, Equatable {
    /// The human-readable reason, naming the accepted units where that helps.
    public var message: String

    /// Creates an error with a ready-to-show message.
    public init(message: String) {
        self.message = message
    }
}
