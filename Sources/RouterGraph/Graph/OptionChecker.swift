import RouterConfig
import RouterCore

/// Checks one YAML value against an option's type and converts it.
enum OptionChecker {
    /// The converted value, or the message of what is wrong with it (without the option's name).
    static func convert(_ node: ConfigNode, as type: OptionType) -> Result<OptionValue, OptionProblem> {
        switch type {
        case .list(let element):
            guard case .sequence(let items) = node.kind else {
                return .failure(
                    OptionProblem(node.location, "must be a list, e.g. [\(example(element))], got \(shape(node))"))
            }
            var values: [OptionValue] = []
            for item in items {
                switch convert(item, as: element) {
                case .success(let value): values.append(value)
                case .failure(let problem): return .failure(problem)
                }
            }
            return .success(.list(values))
        case .mapping(let element):
            guard case .mapping(let entries) = node.kind else {
                return .failure(
                    OptionProblem(
                        node.location, "must be a mapping, e.g. {name: \(example(element))}, got \(shape(node))"))
            }
            var values: [String: OptionValue] = [:]
            for entry in entries {
                // The YAML loader has already refused a key given twice.
                switch convert(entry.value, as: element) {
                case .success(let value): values[entry.key] = value
                case .failure(let problem): return .failure(problem)
                }
            }
            return .success(.mapping(values))
        case .structure:
            return .success(.tree(tree(node)))
        default:
            guard case .scalar(let text) = node.kind else {
                return .failure(OptionProblem(node.location, "must be \(article(type)), got \(shape(node))"))
            }
            return convertScalar(text, as: type).mapError { OptionProblem(node.location, $0.text) }
        }
    }

    /// The node as an ``OptionTree``, positions and quoting kept.
    static func tree(_ node: ConfigNode) -> OptionTree {
        switch node.kind {
        case .null: OptionTree(.null, at: node.location)
        case .scalar(let text): OptionTree(.scalar(text, quoted: node.isQuoted), at: node.location)
        case .sequence(let items): OptionTree(.sequence(items.map(tree)), at: node.location)
        case .mapping(let entries):
            OptionTree(
                .mapping(
                    entries.map {
                        OptionTreeEntry(key: $0.key, keyLocation: $0.keyLocation, value: tree($0.value))
                    }), at: node.location)
        }
    }

    private static func convertScalar(_ text: String, as type: OptionType) -> Result<OptionValue, Message> {
        switch type {
        case .string:
            return .success(.string(text))
        case .bool:
            switch text.lowercased() {
            case "true", "yes", "on": return .success(.bool(true))
            case "false", "no", "off": return .success(.bool(false))
            default: return .failure("must be true or false, got '\(text)'")
            }
        case .integer(let range):
            guard let value = Int(text.trimmingSpaces) else { return .failure("must be an integer, got '\(text)'") }
            guard range.contains(value) else {
                return .failure("must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
            }
            return .success(.integer(value))
        case .size(let range):
            switch Units.parseSize(text) {
            case .failure(let error):
                return .failure("must be a size such as 4MiB, 100MB or 65536: \(error.message)")
            case .success(let bytes):
                guard range.contains(bytes) else {
                    return .failure(
                        Message(
                            "must be between \(Units.formatSize(range.lowerBound)) and "
                                + "\(Units.formatSize(range.upperBound)), got \(text)"))
                }
                return .success(.size(bytes))
            }
        case .duration(let range):
            switch Units.parseDuration(text) {
            case .failure(let error):
                return .failure("must be a duration such as 5s, 250ms or 1m: \(error.message)")
            case .success(let duration):
                guard range.contains(duration) else {
                    return .failure(
                        Message(
                            "must be between \(Units.formatDuration(range.lowerBound)) and "
                                + "\(Units.formatDuration(range.upperBound)), got \(text)"))
                }
                return .success(.duration(duration))
            }
        case .oneOf(let allowed):
            if let match = allowed.first(where: { $0.lowercased() == text.lowercased() }) {
                return .success(.string(match))
            }
            var message = "must be one of: " + allowed.joined(separator: ", ") + "; got '\(text)'"
            if let suggestion = EditDistance.suggestion(for: text, among: allowed) {
                message += " (did you mean '\(suggestion)'?)"
            }
            return .failure(Message(message))
        case .list:
            return .failure("must be a list")
        case .mapping:
            return .failure("must be a mapping")
        case .structure(let shape):
            return .failure(Message("must be a \(shape)"))
        }
    }

    private static func article(_ type: OptionType) -> String {
        switch type {
        case .integer: "an integer"
        case .oneOf(let values): "one of: " + values.joined(separator: ", ")
        case .list(let element): "a list of \(element.displayName)"
        case .mapping(let element): "a mapping of name to \(element.displayName)"
        default: "a " + type.displayName
        }
    }

    private static func example(_ type: OptionType) -> String {
        switch type {
        case .oneOf(let values): values.first ?? "value"
        case .integer: "1"
        case .size: "4MiB"
        case .duration: "5s"
        case .bool: "true"
        default: "name"
        }
    }

    static func shape(_ node: ConfigNode) -> String {
        switch node.kind {
        case .null: "nothing"
        case .scalar(let text): "'\(text)'"
        case .sequence: "a list"
        case .mapping: "a mapping"
        }
    }
}

/// The text of what is wrong with a value.
struct Message: Error, ExpressibleByStringInterpolation {
    var text: String

    init(_ text: String) { self.text = text }

    init(stringLiteral value: String) { text = value }

    init(stringInterpolation: DefaultStringInterpolation) { text = String(stringInterpolation: stringInterpolation) }
}

/// A value that does not fit its option, and where it is.
struct OptionProblem: Error {
    var location: SourceLocation
    var message: String

    init(_ location: SourceLocation, _ message: String) {
        self.location = location
        self.message = message
    }
}

extension String {
    var trimmingSpaces: Substring {
        var text = Substring(self)
        while text.first == " " { text = text.dropFirst() }
        while text.last == " " { text = text.dropLast() }
        return text
    }
}
