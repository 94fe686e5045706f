import RouterConfig
public import RouterCore
import RouterSupport

/// Renders the registry's declarations: `routerd stages` (text, JSON) and docs/stages.md (Markdown).
public enum StageReference {
    /// Plain text, one block per stage kind.
    public static func text(_ registry: StageRegistry) -> String {
        var out = ""
        for kind in registry.kinds {
            out += "\(kind.declaration.type) (\(kind.role.rawValue)): \(kind.declaration.summary)\n"
            for option in kind.options {
                out += "  \(option.name): \(option.type.displayName), \(requirementText(option.requirement))\n"
                out += "      \(option.description)\n"
            }
            if !kind.declaration.ports.isEmpty {
                out += "  ports: default, " + kind.declaration.ports.map(\.name).joined(separator: ", ") + "\n"
            }
            out += "\n"
        }
        return out
    }

    /// A JSON document: `{"stages":[{"type","role","summary","options":[...],"ports":[...],"counters":[...]}]}`.
    public static func json(_ registry: StageRegistry) -> String {
        var out = "{\"stages\":["
        for (index, kind) in registry.kinds.enumerated() {
            if index > 0 { out += "," }
            out += "{\"type\":" + JSONText.quoted(kind.declaration.type)
            out += ",\"role\":" + JSONText.quoted(kind.role.rawValue)
            out += ",\"summary\":" + JSONText.quoted(kind.declaration.summary)
            out += ",\"options\":["
            for (optionIndex, option) in kind.options.enumerated() {
                if optionIndex > 0 { out += "," }
                out += "{\"name\":" + JSONText.quoted(option.name)
                out += ",\"type\":" + JSONText.quoted(option.type.kindName)
                out += ",\"type_description\":" + JSONText.quoted(option.type.displayName)
                out += ",\"required\":" + (option.requirement == .required ? "true" : "false")
                if case .defaultValue(let value) = option.requirement {
                    out += ",\"default\":" + jsonValue(value)
                }
                if let allowed = allowedValues(option.type) {
                    out += ",\"allowed\":[" + allowed.map(JSONText.quoted).joined(separator: ",") + "]"
                }
                if let range = rangeText(option.type) {
                    out += ",\"range\":" + JSONText.quoted(range)
                }
                out += ",\"description\":" + JSONText.quoted(option.description) + "}"
            }
            out += "],\"ports\":["
            let ports = [PortDeclaration("default", "The stage's main output.")] + kind.declaration.ports
            out += ports.map {
                "{\"name\":\(JSONText.quoted($0.name)),\"description\":\(JSONText.quoted($0.description))}"
            }
            .joined(separator: ",")
            out += "],\"counters\":["
            out += allCounters(of: kind).map { counter in
                var text = "{\"name\":" + JSONText.quoted(counter.name)
                if let label = counter.label { text += ",\"label\":" + JSONText.quoted(label) }
                return text + ",\"description\":" + JSONText.quoted(counter.description) + "}"
            }.joined(separator: ",")
            out += "]}"
        }
        return out + "]}\n"
    }

    /// docs/stages.md.
    public static func markdown(_ registry: StageRegistry) -> String {
        var out = "# Stage reference\n\n"
        out += "Generated from the stages' declarations by `routerd stages --format markdown`; do not edit by hand.\n\n"
        out += "Sizes take units (`4MiB`, `100MB`, `65536`); durations take units (`5s`, `250ms`, `1m`). "
        out += "`${VAR}`, `${VAR:-default}` and `${VAR:?message}` are expanded inside values.\n\n"
        for role in StageRole.allCases {
            let kinds = registry.kinds.filter { $0.role == role }
            guard !kinds.isEmpty else { continue }
            out += "## \(role.section.prefix(1).uppercased() + role.section.dropFirst())\n\n"
            for kind in kinds {
                out += "### `\(kind.declaration.type)`\n\n\(kind.declaration.summary)\n\n"
                out += "| option | type | default | description |\n|---|---|---|---|\n"
                for option in kind.options {
                    out += "| `\(option.name)` | \(option.type.displayName)"
                    if let range = rangeText(option.type) { out += " (\(range))" }
                    out += " | \(requirementText(option.requirement)) | "
                    out += option.description.replacingOccurrences(of: "|", with: "\\|") + " |\n"
                }
                out += "\nPorts: `default`"
                for port in kind.declaration.ports { out += ", `\(port.name)` (\(port.description))" }
                out += ".\n\nCounters: "
                out += allCounters(of: kind).map { counter in
                    "`\(counter.name)`" + (counter.label.map { "{\($0)}" } ?? "") + " (\(counter.description))"
                }.joined(separator: ", ")
                out += ".\n\n"
                out += "Example:\n\n```yaml\n\(kind.declaration.type)_example:\n  type: \(kind.declaration.type)\n"
                if role != .input { out += "  inputs: [upstream]\n" }
                for line in kind.declaration.example.options.split(separator: "\n") { out += "  \(line)\n" }
                out += "```\n\n"
            }
        }
        return out
    }

    private static func allCounters(of kind: StageRegistry.Kind) -> [CounterDeclaration] {
        CounterDeclaration.standard(for: kind.role, hasPorts: !kind.declaration.ports.isEmpty)
            + kind.declaration.counters
    }

    private static func requirementText(_ requirement: OptionRequirement) -> String {
        switch requirement {
        case .required: "required"
        case .defaultValue(let value): "`\(value)`"
        case .optional: "optional"
        }
    }

    private static func allowedValues(_ type: OptionType) -> [String]? {
        switch type {
        case .oneOf(let values): values
        case .list(let element), .mapping(let element): allowedValues(element)
        default: nil
        }
    }

    private static func rangeText(_ type: OptionType) -> String? {
        switch type {
        case .integer(let range): "\(range.lowerBound)...\(range.upperBound)"
        case .size(let range): "\(Units.formatSize(range.lowerBound))...\(Units.formatSize(range.upperBound))"
        case .duration(let range):
            "\(Units.formatDuration(range.lowerBound))...\(Units.formatDuration(range.upperBound))"
        default: nil
        }
    }

    private static func jsonValue(_ value: OptionValue) -> String {
        switch value {
        case .string(let text): JSONText.quoted(text)
        case .bool(let flag): flag ? "true" : "false"
        case .integer(let number): String(number)
        case .size(let bytes): String(bytes)
        case .duration(let duration): JSONText.quoted(Units.formatDuration(duration))
        case .list(let items): "[" + items.map(jsonValue).joined(separator: ",") + "]"
        case .mapping(let entries):
            "{"
                + entries.sorted { $0.key < $1.key }.map { JSONText.quoted($0.key) + ":" + jsonValue($0.value) }
                .joined(separator: ",") + "}"
        case .tree(let tree): JSONText.quoted(tree.yamlText)
        }
    }
}

extension String {
    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: target, omittingEmptySubsequences: false).joined(separator: replacement)
    }
}
