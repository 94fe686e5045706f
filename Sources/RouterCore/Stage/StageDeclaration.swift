/// Where a stage sits in the graph.
public enum StageRole: String, Sendable, CaseIterable {
    /// Receives entries from outside (config section `inputs`).
    case input
    /// Routes or changes entries (config section `filters`).
    case filter
    /// Writes entries somewhere (config section `outputs`).
    case output

    /// The config section that holds stages of this role.
    public var section: String { rawValue + "s" }
}

/// Everything routerd knows about a stage kind, declared once by the kind.
///
/// Validation, defaults, `routerd stages`, docs/stages.md and the counters shown in `/stats` and `/metrics` all
/// come from this value; nothing about an option is written twice.
public struct StageDeclaration: Sendable {
    /// The `type:` name in configs, snake_case.
    public var type: String
    /// One line saying what it does.
    public var summary: String
    /// The options the kind takes (the runtime adds `inputs`, and for outputs the queue options, itself).
    public var options: [OptionDeclaration]
    /// Ports besides the default one.
    public var ports: [PortDeclaration]
    /// Counters besides the standard ones.
    public var counters: [CounterDeclaration]
    /// For filters such as `ack`: every input upstream must be able to send replies, checked before start.
    public var needsReplyChannel: Bool
    /// For inputs: whether, with these options, the input can send replies (a `one_way` udp input cannot).
    public var canReply: @Sendable (StageOptions) -> Bool
    /// A working example of the kind: shown in docs/stages.md, and the config the compliance test builds every
    /// registered kind from before it sends entries through it.
    public var example: StageExample
    /// Checks between options that one option's type cannot express (`levels` or `min_level`, not both);
    /// returns one message per problem, reported at the stage's position in the config.
    public var check: @Sendable (StageOptions) -> [String]
    /// Checks of structured options (``OptionType/structure(_:)``) that report where in the option each problem
    /// is (a regular expression that does not compile, a condition nobody knows); run after ``check``.
    public var validate: @Sendable (StageOptions) -> [OptionProblemReport]
    /// Ports the options name (`route`'s routes), after the declared ``ports``; `unmatched` is declared, `billing`
    /// comes from the config.
    public var optionPorts: @Sendable (StageOptions) -> [PortDeclaration]
    /// Whether every port from ``optionPorts`` must be read by some stage: a config error otherwise, since a route
    /// nothing reads is a mistake in the config rather than a choice.
    public var optionPortsMustBeRead: Bool
    /// Whether the default port (the stage's own name) carries entries; when false (`route`, whose every entry
    /// leaves by a named port), listing the bare stage name in `inputs` is a config error.
    public var hasDefaultPort: Bool

    /// Declares a stage kind.
    public init(
        type: String,
        summary: String,
        options: [any OptionDeclaring] = [],
        ports: [PortDeclaration] = [],
        counters: [CounterDeclaration] = [],
        needsReplyChannel: Bool = false,
        canReply: @escaping @Sendable (StageOptions) -> Bool = { _ in false },
        example: StageExample = StageExample(),
        check: @escaping @Sendable (StageOptions) -> [String] = { _ in [] },
        validate: @escaping @Sendable (StageOptions) -> [OptionProblemReport] = { _ in [] },
        optionPorts: @escaping @Sendable (StageOptions) -> [PortDeclaration] = { _ in [] },
        optionPortsMustBeRead: Bool = false,
        hasDefaultPort: Bool = true
    ) {
        self.type = type
        self.summary = summary
        self.options = options.map(\.declaration)
        self.ports = ports
        self.counters = counters
        self.needsReplyChannel = needsReplyChannel
        self.canReply = canReply
        self.example = example
        self.check = check
        self.validate = validate
        self.optionPorts = optionPorts
        self.optionPortsMustBeRead = optionPortsMustBeRead
        self.hasDefaultPort = hasDefaultPort
    }

    /// Port names in index order: the default port (the stage's own name, shown as `default`) first.
    public var portNames: [String] { ["default"] + ports.map(\.name) }

    /// Port names in index order for a stage with these options: ``portNames``, then the ports the options name.
    public func portNames(for options: StageOptions) -> [String] {
        portNames + optionPorts(options).map(\.name)
    }
}

/// A working example of a stage kind's options, declared with the kind.
///
/// The options are YAML, as they would stand under the stage in a config (without `type` and `inputs`). They may
/// use `${EXAMPLE_DIR}` (a scratch directory), `${EXAMPLE_PORT}` (a free port on 127.0.0.1) and the variables
/// listed in ``needs`` (a broker's or a database's URL, which only a live server gives). An input's example says how
/// to send it entries (``send``), so that the compliance test can push traffic through every kind without knowing
/// any of them.
public struct StageExample: Sendable {
    /// The options, as YAML lines (`path: ${EXAMPLE_DIR}/out.log`).
    public var options: String
    /// Environment variables the example needs that only a live server provides (`AMQP_URL`).
    public var needs: [String]
    /// For inputs: sends each entry (one JSON text) to the example, given its environment (`EXAMPLE_PORT`, the
    /// variables of ``needs``).
    public var send: (@Sendable (_ entries: [String], _ environment: [String: String]) throws -> Void)?

    /// Makes an example.
    public init(
        _ options: String = "", needs: [String] = [],
        send: (@Sendable (_ entries: [String], _ environment: [String: String]) throws -> Void)? = nil
    ) {
        self.options = options
        self.needs = needs
        self.send = send
    }
}
