public import RouterCore

/// One message about a config file, rendered in compiler style with the offending source line and a caret.
///
/// The rendering is:
///
///     router.yaml:12:7: error: outputs.archive: unknown option 'max_sise' (did you mean 'max_size'?)
///           max_sise: 10MiB
///           ^
///
/// The location prefix is left out when `location` is nil, the `path: ` part when `path` is nil, and the source and
/// caret lines when `sourceLine` is nil. A location with line 0 renders as just the file name.
public struct Diagnostic: Error, Sendable, CustomStringConvertible {
    /// How serious a diagnostic is.
    public enum Severity: String, Sendable {
        /// The config is rejected.
        case error
        /// The config is accepted, but probably not what was meant.
        case warning
    }

    /// Whether this is an error or a warning.
    public var severity: Severity
    /// Where in the file the problem is, or nil for problems that have no position.
    public var location: SourceLocation?
    /// The config path the message is about, e.g. `outputs.archive`; nil for none.
    public var path: String?
    /// The message, without location, severity or path.
    public var message: String
    /// The raw source line at `location.line`, quoted under the message with a caret; nil to show none.
    public var sourceLine: String?

    /// Creates a diagnostic; prefer `ConfigSource.diagnostic(_:at:path:severity:)`, which fills in `sourceLine`.
    public init(
        severity: Severity = .error, location: SourceLocation?, path: String?, message: String, sourceLine: String?
    ) {
        self.severity = severity
        self.location = location
        self.path = path
        self.message = message
        self.sourceLine = sourceLine
    }

    /// The rendered diagnostic: the message line, then (with a source line) the source line and a caret line.
    ///
    /// The caret line copies tabs from the source line so that the caret lines up under a tab-indented column.
    /// There is no trailing newline.
    public var description: String {
        var header = ""
        if let location {
            header += "\(location): "
        }
        header += "\(severity.rawValue): "
        if let path {
            header += "\(path): "
        }
        header += message
        guard let sourceLine else {
            return header
        }
        return header + "\n" + sourceLine + "\n" + Self.caretLine(under: sourceLine, column: location?.column ?? 1)
    }

    /// Padding of (column - 1) characters, tabs where the source has tabs, then `^`.
    private static func caretLine(under sourceLine: String, column: Int) -> String {
        var padding = String.UnicodeScalarView()
        var scalars = sourceLine.unicodeScalars.makeIterator()
        for _ in 0..<max(0, column - 1) {
            padding.append(scalars.next() == "\t" ? "\t" : " ")
        }
        return String(padding) + "^"
    }
}

/// All the diagnostics of a failed config load, thrown as one error.
public struct ConfigErrors: Error, Sendable, CustomStringConvertible {
    /// The diagnostics, in the order they should be shown (usually by position in the file).
    public var diagnostics: [Diagnostic]

    /// Wraps `diagnostics`; an empty list is allowed but renders as an empty string.
    public init(_ diagnostics: [Diagnostic]) {
        self.diagnostics = diagnostics
    }

    /// Every diagnostic's rendering, joined by newlines.
    public var description: String {
        diagnostics.map(\.description).joined(separator: "\n")
    }
}

extension ConfigSource {
    /// A diagnostic at `location`, with the source line filled in from this source.
    ///
    /// The source line is only filled in when `location` is in this file (`location.file == path`) and names an
    /// existing line; otherwise the diagnostic has no source line.
    public func diagnostic(
        _ message: String, at location: SourceLocation?, path: String?, severity: Diagnostic.Severity = .error
    ) -> Diagnostic {
        var sourceLine: String?
        if let location, location.file == self.path {
            sourceLine = line(location.line)
        }
        return Diagnostic(
            severity: severity, location: location, path: path, message: message, sourceLine: sourceLine)
    }
}
