public import RouterCore

/// `route`: named ports, each with a condition on the entry's fields; an entry goes to every port whose condition
/// it meets (`mode: all`) or to the first (`mode: first`), and to `unmatched` when it meets none.
///
/// Conditions are read from the raw JSON bytes: one pass over the entry finds every field the conditions name, and
/// only escaped strings are decoded. An entry that is not a JSON object has no fields (only `exists: false` and
/// `not_equals` hold for it).
public final class Route: FilterStage {
    /// The `route` declaration.
    public static let declaration = StageDeclaration(
        type: "route",
        summary: "Routes entries by conditions on any field to named ports; entries that meet none go to unmatched.",
        options: [routes, mode],
        ports: [PortDeclaration("unmatched", "Entries that meet no route's condition.")],
        counters: [],
        example: StageExample(
            """
            routes:
              billing: { field: app, equals: billing }
              slow: { field: duration_ms, greater_than: 1000 }
              auth: { field: message, matches: "(?i)login failed" }
              edge: { field: host, in: [edge-1, edge-2] }
              traced: { all: [ { field: trace.id, exists: true }, { not: { field: level, in: [DEBUG] } } ] }
            """),
        validate: { options in
            guard let tree = try? options.value(Route.routes) else { return [] }
            return RouteTable.compile(tree).problems
        },
        optionPorts: { options in
            guard let tree = try? options.value(Route.routes), let entries = tree.mapping else { return [] }
            return entries.map {
                PortDeclaration($0.key, "Entries that meet route '\($0.key)'.", location: $0.keyLocation)
            }
        },
        optionPortsMustBeRead: true,
        hasDefaultPort: false
    )

    static let routes = StageOption<OptionTree>.requiredTree(
        "routes", shape: "mapping of port name to condition",
        "Each key names a port (`by_team.billing`) and its condition: `{field: PATH, TEST: VALUE}` with "
            + "TEST one of equals, not_equals, in (a list), prefix, suffix, contains, matches (a PCRE2 regular "
            + "expression), exists (true/false), greater_than, less_than (numbers); or all/any (lists of conditions) "
            + "and not (a condition). Several keys in one mapping must all hold. PATH names nested fields with dots "
            + "(`trace.id`). Every port must be read by some stage.")

    static let mode = StageOption<String>.oneOf(
        "mode", ["all", "first"], default: "all",
        "all: an entry goes to every route whose condition it meets (copies share the bytes); first: only to the "
            + "first such route, in the order written.")

    /// Port index of `unmatched`.
    public static let unmatchedPort = 1

    private let table: RouteTable
    private let firstOnly: Bool

    /// Makes the filter; the graph check has already compiled the same routes, so this cannot fail on a checked config.
    public init(context: StageContext) throws {
        let tree = try context.options.value(Route.routes)
        let table = RouteTable.compile(tree)
        if let first = table.problems.first { throw StageError(.invalidConfiguration, first.message) }
        self.table = table
        firstOnly = try context.options.value(Route.mode) == "first"
    }

    /// Sends each entry to its routes' ports.
    public func process(_ batch: Batch, into output: inout FilterOutput) {
        let routeCount = table.conditions.count
        var buckets = [[Event]](repeating: [], count: routeCount + 2)
        let matchers = table.patterns.map { $0.matcher() }
        let slots = table.fields.paths.count
        let scratch = WalkScratch(nodes: table.fields.nodeCount)
        withUnsafeTemporaryAllocation(of: FieldValue.self, capacity: max(1, slots)) { values in
            values.initialize(repeating: .absent)
            batch.bytes.withUnsafeBytes { all in
                guard let base = all.baseAddress, let empty = JSONWalk(UnsafeRawBufferPointer(start: base, count: 1))
                else {
                    for event in batch.events { route(event, into: &buckets) }
                    return
                }
                var evaluator = ConditionEvaluator(
                    program: table.program, walk: empty, values: values, matchers: matchers)
                for event in batch.events {
                    let bytes = UnsafeRawBufferPointer(rebasing: all[Int(event.start)..<Int(event.start + event.count)])
                    guard let walk = JSONWalk(bytes) else {
                        route(event, into: &buckets)
                        continue
                    }
                    table.fields.read(walk, into: values, scratch: scratch)
                    evaluator.walk = walk
                    route(event, evaluator: &evaluator, into: &buckets)
                }
            }
        }
        for (port, events) in buckets.enumerated() where !events.isEmpty {
            output.emit(batch.with(events: events), port: port)
        }
    }

    /// Sends an entry with fields to the ports of the routes whose conditions it meets.
    private func route(_ event: Event, evaluator: inout ConditionEvaluator, into buckets: inout [[Event]]) {
        var matched = false
        for index in 0..<table.conditions.count where evaluator.holds(index) {
            buckets[index + 2].append(event)
            matched = true
            if firstOnly { break }
        }
        if !matched { buckets[Route.unmatchedPort].append(event) }
    }

    /// Sends an entry with no bytes at all (so no fields) to the routes whose conditions hold without fields.
    private func route(_ event: Event, into buckets: inout [[Event]]) {
        var matched = false
        for (index, condition) in table.conditions.enumerated() where RouteTable.holdsWithoutFields(condition) {
            buckets[index + 2].append(event)
            matched = true
            if firstOnly { break }
        }
        if !matched { buckets[Route.unmatchedPort].append(event) }
    }
}

/// The compiled routes of one `route` stage, in the order written.
struct RouteTable: Sendable {
    var names: [String] = []
    var conditions: [Condition] = []
    var fields = FieldSet()
    var patterns: [Pattern] = []
    var problems: [OptionProblemReport] = []
    /// The conditions, flat, for evaluation.
    var program = ConditionProgram([])

    static let reserved: Set<String> = ["default", "unmatched"]

    static func compile(_ tree: OptionTree) -> RouteTable {
        var table = RouteTable()
        guard let entries = tree.mapping, !entries.isEmpty else {
            table.problems.append(
                OptionProblemReport(
                    "option 'routes' must be a mapping of port names to conditions, e.g. "
                        + "{billing: {field: app, equals: billing}}, got \(tree.shape)", at: tree.location))
            return table
        }
        var compiler = ConditionCompiler()
        for entry in entries {
            compiler.context = "route '\(entry.key)'"
            if reserved.contains(entry.key) || !isPortName(entry.key) {
                compiler.problem(
                    "'\(entry.key)' cannot name a port (use letters, digits and '_', starting with a letter; not "
                        + "default or unmatched)", at: entry.keyLocation)
                continue
            }
            if let condition = compiler.compile(entry.value) {
                table.names.append(entry.key)
                table.conditions.append(condition)
            }
        }
        table.fields = compiler.fields
        table.patterns = compiler.patterns
        table.program = ConditionProgram(table.conditions)
        table.problems = compiler.problems
        return table
    }

    static func isPortName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("a"..."z").contains(first) || ("A"..."Z").contains(first) else {
            return false
        }
        return name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
        }
    }

    /// Whether a condition holds for an entry with no fields at all.
    static func holdsWithoutFields(_ condition: Condition) -> Bool {
        switch condition {
        case .test(_, let test):
            switch test {
            case .exists(let wanted): return !wanted
            case .notEquals: return true
            default: return false
            }
        case .all(let parts): return parts.allSatisfy(holdsWithoutFields)
        case .any(let parts): return parts.contains(where: holdsWithoutFields)
        case .not(let inner): return !holdsWithoutFields(inner)
        }
    }
}
