import RouterConfig
public import RouterCore

extension BufferSettings {
    private static let keys = ["type", "path", "max_size", "when_full", "sync", "acknowledge"]

    /// Reads a `buffer:` block; nil (the option left out) is the memory queue. Reports every problem at once:
    /// the settings hold only when the list is empty.
    public static func parse(_ tree: OptionTree?) -> (settings: BufferSettings, problems: [OptionProblemReport]) {
        guard let tree else { return (.memory, []) }
        guard let entries = tree.mapping else {
            if case .null = tree.kind { return (.memory, []) }
            return (
                .memory,
                [
                    OptionProblemReport(
                        "option 'buffer' must be a mapping, e.g. {type: disk, max_size: 1GiB}, got \(tree.shape)",
                        at: tree.location)
                ]
            )
        }
        var settings = BufferSettings()
        var problems: [OptionProblemReport] = []
        func scalar(_ entry: OptionTreeEntry) -> String? {
            guard let text = entry.value.scalar else {
                problems.append(
                    OptionProblemReport(
                        "buffer option '\(entry.key)' must be a single value, got \(entry.value.shape)",
                        at: entry.value.location))
                return nil
            }
            return text
        }
        func oneOf(_ entry: OptionTreeEntry, _ values: [String]) -> String? {
            guard let text = scalar(entry) else { return nil }
            guard values.contains(text) else {
                problems.append(
                    OptionProblemReport(
                        "buffer option '\(entry.key)' must be one of \(values.joined(separator: ", ")), got '\(text)'",
                        at: entry.value.location))
                return nil
            }
            return text
        }
        for entry in entries {
            switch entry.key {
            case "type":
                if let kind = oneOf(entry, Kind.allCases.map(\.rawValue)).flatMap(Kind.init(rawValue:)) {
                    settings.kind = kind
                }
            case "path":
                if let text = scalar(entry) {
                    if text.isEmpty {
                        problems.append(
                            OptionProblemReport("buffer option 'path' must not be empty", at: entry.value.location))
                    } else {
                        settings.path = text
                    }
                }
            case "max_size":
                guard let text = scalar(entry) else { continue }
                switch Units.parseSize(text) {
                case .success(let bytes) where bytes >= minimumSize:
                    settings.maxSize = bytes
                case .success:
                    problems.append(
                        OptionProblemReport(
                            "buffer option 'max_size' must be at least \(Units.formatSize(minimumSize)), got '\(text)'",
                            at: entry.value.location))
                case .failure(let error):
                    problems.append(
                        OptionProblemReport("buffer option 'max_size': \(error.message)", at: entry.value.location))
                }
            case "when_full":
                if let value = oneOf(entry, WhenFull.allCases.map(\.rawValue)).flatMap(WhenFull.init(rawValue:)) {
                    settings.whenFull = value
                }
            case "sync":
                guard let text = scalar(entry) else { continue }
                switch text {
                case "every_batch": settings.sync = .everyBatch
                case "none": settings.sync = .none
                default:
                    switch Units.parseDuration(text) {
                    case .success(let duration) where duration > .zero && duration <= .seconds(3600):
                        settings.sync = .interval(duration)
                    case .success:
                        problems.append(
                            OptionProblemReport(
                                "buffer option 'sync' must be every_batch, none or a duration from 1ms to 1h, got '\(text)'",
                                at: entry.value.location))
                    case .failure(let error):
                        problems.append(
                            OptionProblemReport(
                                "buffer option 'sync' must be every_batch, none or a duration: \(error.message)",
                                at: entry.value.location))
                    }
                }
            case "acknowledge":
                if let value = oneOf(entry, Acknowledge.allCases.map(\.rawValue)).flatMap(Acknowledge.init(rawValue:)) {
                    settings.acknowledge = value
                }
            default:
                var message = "unknown buffer option '\(entry.key)'"
                if let suggestion = EditDistance.suggestion(for: entry.key, among: keys) {
                    message += " (did you mean '\(suggestion)'?)"
                } else {
                    message += "; buffer options are: " + keys.joined(separator: ", ")
                }
                problems.append(OptionProblemReport(message, at: entry.keyLocation))
            }
        }
        if settings.kind == .memory {
            for entry in entries where entry.key != "type" && keys.contains(entry.key) {
                problems.append(
                    OptionProblemReport(
                        "buffer option '\(entry.key)' applies to type: disk only; the memory buffer is the queue "
                            + "(queue_max_events, when_full)", at: entry.keyLocation))
            }
        }
        return (settings, problems)
    }
}
