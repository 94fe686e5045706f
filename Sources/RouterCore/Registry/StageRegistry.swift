/// The stage kinds a router knows, by role and `type` name.
///
/// A type name is unique within its role: an input and an output may share one (`amqp` is both: the config's
/// section says which is meant).
///
/// routerd's own kinds are registered from one explicit list; a library user adds theirs with the same call.
public struct StageRegistry: Sendable {
    /// One registered kind.
    public struct Kind: Sendable {
        /// The Swift type that implements it.
        public var stageType: any Stage.Type
        /// Its role, from the protocol it conforms to.
        public var role: StageRole
        /// Its declaration as written by the kind.
        public var declaration: StageDeclaration
        /// The options it accepts: the declaration's plus those the runtime adds for its role.
        public var options: [OptionDeclaration]
    }

    /// Every kind, in registration order.
    public private(set) var kinds: [Kind] = []
    private var byType: [String: [Int]] = [:]

    /// Makes an empty registry.
    public init() {}

    /// Makes a registry of these kinds; throws on a kind that cannot be registered (see ``register(_:)``).
    public init(_ types: [any Stage.Type]) throws {
        for type in types { try register(type) }
    }

    /// Adds a kind. Throws when its type name is taken in its role or is not snake_case, when it is none of input, filter or
    /// output, or when its declaration repeats an option or port name.
    public mutating func register(_ stageType: any Stage.Type) throws {
        let declaration = stageType.declaration
        let role: StageRole
        if stageType is any InputStage.Type {
            role = .input
        } else if stageType is any FilterStage.Type {
            role = .filter
        } else if stageType is any OutputStage.Type {
            role = .output
        } else {
            throw StageError("stage type '\(declaration.type)' is neither an InputStage, FilterStage nor OutputStage")
        }
        guard Naming.isSnakeCase(declaration.type) else {
            throw StageError("stage type '\(declaration.type)' is not snake_case")
        }
        if let taken = byType[declaration.type]?.first(where: { kinds[$0].role == role }) {
            throw StageError(
                "\(role.rawValue) type '\(declaration.type)' is already registered (by \(kinds[taken].stageType))")
        }
        let options = declaration.options + StageRegistry.runtimeOptions(for: role)
        var seen: Set<String> = ["type"]
        for option in options where !seen.insert(option.name).inserted {
            throw StageError("stage type '\(declaration.type)' declares option '\(option.name)' twice")
        }
        var ports: Set<String> = ["default"]
        for port in declaration.ports where !ports.insert(port.name).inserted {
            throw StageError("stage type '\(declaration.type)' declares port '\(port.name)' twice")
        }
        byType[declaration.type, default: []].append(kinds.count)
        kinds.append(Kind(stageType: stageType, role: role, declaration: declaration, options: options))
    }

    /// The kind with this type name in `role`.
    public func kind(_ type: String, role: StageRole) -> Kind? {
        byType[type]?.lazy.map { kinds[$0] }.first { $0.role == role }
    }

    /// The first registered kind with this type name, in any role.
    public func kind(_ type: String) -> Kind? {
        byType[type]?.first.map { kinds[$0] }
    }

    /// Every type name of a role, in registration order.
    public func typeNames(for role: StageRole) -> [String] {
        kinds.filter { $0.role == role }.map(\.declaration.type)
    }

    /// The options the runtime adds to every stage of a role.
    public static func runtimeOptions(for role: StageRole) -> [OptionDeclaration] {
        switch role {
        case .input:
            return []
        case .filter:
            return [inputsOption]
        case .output:
            return [inputsOption] + SharedOptions.output.map(\.declaration)
        }
    }

    private static let inputsOption = OptionDeclaration(
        "inputs", .list(.string), .required,
        "Upstream stages, as `name` (its default port) or `name.port` (`errors.unmatched`, `valid.invalid`).")
}

/// Name rules shared by stage types, options, ports and counters.
public enum Naming {
    /// Whether `name` is lower snake_case: `[a-z][a-z0-9_]*`.
    public static func isSnakeCase(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, ("a"..."z").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" }
    }

    /// Whether `name` can name a stage in a config: letters, digits, `_` and `-`, starting with a letter or `_`.
    public static func isStageName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first,
            ("a"..."z").contains(first) || ("A"..."Z").contains(first) || first == "_"
        else { return false }
        return name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
        }
    }
}
