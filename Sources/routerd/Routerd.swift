import ArgumentParser
import Foundation
import Logging
import Router
import RouterSupport
import ServiceLifecycle

@main
struct Routerd: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "routerd",
        abstract: "A YAML-configured log router: JSON entries over UDP, through filters, to outputs.",
        version: version,
        subcommands: [
            RunCommand.self, ValidateCommand.self, ReloadCommand.self, StagesCommand.self, GraphCommand.self,
            TestCommand.self, TopCommand.self, SendCommand.self, LoadtestCommand.self, BufferCommand.self,
        ],
        defaultSubcommand: RunCommand.self
    )
}

/// Options shared by every command that reads a config.
struct ConfigOptions: ParsableArguments {
    @Option(name: [.customShort("c"), .customLong("config")], help: "The config file (YAML).")
    var config: String

    func loadPlan(registry: StageRegistry) throws -> RouterPlan {
        do {
            return try RouterConfig.load(
                path: config, environment: ProcessInfo.processInfo.environment, registry: registry)
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text.hasSuffix("\n") ? text : text + "\n").utf8))
}

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run", abstract: "Run the router (the default command): routerd -c router.yaml")

    @OptionGroup var options: ConfigOptions

    @Option(
        name: .customLong("pid-file"),
        help: ArgumentHelp(
            "Write the process id here once the router is built (for logrotate's postrotate and init scripts); "
                + "removed at exit.", valueName: "path"))
    var pidFile: String?

    @Flag(
        name: .customLong("watch-config"),
        help:
            "Reload when the config file changes (an editor's save or an atomic rename), 300 ms after the last change.")
    var watchConfig = false

    func run() async throws {
        signal(SIGPIPE, SIG_IGN)
        let registry = try BuiltinStages.registry()
        let plan = try options.loadPlan(registry: registry)
        let levelName = try plan.globals.value(RouterGlobals.logLevel)
        let level = Logger.Level(rawValue: levelName) ?? .info
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
        var logger = Logger(label: "routerd")
        logger.logLevel = level
        let router: Router
        do {
            router = try Router(plan: plan, logger: logger)
        } catch {
            printError(error.description)
            throw ExitCode(1)
        }
        // Trap before anything starts, so that a signal that comes at once is not lost.
        let signals = await ShutdownSignals()
        if let pidFile {
            do {
                try PIDFile.write(pidFile)
            } catch {
                printError("routerd: cannot write the pid file: \(error)")
                throw ExitCode(1)
            }
        }
        defer { if let pidFile { PIDFile.remove(pidFile) } }
        let environment = ProcessInfo.processInfo.environment
        let notifier = SystemdNotifier(environment: environment)
        let reloader = ConfigReloader(
            router: router, plan: plan, path: options.config, registry: registry, logger: logger, notifier: notifier
        ) { ProcessInfo.processInfo.environment }
        var configuration = ServiceGroupConfiguration(
            services: [
                // The router's service runs the stages' services (the dashboards) itself: a reload starts and stops
                // them with their stages, and they stop after the router drained.
                .init(
                    service: RouterService(
                        router: router, logger: logger, reloader: reloader, runsStageServices: true,
                        notifier: notifier),
                    successTerminationBehavior: .gracefullyShutdownGroup)
            ],
            logger: logger)
        // Past shutdown_timeout the group cancels the router's service, which says what was not written and exits 1.
        configuration.maximumGracefulShutdownDuration = try plan.globals.value(RouterGlobals.shutdownTimeout)
        let group = ServiceGroup(configuration: configuration)
        let watcher = signals.watch(group, router: router, logger: logger, reloader: reloader)
        defer { watcher.cancel() }
        var configWatch: ConfigWatcher?
        if watchConfig {
            do {
                configWatch = try ConfigWatcher(path: options.config, logger: logger) {
                    reloader.reloadInBackground(trigger: "watch")
                }
            } catch {
                printError("routerd: cannot watch the config file: \(error)")
                throw ExitCode(1)
            }
        }
        defer { configWatch?.stop() }
        do {
            try await group.run()
        } catch let loss as ShutdownLoss {
            // The log said it too; the status tells a supervisor (systemd, a script) that entries were lost.
            printError("routerd: \(loss)")
            throw ExitCode(3)
        }
    }
}

/// `routerd reload --pid-file FILE`: sends SIGHUP to the routerd whose pid the file holds.
struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract: "Ask a running routerd to reload its config (sends SIGHUP to the pid in --pid-file).",
        discussion: "The outcome is in the running routerd's log and in /stats (config.last_reload).")

    @Option(
        name: .customLong("pid-file"), help: ArgumentHelp("The running routerd's --pid-file.", valueName: "path"))
    var pidFile: String

    func run() throws {
        guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
            let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0
        else {
            printError("routerd: '\(pidFile)' does not hold a process id")
            throw ExitCode(1)
        }
        guard kill(pid, SIGHUP) == 0 else {
            printError("routerd: cannot signal process \(pid): \(FileDescriptorWriter.describe(errno))")
            throw ExitCode(1)
        }
        print("sent SIGHUP to routerd (pid \(pid))")
    }
}

struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate", abstract: "Check a config and print every error; exit 1 when there are any.")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let plan = try options.loadPlan(registry: try BuiltinStages.registry())
        let counts = StageRole.allCases.map { role in
            "\(plan.stages.filter { $0.kind.role == role }.count) \(role.section)"
        }
        print("\(options.config): ok (\(counts.joined(separator: ", ")))")
    }
}

struct StagesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stages", abstract: "List every registered stage kind with its options.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json, markdown
    }

    @Option(help: "Output format: text, json or markdown (docs/stages.md).")
    var format: Format = .text

    func run() throws {
        let registry = try BuiltinStages.registry()
        switch format {
        case .text: print(StageReference.text(registry), terminator: "")
        case .json: print(StageReference.json(registry), terminator: "")
        case .markdown: print(StageReference.markdown(registry), terminator: "")
        }
    }
}

struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph", abstract: "Print a config's checked graph.")

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, dot
    }

    @OptionGroup var options: ConfigOptions

    @Option(help: "Output format: text or dot (Graphviz).")
    var format: Format = .text

    func run() throws {
        let plan = try options.loadPlan(registry: try BuiltinStages.registry())
        print(format == .dot ? GraphRender.dot(plan) : GraphRender.text(plan), terminator: "")
    }
}

/// `--pid-file`: the process id, written whole (a temporary file renamed into place) so a reader never sees half.
enum PIDFile {
    static func write(_ path: String) throws {
        let temporary = path + ".tmp-\(getpid())"
        let text = "\(getpid())\n"
        guard FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)) else {
            throw StageError("cannot create '\(temporary)': \(FileDescriptorWriter.describe(errno))")
        }
        guard rename(temporary, path) == 0 else {
            let reason = FileDescriptorWriter.describe(errno)
            unlink(temporary)
            throw StageError("cannot write '\(path)': \(reason)")
        }
    }

    static func remove(_ path: String) {
        unlink(path)
    }
}
