/// A 1-based position in a config file.
///
/// `line` and `column` are 1-based; columns count Unicode scalars (characters), not bytes, matching libyaml's marks.
/// A location whose `line` is 0 (or less) denotes the file as a whole, for example when the file cannot be read;
/// it renders as the bare file name.
public struct SourceLocation: Sendable, Hashable, CustomStringConvertible {
    /// The path of the file, as given to the loader (not normalised).
    public var file: String
    /// The 1-based line number; 0 means "the whole file".
    public var line: Int
    /// The 1-based column, counted in Unicode scalars; 0 means "the whole line" or "the whole file".
    public var column: Int

    /// Creates a location; pass `line: 0, column: 0` to refer to the whole file.
    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// The location in compiler style, `file:line:column`, or just `file` when `line` is 0 or less.
    public var description: String {
        line > 0 ? "\(file):\(line):\(column)" : file
    }
}

/// The text of a config file, kept so that diagnostics can quote the source line.
///
/// Lines are split the same way libyaml counts them: at `\n`, `\r\n`, a lone `\r`, U+0085, U+2028 and U+2029,
/// so that a line number from a parser mark always finds the right text.
public struct ConfigSource: Sendable {
    /// The path the text was read from (or a display name for inline text); it becomes `SourceLocation.file`.
    public let path: String
    /// The full text of the file.
    public let text: String
    /// The unicode-scalar range of each line, without its terminator; index 0 is line 1.
    private let lineRanges: [Range<String.UnicodeScalarView.Index>]

    /// Creates a source from already-read text; the line index is built once here.
    public init(path: String, text: String) {
        self.path = path
        self.text = text
        self.lineRanges = Self.splitLines(text)
    }

    /// The raw text of 1-based line `number` without its line terminator, or nil.
    ///
    /// Returns nil for `number < 1` or past the last line. A leading byte-order mark on line 1 is dropped, because
    /// libyaml does not count it as a column.
    public func line(_ number: Int) -> String? {
        guard number >= 1, number <= lineRanges.count else {
            return nil
        }
        var scalars = text.unicodeScalars[lineRanges[number - 1]]
        if number == 1, scalars.first == "\u{FEFF}" {
            scalars = scalars.dropFirst()
        }
        return String(String.UnicodeScalarView(scalars))
    }

    /// The location of the character at UTF-8 byte `offset` of `text` (used for libyaml reader errors).
    package func location(ofUTF8Offset offset: Int) -> SourceLocation {
        var line = 1
        var column = 1
        var consumed = 0
        var previousWasCR = false
        for scalar in text.unicodeScalars {
            if consumed >= offset {
                break
            }
            consumed += UTF8.width(scalar)
            if scalar == "\n" && previousWasCR {
                previousWasCR = false
                continue
            }
            previousWasCR = scalar == "\r"
            if Self.isLineBreak(scalar) {
                line += 1
                column = 1
            } else if scalar != "\u{FEFF}" || line > 1 || column > 1 {
                column += 1
            }
        }
        return SourceLocation(file: path, line: line, column: column)
    }

    private static func isLineBreak(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}":
            return true
        default:
            return false
        }
    }

    private static func splitLines(_ text: String) -> [Range<String.UnicodeScalarView.Index>] {
        let scalars = text.unicodeScalars
        var ranges: [Range<String.UnicodeScalarView.Index>] = []
        var lineStart = scalars.startIndex
        var index = scalars.startIndex
        while index < scalars.endIndex {
            let scalar = scalars[index]
            guard isLineBreak(scalar) else {
                index = scalars.index(after: index)
                continue
            }
            ranges.append(lineStart..<index)
            index = scalars.index(after: index)
            if scalar == "\r", index < scalars.endIndex, scalars[index] == "\n" {
                index = scalars.index(after: index)
            }
            lineStart = index
        }
        // The text after the last terminator is a line unless it is empty and follows a terminator.
        if lineStart < scalars.endIndex || ranges.isEmpty {
            ranges.append(lineStart..<scalars.endIndex)
        }
        return ranges
    }
}
