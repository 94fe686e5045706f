import Router

/// One `routerd test` file: the environment the config is loaded with, and its test cases.
///
/// ```yaml
/// environment: { SECRET_KEY: test-key }     # optional: what the config's ${VAR} see, over the process's
/// tests:
///   - name: an ERROR is written at once and acknowledged
///     input: udp_in                          # where the entries enter (default: the config's only input)
///     entries:
///       - '{"sequence":1,"level":"ERROR",...}'
///       - raw: "\xff\xfe"                    # bytes: each character U+0000...U+00FF is one byte
///     fail_outputs: { errors_now: disk full } # outputs whose write fails, with the reason
///     expect:
///       errors_now: ['{"sequence":1,...}']    # an output, or a stage's port (valid.invalid, errors.unmatched)
///       server_log: []                       # receives nothing
///     acked: [1]
/// ```
struct ConfigTestFile {
    var source: ConfigSource
    var environment: [String: String]
    var environmentLocation: SourceLocation?
    var cases: [ConfigTestCase]
}

/// One test: entries fed into one stage and what must come out where.
struct ConfigTestCase {
    var name: String
    var location: SourceLocation
    /// The stage the entries enter, and where the test names it; nil for the config's only input.
    var input: (name: String, location: SourceLocation)?
    var sender: SenderAddress
    var receivedAtNanos: Int64
    var entries: [[UInt8]]
    var failOutputs: [(output: String, reason: String, location: SourceLocation)]
    var expectations: [Expectation]
    var acked: (sequences: [Int64], location: SourceLocation)?
    var nacked: (entries: [ExpectedNack], location: SourceLocation)?
}

/// What one output or stage port must receive: exactly these entries, in this order.
struct Expectation {
    var target: String
    var location: SourceLocation
    var entries: [ExpectedEntry]
}

/// One entry an output must receive: its exact bytes, or the fields it must (not) have; and the reason it carries.
struct ExpectedEntry {
    var bytes: [UInt8]?
    var fields: [(path: String, value: ConfigNode)] = []
    var absent: [String] = []
    var reason: String?
    var detail: String?
    var location: SourceLocation
}

/// A negative acknowledgement the sender must hear, for a sequence, with (optionally) its reason.
struct ExpectedNack: Equatable {
    var sequence: Int64
    var reason: String?
}

/// Reads a test file into ``ConfigTestFile``, reporting every mistake with its position, as config errors are.
struct ConfigTestFileReader {
    private(set) var diagnostics: [Diagnostic] = []
    let source: ConfigSource

    /// The default sender of test entries, which `ack` answers: `127.0.0.1:40000`.
    static let defaultSender = SenderAddress.ipv4(127, 0, 0, 1, port: 40000)
    /// The default receive time: 2026-01-01T00:00:00Z, so that `add_received_at` writes the same text every run.
    static let defaultReceivedAtNanos: Int64 = 1_767_225_600 * 1_000_000_000

    /// Loads and reads the file at `path`; throws every problem found at once.
    static func load(path: String) throws(ConfigErrors) -> ConfigTestFile {
        let source = try YAMLLoader.readSource(path: path)
        // Test files see no environment: `${` in an entry would otherwise depend on the machine (write `$${`).
        let parsed = YAMLLoader.parseCollecting(source, environment: [:])
        guard let root = parsed.root else { throw ConfigErrors(parsed.diagnostics) }
        var reader = ConfigTestFileReader(diagnostics: parsed.diagnostics, source: source)
        let file = reader.read(root)
        guard reader.diagnostics.isEmpty, let file else { throw ConfigErrors(reader.sortedDiagnostics) }
        return file
    }

    var sortedDiagnostics: [Diagnostic] {
        diagnostics.enumerated().sorted {
            ($0.element.location?.line ?? 0, $0.element.location?.column ?? 0, $0.offset) < (
                $1.element.location?.line ?? 0, $1.element.location?.column ?? 0, $1.offset
            )
        }.map(\.element)
    }

    mutating func report(_ message: String, at location: SourceLocation, path: String?) {
        diagnostics.append(source.diagnostic(message, at: location, path: path))
    }

    private mutating func read(_ root: ConfigNode) -> ConfigTestFile? {
        guard let entries = mapping(root, path: nil, allowed: ["environment", "tests"]) else {
            if root.isNull { report("the test file is empty: it needs a `tests:` list", at: root.location, path: nil) }
            return nil
        }
        var environment: [String: String] = [:]
        var environmentLocation: SourceLocation?
        if let node = entries.first(where: { $0.key == "environment" })?.value {
            environmentLocation = node.location
            for entry in mapping(node, path: "environment", allowed: nil) ?? [] {
                guard let value = entry.value.scalar else {
                    report("must be a string", at: entry.value.location, path: "environment.\(entry.key)")
                    continue
                }
                environment[entry.key] = value
            }
        }
        guard let testsEntry = entries.first(where: { $0.key == "tests" }) else {
            report("a test file needs a `tests:` list", at: root.location, path: nil)
            return nil
        }
        guard let items = testsEntry.value.sequence else {
            report(
                "must be a list of tests, not \(testsEntry.value.kindDescription)", at: testsEntry.value.location,
                path: "tests")
            return nil
        }
        if items.isEmpty { report("has no tests", at: testsEntry.value.location, path: "tests") }
        var cases: [ConfigTestCase] = []
        var names: Set<String> = []
        for (index, item) in items.enumerated() {
            guard let test = readCase(item, path: "tests[\(index)]") else { continue }
            if !names.insert(test.name).inserted {
                report("another test has the name '\(test.name)'", at: item.location, path: "tests[\(index)].name")
            }
            cases.append(test)
        }
        return ConfigTestFile(
            source: source, environment: environment, environmentLocation: environmentLocation, cases: cases)
    }

    private static let caseKeys = [
        "name", "input", "sender", "received_at", "entries", "fail_outputs", "expect", "acked", "nacked",
    ]

    private mutating func readCase(_ node: ConfigNode, path: String) -> ConfigTestCase? {
        guard let entries = mapping(node, path: path, allowed: Self.caseKeys) else { return nil }
        func value(_ key: String) -> ConfigNode? { entries.first { $0.key == key }?.value }
        var ok = true
        guard let nameNode = value("name"), let name = nameNode.scalar, !name.isEmpty else {
            report("a test needs a `name:`", at: value("name")?.location ?? node.location, path: path)
            return nil
        }
        let path = "tests '\(name)'"
        var input: (String, SourceLocation)?
        if let inputNode = value("input") {
            if let text = inputNode.scalar {
                input = (text, inputNode.location)
            } else {
                report("must be a stage name", at: inputNode.location, path: "\(path).input")
                ok = false
            }
        }
        var sender = Self.defaultSender
        if let senderNode = value("sender") {
            if let text = senderNode.scalar, let address = Self.parseSender(text) {
                sender = address
            } else {
                report(
                    "must be an IPv4 address and port, such as 127.0.0.1:40000", at: senderNode.location,
                    path: "\(path).sender")
                ok = false
            }
        }
        var receivedAt = Self.defaultReceivedAtNanos
        if let timeNode = value("received_at") {
            if let text = timeNode.scalar, let nanos = Self.parseTimestamp(text) {
                receivedAt = nanos
            } else {
                report(
                    "must be a UTC time such as 2026-11-22T10:00:00Z", at: timeNode.location,
                    path: "\(path).received_at")
                ok = false
            }
        }
        var feed: [[UInt8]] = []
        if let entriesNode = value("entries"), let items = sequence(entriesNode, path: "\(path).entries") {
            for (index, item) in items.enumerated() {
                guard let bytes = readEntryBytes(item, path: "\(path).entries[\(index)]") else {
                    ok = false
                    continue
                }
                feed.append(bytes)
            }
        } else {
            if value("entries") == nil {
                report("a test needs `entries:` to feed", at: node.location, path: path)
            }
            ok = false
        }
        var failOutputs: [(String, String, SourceLocation)] = []
        if let failNode = value("fail_outputs") {
            for entry in mapping(failNode, path: "\(path).fail_outputs", allowed: nil) ?? [] {
                guard let reason = entry.value.scalar, !reason.isEmpty else {
                    report(
                        "must be the reason the write fails", at: entry.value.location,
                        path: "\(path).fail_outputs.\(entry.key)")
                    ok = false
                    continue
                }
                failOutputs.append((entry.key, reason, entry.keyLocation))
            }
        }
        var expectations: [Expectation] = []
        if let expectNode = value("expect") {
            for entry in mapping(expectNode, path: "\(path).expect", allowed: nil) ?? [] {
                let targetPath = "\(path).expect.\(entry.key)"
                guard let items = sequence(entry.value, path: targetPath) else {
                    ok = false
                    continue
                }
                var expected: [ExpectedEntry] = []
                for (index, item) in items.enumerated() {
                    if let one = readExpectedEntry(item, path: "\(targetPath)[\(index)]") { expected.append(one) }
                }
                expectations.append(Expectation(target: entry.key, location: entry.keyLocation, entries: expected))
            }
        }
        var acked: ([Int64], SourceLocation)?
        if let ackedNode = value("acked"), let items = sequence(ackedNode, path: "\(path).acked") {
            var sequences: [Int64] = []
            for item in items {
                guard let number = item.scalar.flatMap({ Int64($0) }) else {
                    report("must be a sequence number", at: item.location, path: "\(path).acked")
                    ok = false
                    continue
                }
                sequences.append(number)
            }
            acked = (sequences, ackedNode.location)
        }
        var nacked: ([ExpectedNack], SourceLocation)?
        if let nackedNode = value("nacked"), let items = sequence(nackedNode, path: "\(path).nacked") {
            var nacks: [ExpectedNack] = []
            for item in items {
                if let number = item.scalar.flatMap({ Int64($0) }) {
                    nacks.append(ExpectedNack(sequence: number, reason: nil))
                    continue
                }
                let fields = mapping(item, path: "\(path).nacked", allowed: ["sequence", "reason"]) ?? []
                let sequenceNode = fields.first { $0.key == "sequence" }?.value
                guard let number = sequenceNode?.scalar.flatMap({ Int64($0) }) else {
                    report(
                        "must be a sequence number, or {sequence: N, reason: ...}", at: item.location,
                        path: "\(path).nacked")
                    ok = false
                    continue
                }
                nacks.append(ExpectedNack(sequence: number, reason: fields.first { $0.key == "reason" }?.value.scalar))
            }
            nacked = (nacks, nackedNode.location)
        }
        if expectations.isEmpty && acked == nil && nacked == nil && ok {
            report("a test needs `expect:`, `acked:` or `nacked:`: it checks nothing", at: node.location, path: path)
            ok = false
        }
        guard ok else { return nil }
        return ConfigTestCase(
            name: name, location: node.location, input: input, sender: sender, receivedAtNanos: receivedAt,
            entries: feed, failOutputs: failOutputs, expectations: expectations, acked: acked, nacked: nacked)
    }

    /// An entry to feed: a string (the entry's text) or `raw:` (bytes).
    private mutating func readEntryBytes(_ node: ConfigNode, path: String) -> [UInt8]? {
        if let text = node.scalar { return Array(text.utf8) }
        guard let fields = mapping(node, path: path, allowed: ["raw"]) else { return nil }
        guard let raw = fields.first(where: { $0.key == "raw" }) else {
            report("an entry is a string, or `raw:` bytes", at: node.location, path: path)
            return nil
        }
        return rawBytes(raw.value, path: "\(path).raw")
    }

    private mutating func rawBytes(_ node: ConfigNode, path: String) -> [UInt8]? {
        guard let text = node.scalar else {
            report("must be a string of bytes, such as \"\\xff\\xfe\"", at: node.location, path: path)
            return nil
        }
        var bytes: [UInt8] = []
        for scalar in text.unicodeScalars {
            guard scalar.value <= 0xFF else {
                report(
                    "'\(scalar)' is not a byte: raw entries take U+0000...U+00FF, one byte each (write \\xNN); "
                        + "write UTF-8 text as a plain string entry", at: node.location, path: path)
                return nil
            }
            bytes.append(UInt8(scalar.value))
        }
        return bytes
    }

    private static let expectedKeys = ["entry", "raw", "fields", "absent", "reason", "detail"]

    private mutating func readExpectedEntry(_ node: ConfigNode, path: String) -> ExpectedEntry? {
        if let text = node.scalar { return ExpectedEntry(bytes: Array(text.utf8), location: node.location) }
        guard let entries = mapping(node, path: path, allowed: Self.expectedKeys) else { return nil }
        var expected = ExpectedEntry(location: node.location)
        for entry in entries {
            switch entry.key {
            case "entry":
                guard let text = entry.value.scalar else {
                    report("must be the entry's text", at: entry.value.location, path: "\(path).entry")
                    return nil
                }
                expected.bytes = Array(text.utf8)
            case "raw":
                guard let bytes = rawBytes(entry.value, path: "\(path).raw") else { return nil }
                expected.bytes = bytes
            case "fields":
                for field in mapping(entry.value, path: "\(path).fields", allowed: nil) ?? [] {
                    expected.fields.append((field.key, field.value))
                }
            case "absent":
                for item in sequence(entry.value, path: "\(path).absent") ?? [] {
                    guard let name = item.scalar else {
                        report("must be a field name", at: item.location, path: "\(path).absent")
                        return nil
                    }
                    expected.absent.append(name)
                }
            case "reason":
                expected.reason = entry.value.scalar
            default:
                expected.detail = entry.value.scalar
            }
        }
        if expected.bytes != nil && !(expected.fields.isEmpty && expected.absent.isEmpty) {
            report(
                "give the whole entry (`entry:`, `raw:`) or `fields:`/`absent:`, not both", at: node.location,
                path: path)
            return nil
        }
        if entries.isEmpty {
            report(
                "an expected entry is a string, or a mapping of \(Self.expectedKeys.joined(separator: ", "))",
                at: node.location, path: path)
            return nil
        }
        return expected
    }

    private mutating func mapping(_ node: ConfigNode, path: String?, allowed: [String]?) -> [ConfigEntry]? {
        guard let entries = node.mapping else {
            if !node.isNull || path != nil {
                report("must be a mapping, not \(node.kindDescription)", at: node.location, path: path)
            }
            return nil
        }
        if let allowed {
            for entry in entries where !allowed.contains(entry.key) {
                var message = "unknown key '\(entry.key)'"
                if let suggestion = EditDistance.suggestion(for: entry.key, among: allowed) {
                    message += " (did you mean '\(suggestion)'?)"
                } else {
                    message += " (one of: \(allowed.joined(separator: ", ")))"
                }
                report(message, at: entry.keyLocation, path: path)
            }
        }
        return entries
    }

    private mutating func sequence(_ node: ConfigNode, path: String) -> [ConfigNode]? {
        guard let items = node.sequence else {
            report("must be a list, not \(node.kindDescription)", at: node.location, path: path)
            return nil
        }
        return items
    }

    /// `a.b.c.d:port`.
    static func parseSender(_ text: String) -> SenderAddress? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let port = UInt16(parts[1]) else { return nil }
        let octets = parts[0].split(separator: ".", omittingEmptySubsequences: false).compactMap { UInt8($0) }
        guard octets.count == 4 else { return nil }
        return .ipv4(octets[0], octets[1], octets[2], octets[3], port: port)
    }

    /// `YYYY-MM-DDTHH:MM:SS[.fff]Z` to nanoseconds since the epoch.
    static func parseTimestamp(_ text: String) -> Int64? {
        let scalars = Array(text.utf8)
        guard scalars.count >= 20, scalars.last == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int64? {
            var value: Int64 = 0
            for index in range {
                guard scalars[index] >= 48, scalars[index] <= 57 else { return nil }
                value = value * 10 + Int64(scalars[index] - 48)
            }
            return value
        }
        guard scalars[4] == UInt8(ascii: "-"), scalars[7] == UInt8(ascii: "-"), scalars[10] == UInt8(ascii: "T"),
            scalars[13] == UInt8(ascii: ":"), scalars[16] == UInt8(ascii: ":"),
            let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19),
            (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var fraction: Int64 = 0
        if scalars.count > 20 {
            guard scalars[19] == UInt8(ascii: "."), scalars.count - 21 <= 9, scalars.count > 21,
                let digits = number(20..<(scalars.count - 1))
            else { return nil }
            fraction = digits
            for _ in 0..<(9 - (scalars.count - 21)) { fraction *= 10 }
        } else if scalars.count != 20 {
            return nil
        }
        // Days from the civil date (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        return ((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000_000) + fraction
    }
}
