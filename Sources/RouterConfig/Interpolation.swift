/// Environment-variable interpolation of config values.
///
/// Supported forms, in one scalar value:
/// - `${NAME}`: the value of `NAME`; an error when it is not set (an empty value is used as is).
/// - `${NAME:-default}`: the value of `NAME`, or `default` when it is unset or empty. The default is literal text up
///   to the first `}` and is not itself interpolated.
/// - `${NAME:?message}`: the value of `NAME`, or the error `NAME: message` when it is unset or empty.
/// - `$$`: a literal `$`.
///
/// `NAME` is `[A-Za-z_][A-Za-z0-9_]*`. A `$` followed by anything but `{` or `$` is kept as is. The result is plain
/// text: it is never parsed as YAML again.
public enum Interpolation {
    /// Expands ${VAR}, ${VAR:-default}, ${VAR:?message} and $$ (a literal $) in one scalar value.
    ///
    /// Stops at the first error: an unset variable, a `:?` check that fails, or a malformed reference (`${` without
    /// a closing `}`, a bad name, or an unknown operator), reported as `invalid variable reference '${...'`.
    public static func expand(_ text: String, environment: [String: String]) -> Result<String, InterpolationError> {
        guard text.unicodeScalars.contains("$") else {
            return .success(text)
        }
        let scalars = Array(text.unicodeScalars)
        var output = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            guard scalar == "$", index + 1 < scalars.count, scalars[index + 1] == "$" || scalars[index + 1] == "{"
            else {
                output.append(scalar)
                index += 1
                continue
            }
            if scalars[index + 1] == "$" {
                output.append("$")
                index += 2
                continue
            }
            guard let close = scalars[(index + 2)...].firstIndex(of: "}") else {
                return .failure(invalidReference(scalars[index...]))
            }
            switch resolve(scalars[(index + 2)..<close], environment: environment) {
            case .value(let value):
                output.append(contentsOf: value.unicodeScalars)
            case .failure(let message):
                return .failure(InterpolationError(message: message))
            case .malformed:
                return .failure(invalidReference(scalars[index...close]))
            }
            index = close + 1
        }
        return .success(String(output))
    }

    private enum Resolution {
        case value(String)
        case failure(String)
        case malformed
    }

    /// Resolves the body of one `${...}` reference (the text between the braces).
    private static func resolve(_ body: ArraySlice<Unicode.Scalar>, environment: [String: String]) -> Resolution {
        var nameEnd = body.startIndex
        while nameEnd < body.endIndex, isNameScalar(body[nameEnd], first: nameEnd == body.startIndex) {
            nameEnd += 1
        }
        guard nameEnd > body.startIndex else {
            return .malformed
        }
        let name = String(String.UnicodeScalarView(body[..<nameEnd]))
        let value = environment[name]
        let rest = body[nameEnd...]
        if rest.isEmpty {
            guard let value else {
                return .failure(
                    "environment variable '\(name)' is not set (write ${\(name):-default} to give a default)")
            }
            return .value(value)
        }
        guard rest.count >= 2, rest[rest.startIndex] == ":" else {
            return .malformed
        }
        let operand = String(String.UnicodeScalarView(rest.dropFirst(2)))
        let isSetAndNonEmpty = !(value ?? "").isEmpty
        switch rest[rest.startIndex + 1] {
        case "-":
            // A nested reference in the default would be cut at its `}`; reject it rather than misread it.
            if operand.contains("${") {
                return .malformed
            }
            return .value(isSetAndNonEmpty ? (value ?? "") : operand)
        case "?":
            guard isSetAndNonEmpty else {
                let message = operand.isEmpty ? "environment variable is not set or empty" : operand
                return .failure("\(name): \(message)")
            }
            return .value(value ?? "")
        default:
            return .malformed
        }
    }

    private static func isNameScalar(_ scalar: Unicode.Scalar, first: Bool) -> Bool {
        switch scalar {
        case "A"..."Z", "a"..."z", "_":
            return true
        case "0"..."9":
            return !first
        default:
            return false
        }
    }

    private static func invalidReference(_ reference: ArraySlice<Unicode.Scalar>) -> InterpolationError {
        InterpolationError(message: "invalid variable reference '\(String(String.UnicodeScalarView(reference)))'")
    }
}

/// Why a value could not be interpolated; `message` is ready to show to the user.
public struct InterpolationError: Error, Sendable, Equatable {
    /// The human-readable reason, e.g. `environment variable 'TOKEN' is not set (...)`.
    public var message: String

    /// Creates an error with a ready-to-show message.
    public init(message: String) {
        self.message = message
    }
}
