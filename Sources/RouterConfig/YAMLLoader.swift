internal import CYAML
public import RouterCore

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Musl)
    internal import Musl
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// Loads a config file written in YAML into a `ConfigNode` tree, collecting every problem as a `Diagnostic`.
///
/// The loader uses libyaml's event API and builds the tree itself, which gives it positions for every node and
/// lets it enforce config-friendly rules on top of YAML:
/// - exactly one document; an empty file or a null root yields a `.null` node at 1:1 (the caller complains);
/// - duplicate keys in a mapping are errors (every one of them is reported);
/// - anchors and aliases are resolved (an undefined alias is an error at the alias); merge keys `<<: *a` and
///   `<<: [*a, *b]` are applied, explicit keys winning over merged ones and earlier merge sources over later ones;
/// - keys must be non-empty scalars and are taken literally; `${VAR}` interpolation (see `Interpolation`) applies to
///   scalar values only and its result is never parsed as YAML;
/// - tags other than the standard `!!` ones are rejected; `!!str` keeps a value such as `null` a string.
///
/// Columns count Unicode scalars (libyaml counts characters, not bytes).
public enum YAMLLoader {
    /// The deepest nesting of sequences and mappings accepted, so that hostile input cannot exhaust the stack.
    static let maximumDepth = 128

    /// The most nodes a document may amount to once aliases are expanded ("billion laughs" protection: the tree
    /// shares aliased nodes, but code walking it would visit every expansion).
    static let maximumExpandedNodes = 1_000_000

    /// The largest config file `load(path:environment:)` reads.
    static let maximumFileSize = 64 << 20

    /// Parses one YAML document. Every error in the file that the parser can report is collected (libyaml stops at the
    /// first syntax error; but duplicate keys, undefined aliases and interpolation errors are all collected).
    ///
    /// A syntax error is reported alone (libyaml cannot continue after it). Otherwise all duplicate-key, alias,
    /// merge, tag and interpolation errors are thrown together, sorted by position. Diagnostics carry no config path.
    public static func parse(_ source: ConfigSource, environment: [String: String]) throws(ConfigErrors) -> ConfigNode {
        let parsed = parseCollecting(source, environment: environment)
        guard let root = parsed.root, parsed.diagnostics.isEmpty else {
            throw ConfigErrors(parsed.diagnostics)
        }
        return root
    }

    /// Parses one YAML document and returns the tree together with every problem found, so that a caller can go on
    /// checking the tree and report all mistakes of a file in one run.
    ///
    /// `root` is nil only after a syntax error (libyaml cannot continue, so there is no tree). After any other
    /// problem the tree is still usable: of a duplicate key the first definition is kept, an undefined alias or a
    /// bad merge value is left out, and a scalar whose `${VAR}` failed keeps its text as written (a checker should
    /// not report that node again: its diagnostic has the node's location).
    public static func parseCollecting(
        _ source: ConfigSource, environment: [String: String]
    ) -> (root: ConfigNode?, diagnostics: [Diagnostic]) {
        let stream: EventStream
        switch readEvents(source) {
        case .success(let events):
            stream = events
        case .failure(let diagnostic):
            return (nil, [diagnostic])
        }
        var builder = TreeBuilder(source: source, environment: environment, events: stream.events)
        let root = builder.buildDocument()
        if let secondDocument = stream.secondDocument {
            builder.report("only one YAML document is allowed", at: secondDocument)
        }
        return (root, builder.sortedDiagnostics())
    }

    /// Reads the file and parses it. A file that cannot be read is one diagnostic
    /// "path: error: cannot read config file: <strerror>".
    ///
    /// The diagnostic for an unreadable file has a whole-file location (line 0), so it renders as
    /// `path: error: cannot read config file: No such file or directory`. Files over 64 MiB and files that are not
    /// valid UTF-8 are rejected too. Returns the source (for later diagnostics) and the root node.
    public static func load(
        path: String, environment: [String: String]
    ) throws(ConfigErrors) -> (ConfigSource, ConfigNode) {
        let source = try readSource(path: path)
        return (source, try parse(source, environment: environment))
    }

    /// Reads a config file as ``load(path:environment:)`` does, without parsing it: a file that cannot be read, is
    /// over 64 MiB or is not UTF-8 is one diagnostic.
    public static func readSource(path: String) throws(ConfigErrors) -> ConfigSource {
        let wholeFile = SourceLocation(file: path, line: 0, column: 0)
        let bytes: [UInt8]
        switch readFile(path) {
        case .success(let contents):
            bytes = contents
        case .failure(let reason):
            throw ConfigErrors([
                Diagnostic(
                    location: wholeFile, path: nil, message: "cannot read config file: \(reason.message)",
                    sourceLine: nil)
            ])
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigErrors([
                Diagnostic(
                    location: firstInvalidUTF8(in: bytes, file: path), path: nil,
                    message: "config file is not valid UTF-8 text", sourceLine: nil)
            ])
        }
        return ConfigSource(path: path, text: text)
    }
}

// MARK: - Reading files

private struct ReadFailure: Error {
    var message: String
}

extension YAMLLoader {
    private static func readFile(_ path: String) -> Result<[UInt8], ReadFailure> {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            return .failure(ReadFailure(message: errorText(errno)))
        }
        defer { _ = close(descriptor) }
        var contents: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                let code = errno
                if code == EINTR {
                    continue
                }
                return .failure(ReadFailure(message: errorText(code)))
            }
            if count == 0 {
                return .success(contents)
            }
            contents.append(contentsOf: buffer[0..<count])
            if contents.count > maximumFileSize {
                return .failure(ReadFailure(message: "file is larger than \(Units.formatSize(maximumFileSize))"))
            }
        }
    }

    private static func errorText(_ code: Int32) -> String {
        guard let text = strerror(code) else {
            return "error \(code)"
        }
        return String(cString: text)
    }

    /// The position of the first byte that is not valid UTF-8 (lines split at `\n` only).
    private static func firstInvalidUTF8(in bytes: [UInt8], file: String) -> SourceLocation {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var line = 1
        var column = 1
        decoding: while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                if scalar == "\n" {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
            case .emptyInput, .error:
                break decoding
            }
        }
        return SourceLocation(file: file, line: line, column: column)
    }
}

// MARK: - Events

/// One libyaml event, copied out of C memory (stream start/end events are not kept).
private struct YAMLEvent {
    enum Kind {
        case documentStart
        case documentEnd
        case alias(String)
        /// The scalar text and whether it was quoted or a block scalar.
        case scalar(String, quoted: Bool)
        case sequenceStart
        case sequenceEnd
        case mappingStart
        case mappingEnd
    }

    var kind: Kind
    var anchor: String?
    var tag: String?
    var location: SourceLocation
}

/// The events of the first document, and where a second document starts if there is one.
private struct EventStream {
    var events: [YAMLEvent] = []
    var secondDocument: SourceLocation?
}

extension YAMLLoader {
    /// Runs libyaml over the whole text, stopping at the end of the stream or at the start of a second document.
    private static func readEvents(_ source: ConfigSource) -> Result<EventStream, Diagnostic> {
        let parser = UnsafeMutablePointer<yaml_parser_t>.allocate(capacity: 1)
        defer { parser.deallocate() }
        guard yaml_parser_initialize(parser) == 1 else {
            return .failure(source.diagnostic("out of memory while parsing YAML", at: nil, path: nil))
        }
        defer { yaml_parser_delete(parser) }
        // A trailing NUL keeps the buffer non-empty (libyaml rejects a null input pointer); it is not passed on.
        let bytes = Array(source.text.utf8) + [0]
        return bytes.withUnsafeBufferPointer { buffer -> Result<EventStream, Diagnostic> in
            yaml_parser_set_input_string(parser, buffer.baseAddress, buffer.count - 1)
            var stream = EventStream()
            var documents = 0
            var depth = 0
            var event = yaml_event_t()
            while true {
                guard yaml_parser_parse(parser, &event) == 1 else {
                    return .failure(syntaxDiagnostic(parser.pointee, source: source))
                }
                defer { yaml_event_delete(&event) }
                let location = SourceLocation(
                    file: source.path, line: Int(event.start_mark.line) + 1, column: Int(event.start_mark.column) + 1)
                var converted = YAMLEvent(kind: .documentEnd, location: location)
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return .success(stream)
                case YAML_DOCUMENT_START_EVENT:
                    documents += 1
                    guard documents == 1 else {
                        stream.secondDocument = location
                        return .success(stream)
                    }
                    converted.kind = .documentStart
                case YAML_DOCUMENT_END_EVENT:
                    converted.kind = .documentEnd
                case YAML_ALIAS_EVENT:
                    converted.kind = .alias(cString(event.data.alias.anchor) ?? "")
                case YAML_SCALAR_EVENT:
                    let scalar = event.data.scalar
                    let text = String(
                        decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
                    converted.kind = .scalar(text, quoted: scalar.style != YAML_PLAIN_SCALAR_STYLE)
                    converted.anchor = cString(scalar.anchor)
                    converted.tag = cString(scalar.tag)
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    depth += 1
                    guard depth <= maximumDepth else {
                        return .failure(
                            source.diagnostic(
                                "nesting is too deep (more than \(maximumDepth) levels)", at: location, path: nil))
                    }
                    if event.type == YAML_SEQUENCE_START_EVENT {
                        converted.kind = .sequenceStart
                        converted.anchor = cString(event.data.sequence_start.anchor)
                        converted.tag = cString(event.data.sequence_start.tag)
                    } else {
                        converted.kind = .mappingStart
                        converted.anchor = cString(event.data.mapping_start.anchor)
                        converted.tag = cString(event.data.mapping_start.tag)
                    }
                case YAML_SEQUENCE_END_EVENT:
                    depth -= 1
                    converted.kind = .sequenceEnd
                case YAML_MAPPING_END_EVENT:
                    depth -= 1
                    converted.kind = .mappingEnd
                default:
                    // YAML_STREAM_START_EVENT and YAML_NO_EVENT carry nothing for the tree.
                    continue
                }
                stream.events.append(converted)
            }
        }
    }

    private static func cString(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }

    /// Turns libyaml's error state into one diagnostic at the problem position.
    private static func syntaxDiagnostic(_ parser: yaml_parser_t, source: ConfigSource) -> Diagnostic {
        let problem = parser.problem.map { String(cString: $0) } ?? "invalid YAML"
        switch parser.error {
        case YAML_MEMORY_ERROR:
            return source.diagnostic("out of memory while parsing YAML", at: nil, path: nil)
        case YAML_READER_ERROR:
            var message = problem
            if parser.problem_value >= 0, let scalar = Unicode.Scalar(UInt32(parser.problem_value)) {
                let hex = String(scalar.value, radix: 16, uppercase: true)
                message += " (U+\(String(repeating: "0", count: max(0, 4 - hex.count)))\(hex))"
            }
            return source.diagnostic(
                message, at: source.location(ofUTF8Offset: Int(parser.problem_offset)), path: nil)
        default:
            let location = SourceLocation(
                file: source.path, line: Int(parser.problem_mark.line) + 1,
                column: Int(parser.problem_mark.column) + 1)
            if isTab(at: location, in: source) {
                return source.diagnostic(
                    "tab characters cannot be used for indentation in YAML; indent with spaces",
                    at: location, path: nil)
            }
            guard let context = parser.context.map({ String(cString: $0) }) else {
                return source.diagnostic(problem, at: location, path: nil)
            }
            let contextLocation = SourceLocation(
                file: source.path, line: Int(parser.context_mark.line) + 1,
                column: Int(parser.context_mark.column) + 1)
            if contextLocation == location {
                return source.diagnostic("\(problem) (\(context))", at: location, path: nil)
            }
            if source.line(location.line) == nil {
                // The problem is at the end of the file (e.g. an unclosed quote): point at where the construct began.
                return source.diagnostic("\(problem) (\(context) that starts here)", at: contextLocation, path: nil)
            }
            let message = "\(problem) (\(context) at line \(contextLocation.line), column \(contextLocation.column))"
            return source.diagnostic(message, at: location, path: nil)
        }
    }

    private static func isTab(at location: SourceLocation, in source: ConfigSource) -> Bool {
        guard let line = source.line(location.line), location.column >= 1 else {
            return false
        }
        let scalars = Array(line.unicodeScalars)
        return location.column <= scalars.count && scalars[location.column - 1] == "\t"
    }
}

// MARK: - Building the tree

/// Builds `ConfigNode`s from the events of one document, collecting diagnostics instead of stopping.
///
/// `buildNode` returns scalars uninterpolated ("raw"); the caller interpolates when it puts a scalar in a value
/// position. Anchors store the raw node, so an anchored scalar that is later used as a key is not interpolated.
/// Sequences and mappings are stored with their values already interpolated, so aliases never re-expand them.
private struct TreeBuilder {
    let source: ConfigSource
    let environment: [String: String]
    let events: [YAMLEvent]
    var position = 0
    var anchors: [String: ConfigNode] = [:]
    /// Anchors whose node is still being built; an alias to one of them would be recursive.
    var openAnchors: Set<String> = []
    /// Where the items of the most recently completed sequence were written (aliased items: at the alias).
    var lastSequenceItemLocations: [SourceLocation] = []
    /// How many nodes the document amounts to so far, counting every alias as the full size of its target.
    var expandedNodes = 0
    /// The expanded size of each anchored node.
    var anchorSizes: [String: Int] = [:]
    /// Set once the expansion limit has been exceeded (reported once; further aliases are dropped).
    var expansionLimitExceeded = false
    var diagnostics: [Diagnostic] = []

    init(source: ConfigSource, environment: [String: String], events: [YAMLEvent]) {
        self.source = source
        self.environment = environment
        self.events = events
    }

    mutating func report(_ message: String, at location: SourceLocation) {
        diagnostics.append(source.diagnostic(message, at: location, path: nil))
    }

    /// The diagnostics without repeats (an aliased scalar is interpolated at every use), sorted by position.
    func sortedDiagnostics() -> [Diagnostic] {
        var seen: Set<String> = []
        let unique = diagnostics.filter { seen.insert($0.description).inserted }
        return unique.enumerated().sorted { lhs, rhs in
            let left = lhs.element.location
            let right = rhs.element.location
            let leftKey = (left?.line ?? 0, left?.column ?? 0, lhs.offset)
            let rightKey = (right?.line ?? 0, right?.column ?? 0, rhs.offset)
            return leftKey < rightKey
        }.map(\.element)
    }

    mutating func buildDocument() -> ConfigNode {
        let start = SourceLocation(file: source.path, line: 1, column: 1)
        guard position < events.count, case .documentStart = events[position].kind else {
            return ConfigNode(kind: .null, location: start)
        }
        position += 1
        guard let raw = buildNode(asKey: false) else {
            return ConfigNode(kind: .null, location: start)
        }
        let root = interpolated(raw)
        if case .null = root.kind {
            return ConfigNode(kind: .null, location: start)
        }
        return root
    }

    /// Builds the node starting at the current event and consumes all of its events, even after an error.
    ///
    /// Returns nil when the node is unusable (an undefined or recursive alias, or one past the expansion limit); the
    /// problem has been reported.
    mutating func buildNode(asKey: Bool) -> ConfigNode? {
        guard position < events.count else {
            return nil
        }
        let event = events[position]
        position += 1
        let tag = checkedTag(event)
        let sizeBefore = expandedNodes
        expandedNodes += 1
        let node: ConfigNode
        switch event.kind {
        case .alias(let name):
            if openAnchors.contains(name) {
                let message = "alias '*\(name)' refers to a node that contains it (recursive aliases are not supported)"
                report(message, at: event.location)
                return nil
            }
            guard let target = anchors[name] else {
                report("undefined alias '*\(name)' (no anchor '&\(name)' is defined before it)", at: event.location)
                return nil
            }
            expandedNodes += anchorSizes[name, default: 1] - 1
            guard expandedNodes <= YAMLLoader.maximumExpandedNodes, !expansionLimitExceeded else {
                if !expansionLimitExceeded {
                    expansionLimitExceeded = true
                    let limit = YAMLLoader.maximumExpandedNodes
                    report("aliases expand the document to more than \(limit) nodes", at: event.location)
                }
                return nil
            }
            return target
        case .scalar(let text, let quoted):
            node = scalarNode(text, quoted: quoted, tag: tag, location: event.location, asKey: asKey)
        case .sequenceStart:
            openAnchors.formUnion(event.anchor.map { [$0] } ?? [])
            node = ConfigNode(kind: .sequence(buildSequenceItems()), location: event.location)
        case .mappingStart:
            openAnchors.formUnion(event.anchor.map { [$0] } ?? [])
            node = ConfigNode(kind: .mapping(buildMappingEntries()), location: event.location)
        case .documentStart, .documentEnd, .sequenceEnd, .mappingEnd:
            // libyaml's event stream is well formed, so a node never starts with these.
            return nil
        }
        if let anchor = event.anchor {
            openAnchors.remove(anchor)
            anchors[anchor] = node
            anchorSizes[anchor] = expandedNodes - sizeBefore
        }
        return node
    }

    /// The tag of `event` if it is one the loader understands (a standard `!!` tag or `!`); reports any other.
    private mutating func checkedTag(_ event: YAMLEvent) -> String? {
        guard let tag = event.tag else {
            return nil
        }
        let standardPrefix = "tag:yaml.org,2002:"
        if tag == "!" || tag.hasPrefix(standardPrefix) {
            return tag
        }
        let message = "unsupported YAML tag '\(tag)' (config files may only use standard tags such as !!str)"
        report(message, at: event.location)
        return nil
    }

    private func scalarNode(
        _ text: String, quoted: Bool, tag: String?, location: SourceLocation, asKey: Bool
    ) -> ConfigNode {
        let isNull: Bool
        switch tag {
        case "tag:yaml.org,2002:null":
            isNull = true
        case nil:
            // Keys keep `null` and `~` as text; only an empty key is null (and then rejected).
            isNull = !quoted && (asKey ? text.isEmpty : ["", "~", "null", "Null", "NULL"].contains(text))
        default:
            isNull = false
        }
        if isNull {
            return ConfigNode(kind: .null, location: location)
        }
        return ConfigNode(kind: .scalar(text), location: location, isQuoted: quoted)
    }

    private mutating func interpolated(_ node: ConfigNode) -> ConfigNode {
        guard case .scalar(let text) = node.kind else {
            return node
        }
        switch Interpolation.expand(text, environment: environment) {
        case .success(let expanded):
            var result = node
            result.kind = .scalar(expanded)
            return result
        case .failure(let error):
            report(error.message, at: node.location)
            return node
        }
    }

    private mutating func atEnd(of expected: (YAMLEvent.Kind) -> Bool) -> Bool {
        guard position < events.count else {
            return true
        }
        if expected(events[position].kind) {
            position += 1
            return true
        }
        return false
    }

    private mutating func buildSequenceItems() -> [ConfigNode] {
        var items: [ConfigNode] = []
        var itemLocations: [SourceLocation] = []
        while !atEnd(of: { if case .sequenceEnd = $0 { true } else { false } }) {
            let itemLocation = events[position].location
            if let item = buildNode(asKey: false) {
                items.append(interpolated(item))
                itemLocations.append(itemLocation)
            }
        }
        lastSequenceItemLocations = itemLocations
        return items
    }

    private enum MappingItem {
        case entry(ConfigEntry)
        case merge([[ConfigEntry]])
    }

    private mutating func buildMappingEntries() -> [ConfigEntry] {
        var items: [MappingItem] = []
        var firstDefinitions: [String: SourceLocation] = [:]
        while !atEnd(of: { if case .mappingEnd = $0 { true } else { false } }) {
            let keyLocation = events[position].location
            let keyNode = buildNode(asKey: true)
            let valueEvent = position < events.count ? events[position] : nil
            let valueNode = buildNode(asKey: false)
            guard let keyNode, let key = checkedKey(keyNode, at: keyLocation) else {
                continue
            }
            if let first = firstDefinitions[key] {
                report("duplicate key '\(key)' (first defined at line \(first.line))", at: keyLocation)
                continue
            }
            firstDefinitions[key] = keyLocation
            guard let valueNode else {
                continue
            }
            if key == "<<" && !keyNode.isQuoted {
                var itemLocations: [SourceLocation] = []
                if case .sequenceStart = valueEvent?.kind {
                    itemLocations = lastSequenceItemLocations
                }
                let valueLocation = valueEvent?.location ?? keyLocation
                if let sources = mergeSources(valueNode, at: valueLocation, itemLocations: itemLocations) {
                    items.append(.merge(sources))
                }
            } else {
                items.append(.entry(ConfigEntry(key: key, keyLocation: keyLocation, value: interpolated(valueNode))))
            }
        }
        return Self.applyMerges(items)
    }

    private mutating func checkedKey(_ node: ConfigNode, at location: SourceLocation) -> String? {
        switch node.kind {
        case .scalar(let text):
            return text
        case .null:
            report("mapping key is empty", at: location)
        case .sequence, .mapping:
            report("mapping keys must be scalars, but this key is \(node.kindDescription)", at: location)
        }
        return nil
    }

    /// The mappings a `<<` value merges in, in priority order; nil (after reporting) when the value is not usable.
    ///
    /// `location` is where the value is written and `itemLocations` where its items are written (empty when the
    /// value is an alias: errors then point at the aliased node itself).
    private mutating func mergeSources(
        _ value: ConfigNode, at location: SourceLocation, itemLocations: [SourceLocation]
    ) -> [[ConfigEntry]]? {
        let expected = "merge key '<<' expects a mapping or a list of mappings"
        switch value.kind {
        case .mapping(let entries):
            return [entries]
        case .sequence(let items):
            var sources: [[ConfigEntry]] = []
            for (index, item) in items.enumerated() {
                guard case .mapping(let entries) = item.kind else {
                    let itemLocation = index < itemLocations.count ? itemLocations[index] : item.location
                    report("\(expected), but this item is \(item.kindDescription)", at: itemLocation)
                    return nil
                }
                sources.append(entries)
            }
            return sources
        case .null, .scalar:
            report("\(expected), but found \(value.kindDescription)", at: location)
            return nil
        }
    }

    /// Inlines merged entries at the position of their `<<` key, skipping keys that are written explicitly anywhere in
    /// the mapping or that an earlier merge source already provided.
    private static func applyMerges(_ items: [MappingItem]) -> [ConfigEntry] {
        var present: Set<String> = []
        for case .entry(let entry) in items {
            present.insert(entry.key)
        }
        var entries: [ConfigEntry] = []
        for item in items {
            switch item {
            case .entry(let entry):
                entries.append(entry)
            case .merge(let sources):
                for source in sources {
                    for entry in source where present.insert(entry.key).inserted {
                        entries.append(entry)
                    }
                }
            }
        }
        return entries
    }
}
