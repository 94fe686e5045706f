import RouterConfig
public import RouterCore

/// A checked router config: every stage with its kind, options and upstreams, in an order where every stage
/// comes after its upstreams.
public struct RouterPlan: Sendable {
    /// The stages, each after its upstreams: inputs first, then filters in dependency order, then outputs. Stages
    /// fed through an output's port (`store.rejected`) come after that output, in the same order again.
    public var stages: [StagePlan]
    /// The `router:` section's values, defaults filled in.
    public var globals: StageOptions
    /// The config's text, when the plan came from a file.
    public var source: ConfigSource?

    /// Makes a plan.
    public init(stages: [StagePlan], globals: StageOptions = StageOptions(), source: ConfigSource? = nil) {
        self.stages = stages
        self.globals = globals
        self.source = source
    }

    /// The stage named `name`.
    public func stage(_ name: String) -> StagePlan? { stages.first { $0.name == name } }
}

/// One stage of a checked plan.
public struct StagePlan: Sendable {
    /// Its name in the config.
    public var name: String
    /// Its kind.
    public var kind: StageRegistry.Kind
    /// Checked options with defaults filled in.
    public var options: StageOptions
    /// What it reads from, in the order the config lists them.
    public var upstreams: [Upstream]
    /// Where the stage is declared.
    public var location: SourceLocation?

    /// Makes a stage plan.
    public init(
        name: String, kind: StageRegistry.Kind, options: StageOptions, upstreams: [Upstream],
        location: SourceLocation? = nil
    ) {
        self.name = name
        self.kind = kind
        self.options = options
        self.upstreams = upstreams
        self.location = location
    }

    /// `inputs.udp_in`.
    public var path: String { "\(kind.role.section).\(name)" }
}

/// One upstream reference: a stage's port.
public struct Upstream: Sendable, Hashable, CustomStringConvertible {
    /// The upstream stage's name.
    public var stage: String
    /// The port's index in the upstream's ``StageDeclaration/portNames`` (0: default).
    public var port: Int
    /// The port's name (`default`, `unmatched`).
    public var portName: String

    /// Makes a reference.
    public init(stage: String, port: Int, portName: String) {
        self.stage = stage
        self.port = port
        self.portName = portName
    }

    /// `errors.unmatched`, or just `errors` for the default port.
    public var description: String { port == 0 ? stage : "\(stage).\(portName)" }
}

/// The `router:` section: settings for the whole process.
public enum RouterGlobals {
    /// `log_level`.
    public static let logLevel = StageOption<String>.oneOf(
        "log_level", ["trace", "debug", "info", "notice", "warning", "error", "critical"], default: "info",
        "Least severe level of routerd's own log lines (JSON on stderr).")
    /// `shutdown_timeout`.
    public static let shutdownTimeout = StageOption<Duration>.duration(
        "shutdown_timeout", .milliseconds(100)...(.seconds(3600)), default: .seconds(30),
        "Longest a graceful shutdown may take to drain queues and flush outputs; past it routerd logs what is still "
            + "queued and exits 1.")

    /// `data_dir`.
    public static let dataDirectory = StageOption<String>.string(
        "data_dir", default: "data",
        "Directory for state that outlives the process: each disk-buffered output's buffer is `<data_dir>/<output "
            + "name>` unless its `buffer.path` says otherwise. Relative to the working directory.")

    /// The options the `router:` section takes.
    public static let options: [OptionDeclaration] = [
        logLevel.declaration, shutdownTimeout.declaration, dataDirectory.declaration,
    ]
}
