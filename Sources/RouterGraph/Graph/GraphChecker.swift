public import RouterConfig
public import RouterCore

/// Turns a config file into a checked ``RouterPlan``, reporting every mistake in the file in one pass.
public enum RouterConfig {
    /// The top-level sections a config may have.
    public static let sections = ["inputs", "filters", "outputs", "router"]

    /// Reads, parses and checks a config file.
    ///
    /// Every mistake is reported in one run: problems the YAML loader finds that still leave a tree (a duplicate key,
    /// an undefined alias, a `${VAR:?message}` that fails) are reported together with every problem the graph check
    /// finds in that tree. Only a YAML syntax error, after which there is no tree, is reported alone.
    public static func load(
        path: String, environment: [String: String], registry: StageRegistry
    ) throws(ConfigErrors) -> RouterPlan {
        let source = try YAMLLoader.readSource(path: path)
        return try parse(source, environment: environment, registry: registry)
    }

    /// Parses and checks config text (tests, and library users who build configs in code), reporting every
    /// mistake as ``load(path:environment:registry:)`` does.
    public static func parse(
        _ source: ConfigSource, environment: [String: String], registry: StageRegistry
    ) throws(ConfigErrors) -> RouterPlan {
        let parsed = YAMLLoader.parseCollecting(source, environment: environment)
        guard let root = parsed.root else { throw ConfigErrors(parsed.diagnostics) }
        return try plan(source: source, root: root, registry: registry, loaderDiagnostics: parsed.diagnostics)
    }

    /// Checks a parsed config against the registry. `loaderDiagnostics` are the YAML loader's problems with this
    /// tree (``YAMLLoader/parseCollecting(_:environment:)``): they are reported with the check's, and the check
    /// says nothing more about a node the loader already reported (a failed `${VAR}` is not also "not an integer").
    public static func plan(
        source: ConfigSource, root: ConfigNode, registry: StageRegistry, loaderDiagnostics: [Diagnostic] = []
    ) throws(ConfigErrors) -> RouterPlan {
        var checker = GraphChecker(source: source, registry: registry)
        let plan = checker.check(root)
        let reported = Set(loaderDiagnostics.compactMap(\.location))
        let diagnostics =
            loaderDiagnostics + checker.diagnostics.filter { $0.location.map { !reported.contains($0) } ?? true }
        if !diagnostics.isEmpty {
            throw ConfigErrors(
                diagnostics.enumerated().sorted {
                    ($0.element.location?.line ?? 0, $0.element.location?.column ?? 0, $0.offset) < (
                        $1.element.location?.line ?? 0, $1.element.location?.column ?? 0, $1.offset
                    )
                }.map(\.element))
        }
        return plan
    }
}

private struct DeclaredStage {
    var name: String
    var role: StageRole
    var kind: StageRegistry.Kind?
    var options: StageOptions
    var upstreamNodes: [ConfigNode]
    var location: SourceLocation
    var path: String { "\(role.section).\(name)" }
}

private struct GraphChecker {
    let source: ConfigSource
    let registry: StageRegistry
    var diagnostics: [Diagnostic] = []

    init(source: ConfigSource, registry: StageRegistry) {
        self.source = source
        self.registry = registry
    }

    mutating func error(_ message: String, at location: SourceLocation?, path: String? = nil) {
        diagnostics.append(source.diagnostic(message, at: location, path: path))
    }

    mutating func check(_ root: ConfigNode) -> RouterPlan {
        var declared: [DeclaredStage] = []
        var globals = StageOptions()
        guard case .mapping(let entries) = root.kind else {
            if case .null = root.kind {
                error("the config is empty; expected the sections inputs, filters and outputs", at: root.location)
            } else {
                error("the config must be a mapping with the sections inputs, filters and outputs", at: root.location)
            }
            return RouterPlan(stages: [], source: source)
        }
        var sawSection: Set<String> = []
        for entry in entries {
            switch entry.key {
            case "router":
                globals = checkOptions(
                    entry.value, declarations: RouterGlobals.options, path: "router", at: entry.keyLocation)
            case "inputs", "filters", "outputs":
                sawSection.insert(entry.key)
                let role: StageRole = entry.key == "inputs" ? .input : entry.key == "filters" ? .filter : .output
                declared += checkSection(entry, role: role)
            default:
                var message = "unknown section '\(entry.key)'"
                if let suggestion = EditDistance.suggestion(for: entry.key, among: RouterConfig.sections) {
                    message += " (did you mean '\(suggestion)'?)"
                } else {
                    message += "; sections are: " + RouterConfig.sections.joined(separator: ", ")
                }
                error(message, at: entry.keyLocation)
            }
        }
        if !sawSection.contains("inputs") { error("the config has no inputs section", at: root.location) }
        if !sawSection.contains("outputs") { error("the config has no outputs section", at: root.location) }
        return link(declared, globals: globals)
    }

    mutating func checkSection(_ section: ConfigEntry, role: StageRole) -> [DeclaredStage] {
        if case .null = section.value.kind { return [] }
        guard case .mapping(let stages) = section.value.kind else {
            error(
                "\(section.key) must be a mapping of stage names to stages, got \(OptionChecker.shape(section.value))",
                at: section.value.location)
            return []
        }
        var result: [DeclaredStage] = []
        for stage in stages {
            let path = "\(role.section).\(stage.key)"
            if !Naming.isStageName(stage.key) || stage.key == "default" {
                error(
                    "'\(stage.key)' is not a valid stage name (letters, digits, '_' and '-', starting with a letter; "
                        + "no dots, which separate ports)", at: stage.keyLocation, path: path)
            }
            guard case .mapping(let fields) = stage.value.kind else {
                error(
                    "a stage must be a mapping with at least 'type', got \(OptionChecker.shape(stage.value))",
                    at: stage.value.location, path: path)
                continue
            }
            var declaredStage = DeclaredStage(
                name: stage.key, role: role, kind: nil, options: StageOptions(), upstreamNodes: [],
                location: stage.keyLocation)
            // Upstreams are read even when the stage itself is wrong, so that one mistake does not cascade into
            // "not consumed" errors about the stages it reads from.
            if role != .input, let inputs = fields.first(where: { $0.key == "inputs" }),
                case .sequence(let items) = inputs.value.kind
            {
                declaredStage.upstreamNodes = items
            }
            guard let typeEntry = fields.first(where: { $0.key == "type" }) else {
                error("missing required option 'type'", at: stage.keyLocation, path: path)
                result.append(declaredStage)
                continue
            }
            guard case .scalar(let typeName) = typeEntry.value.kind else {
                error(
                    "option 'type' must be a string, got \(OptionChecker.shape(typeEntry.value))",
                    at: typeEntry.value.location, path: path)
                result.append(declaredStage)
                continue
            }
            guard let kind = registry.kind(typeName, role: role) else {
                reportUnknownType(typeName, role: role, at: typeEntry.value.location, path: path)
                result.append(declaredStage)
                continue
            }
            declaredStage.kind = kind
            let errorsBefore = diagnostics.count
            declaredStage.options = checkOptions(
                stage.value, declarations: kind.options, path: path, at: stage.keyLocation, skipping: ["type"])
            if diagnostics.count == errorsBefore {
                for message in kind.declaration.check(declaredStage.options) {
                    error(message, at: stage.keyLocation, path: path)
                }
            }
            if diagnostics.count == errorsBefore {
                for problem in kind.declaration.validate(declaredStage.options) {
                    error(problem.message, at: problem.location ?? stage.keyLocation, path: path)
                }
            }
            if role == .output {
                let tree = (try? declaredStage.options.value(BufferSettings.option)) ?? nil
                for problem in BufferSettings.parse(tree).problems {
                    error(problem.message, at: problem.location ?? stage.keyLocation, path: path)
                }
            }
            result.append(declaredStage)
        }
        return result
    }

    mutating func reportUnknownType(_ typeName: String, role: StageRole, at location: SourceLocation, path: String) {
        if let other = registry.kind(typeName) {
            error(
                "'\(typeName)' is \(other.role.withArticle) stage, not \(role.withArticle); "
                    + "declare it under \(other.role.section)", at: location, path: path)
            return
        }
        let candidates = registry.typeNames(for: role)
        var message = "unknown \(role.rawValue) type '\(typeName)'"
        if let suggestion = EditDistance.suggestion(for: typeName, among: candidates) {
            message += " (did you mean '\(suggestion)'?)"
        } else {
            message += "; \(role.rawValue) types are: " + candidates.joined(separator: ", ")
        }
        error(message, at: location, path: path)
    }

    mutating func checkOptions(
        _ node: ConfigNode, declarations: [OptionDeclaration], path: String, at location: SourceLocation,
        skipping: Set<String> = []
    ) -> StageOptions {
        var options = StageOptions()
        let fields: [ConfigEntry]
        switch node.kind {
        case .mapping(let entries): fields = entries
        case .null: fields = []
        default:
            error("must be a mapping, got \(OptionChecker.shape(node))", at: node.location, path: path)
            fields = []
        }
        let names = declarations.map(\.name)
        for field in fields where !skipping.contains(field.key) {
            guard let declaration = declarations.first(where: { $0.name == field.key }) else {
                var message = "unknown option '\(field.key)'"
                if let suggestion = EditDistance.suggestion(for: field.key, among: names) {
                    message += " (did you mean '\(suggestion)'?)"
                } else {
                    message += "; allowed: " + (["type"] + names).joined(separator: ", ")
                }
                error(message, at: field.keyLocation, path: path)
                continue
            }
            if case .null = field.value.kind {
                if declaration.requirement == .required {
                    error("option '\(field.key)' has no value", at: field.keyLocation, path: path)
                }
                continue
            }
            switch OptionChecker.convert(field.value, as: declaration.type) {
            case .success(let value):
                options.values[field.key] = value
                options.locations[field.key] = field.value.location
            case .failure(let problem):
                error("option '\(field.key)' \(problem.message)", at: problem.location, path: path)
            }
        }
        for declaration in declarations where options.values[declaration.name] == nil {
            switch declaration.requirement {
            case .required:
                if !fields.contains(where: { $0.key == declaration.name }) {
                    error("missing required option '\(declaration.name)'", at: location, path: path)
                }
            case .defaultValue(let value):
                options.values[declaration.name] = value
            case .optional:
                break
            }
        }
        return options
    }

    mutating func link(_ declared: [DeclaredStage], globals: StageOptions) -> RouterPlan {
        var byName: [String: Int] = [:]
        for (index, stage) in declared.enumerated() {
            if let first = byName[stage.name] {
                let other = declared[first]
                error(
                    "the name '\(stage.name)' is already used by \(other.path) (line \(other.location.line))",
                    at: stage.location, path: stage.path)
                continue
            }
            byName[stage.name] = index
        }
        var upstreams = [[Upstream]](repeating: [], count: declared.count)
        var consumed = Set<String>()
        var consumedPorts = Set<Upstream>()
        for (index, stage) in declared.enumerated() where stage.role != .input {
            for node in stage.upstreamNodes {
                guard case .scalar(let reference) = node.kind else { continue }
                if let name = reference.split(separator: ".").first.map(String.init), byName[name] != nil {
                    consumed.insert(name)
                }
                if let upstream = resolve(reference, at: node.location, from: stage, declared: declared, byName: byName)
                {
                    if upstreams[index].contains(upstream) {
                        error("'\(reference)' is listed twice in inputs", at: node.location, path: stage.path)
                        continue
                    }
                    upstreams[index].append(upstream)
                    consumed.insert(upstream.stage)
                    consumedPorts.insert(upstream)
                }
            }
        }
        reportUnreadOptionPorts(declared, consumedPorts: consumedPorts)
        for stage in declared where stage.role == .input && !consumed.contains(stage.name) && stage.kind != nil {
            error(
                "input '\(stage.name)' is not consumed: no filter or output lists it in its inputs",
                at: stage.location, path: stage.path)
        }
        let order = topologicalOrder(declared, upstreams: upstreams, byName: byName)
        checkReplyChannels(declared, upstreams: upstreams, byName: byName)
        var stages: [StagePlan] = []
        for index in order {
            let stage = declared[index]
            guard let kind = stage.kind else { continue }
            stages.append(
                StagePlan(
                    name: stage.name, kind: kind, options: stage.options, upstreams: upstreams[index],
                    location: stage.location))
        }
        return RouterPlan(stages: stages, globals: globals, source: source)
    }

    /// A port the options name (a route) that no stage reads is a mistake: the entries it takes would be lost.
    mutating func reportUnreadOptionPorts(_ declared: [DeclaredStage], consumedPorts: Set<Upstream>) {
        for stage in declared {
            guard let declaration = stage.kind?.declaration, declaration.optionPortsMustBeRead else { continue }
            let fixed = declaration.portNames.count
            for (offset, port) in declaration.optionPorts(stage.options).enumerated() {
                let upstream = Upstream(stage: stage.name, port: fixed + offset, portName: port.name)
                guard !consumedPorts.contains(upstream) else { continue }
                error(
                    "port '\(stage.name).\(port.name)' is not read: no filter or output lists it in its inputs, so the "
                        + "entries it takes would be lost", at: port.location ?? stage.location, path: stage.path)
            }
        }
    }

    mutating func resolve(
        _ reference: String, at location: SourceLocation, from stage: DeclaredStage, declared: [DeclaredStage],
        byName: [String: Int]
    ) -> Upstream? {
        let parts = reference.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let name = parts[0]
        guard let index = byName[name] else {
            var message = "unknown upstream '\(name)'"
            // Outputs feed nothing except through their ports: only those with ports are candidates.
            let candidates = declared.filter { candidate in
                candidate.name != stage.name
                    && (candidate.role != .output || candidate.kind?.declaration.ports.isEmpty == false)
            }.map(\.name)
            if let suggestion = EditDistance.suggestion(for: name, among: candidates) {
                message += " (did you mean '\(suggestion)'?)"
            } else if !candidates.isEmpty {
                message += "; stages that can feed it: " + candidates.joined(separator: ", ")
            }
            error(message, at: location, path: stage.path)
            return nil
        }
        let upstream = declared[index]
        if upstream.name == stage.name {
            error("a stage cannot read from itself", at: location, path: stage.path)
            return nil
        }
        // An output's default port is what it writes: nothing can read it. Its other ports (`store.rejected`) carry
        // what it hands on, like a filter's.
        if upstream.role == .output && (parts.count == 1 || parts[1] == "default") {
            let sidePorts = upstream.kind?.declaration.ports.map { "\(name).\($0.name)" } ?? []
            var message = "'\(name)' is an output; outputs do not feed other stages"
            if !sidePorts.isEmpty {
                message += " except through their ports: " + sidePorts.joined(separator: ", ")
            }
            error(message, at: location, path: stage.path)
            return nil
        }
        guard let kind = upstream.kind else { return nil }
        let ports = kind.declaration.portNames(for: upstream.options)
        if !kind.declaration.hasDefaultPort && (parts.count == 1 || parts[1] == "default") {
            error(
                "'\(name)' sends every entry to a named port; read one of: "
                    + ports.dropFirst().map { "\(name).\($0)" }.joined(separator: ", "), at: location, path: stage.path)
            return nil
        }
        guard parts.count == 2 else { return Upstream(stage: name, port: 0, portName: "default") }
        let portName = parts[1]
        guard let port = ports.firstIndex(of: portName) else {
            var message = "stage '\(name)' has no port '\(portName)'"
            if let suggestion = EditDistance.suggestion(for: portName, among: ports) {
                message += " (did you mean '\(suggestion)'?)"
            }
            message += "; its ports: " + ports.joined(separator: ", ")
            error(message, at: location, path: stage.path)
            return nil
        }
        return Upstream(stage: name, port: port, portName: portName)
    }

    mutating func topologicalOrder(
        _ declared: [DeclaredStage], upstreams: [[Upstream]], byName: [String: Int]
    ) -> [Int] {
        var remaining = [Int](repeating: 0, count: declared.count)
        var downstream = [[Int]](repeating: [], count: declared.count)
        for index in declared.indices {
            let sources = Set(upstreams[index].compactMap { byName[$0.stage] })
            remaining[index] = sources.count
            for source in sources { downstream[source].append(index) }
        }
        var ready = declared.indices.filter { remaining[$0] == 0 }
        var order: [Int] = []
        while let next = ready.first {
            ready.removeFirst()
            order.append(next)
            for consumer in downstream[next] {
                remaining[consumer] -= 1
                if remaining[consumer] == 0 { ready.append(consumer) }
            }
        }
        if order.count < declared.count {
            let inCycle = Set(declared.indices.filter { remaining[$0] > 0 })
            var reported = Set<Int>()
            for start in declared.indices where inCycle.contains(start) && !reported.contains(start) {
                let found = findCycle(from: start, inCycle: inCycle, upstreams: upstreams, byName: byName)
                // A stage downstream of a cycle finds the same cycle again: report each cycle once, starting at
                // the stage declared first so that the message points at the earliest line.
                guard !reported.isSuperset(of: found), let earliest = found.min(),
                    let pivot = found.firstIndex(of: earliest)
                else { continue }
                let cycle = Array(found[pivot...] + found[..<pivot])
                reported.formUnion(cycle)
                let names = cycle.map { declared[$0].name } + [declared[cycle[0]].name]
                error(
                    "cycle: " + names.joined(separator: " -> "), at: declared[cycle[0]].location,
                    path: declared[cycle[0]].path)
            }
        }
        // Inputs, then filters, then outputs; a stage fed through an output's port (`store.rejected`) comes in a
        // later tier, after that output, so that every stage still comes after its upstreams.
        var tier = [Int](repeating: 0, count: declared.count)
        for index in order {
            for upstream in upstreams[index] {
                guard let source = byName[upstream.stage] else { continue }
                tier[index] = max(tier[index], tier[source] + (declared[source].role == .output ? 1 : 0))
            }
        }
        let roleRank: [StageRole: Int] = [.input: 0, .filter: 1, .output: 2]
        return order.enumerated().sorted {
            (tier[$0.element], roleRank[declared[$0.element].role] ?? 0, $0.offset) < (
                tier[$1.element], roleRank[declared[$1.element].role] ?? 0, $1.offset
            )
        }.map(\.element)
    }

    /// A cycle through `start`, following edges from each stage to the stages it reads from.
    func findCycle(from start: Int, inCycle: Set<Int>, upstreams: [[Upstream]], byName: [String: Int]) -> [Int] {
        var path: [Int] = [start]
        var visited: Set<Int> = [start]
        var current = start
        while true {
            guard let next = upstreams[current].compactMap({ byName[$0.stage] }).first(where: inCycle.contains) else {
                return []
            }
            if let position = path.firstIndex(of: next) { return Array(path[position...]).reversed() }
            if visited.contains(next) { return [] }
            visited.insert(next)
            path.append(next)
            current = next
        }
    }

    mutating func checkReplyChannels(_ declared: [DeclaredStage], upstreams: [[Upstream]], byName: [String: Int]) {
        for (index, stage) in declared.enumerated() where stage.kind?.declaration.needsReplyChannel == true {
            var stack = [index]
            var seen: Set<Int> = [index]
            while let current = stack.popLast() {
                for upstream in upstreams[current] {
                    guard let source = byName[upstream.stage], seen.insert(source).inserted else { continue }
                    let sourceStage = declared[source]
                    if sourceStage.role == .input, let kind = sourceStage.kind,
                        !kind.declaration.canReply(sourceStage.options)
                    {
                        var message =
                            "'\(stage.kind?.declaration.type ?? "")' sends replies to senders, but input "
                            + "'\(sourceStage.name)' upstream cannot send"
                        if let location = sourceStage.options.locations["one_way"] {
                            message += " (one_way: true at line \(location.line))"
                        }
                        error(message, at: stage.location, path: stage.path)
                    }
                    stack.append(source)
                }
            }
        }
    }
}

extension StageRole {
    /// `an input`, `a filter`, `an output`, for messages.
    fileprivate var withArticle: String {
        switch self {
        case .input: "an input"
        case .filter: "a filter"
        case .output: "an output"
        }
    }
}

extension RouterConfig {
    /// The checked options of a stage kind's declared example (``StageDeclaration/example``), defaults filled in,
    /// or nil when the example does not check: what a harness needs to know the ports the example's options name.
    public static func exampleOptions(of kind: StageRegistry.Kind, environment: [String: String]) -> StageOptions? {
        let source = ConfigSource(path: "\(kind.declaration.type) example", text: kind.declaration.example.options)
        guard let root = try? YAMLLoader.parse(source, environment: environment) else { return nil }
        var checker = GraphChecker(source: source, registry: StageRegistry())
        let options = checker.checkOptions(
            root, declarations: kind.declaration.options, path: kind.declaration.type, at: root.location)
        return checker.diagnostics.isEmpty ? options : nil
    }
}
