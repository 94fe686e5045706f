import Filters
import Foundation
import Inputs
import Logging
import Outputs
import Router
import ServiceLifecycle

/// A router with routerd's light stage kinds and three of its own, run from a YAML file:
/// `embedded-router router.yaml`. At the end it prints what every stage counted, one JSON object per line.
@main
struct EmbeddedRouter {
    static func main() async throws {
        var registry = try StageRegistry(InputStages.builtin + FilterStages.builtin + OutputStages.builtin)
        for custom: any Stage.Type in [StdinLines.self, Tag.self, FlakyFile.self] { try registry.register(custom) }

        let path = CommandLine.arguments.dropFirst().first ?? "router.yaml"
        LoggingSystem.bootstrap { JSONLogHandler(label: $0, level: .info) }
        let logger = Logger(label: "embedded-router")
        let plan: RouterPlan
        let router: Router
        do {
            plan = try RouterConfig.load(
                path: path, environment: ProcessInfo.processInfo.environment, registry: registry)
            router = try Router(plan: plan, logger: logger)
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            exit(1)
        }

        // The group owns shutdown: the first SIGTERM or SIGINT drains, a second exits at once.
        let signals = await ShutdownSignals()
        var configuration = ServiceGroupConfiguration(
            services: router.services.map {
                // A stage's service that ends (a server that cannot serve says so itself) leaves the rest running.
                .init(service: $0, successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore)
            }
                + [
                    .init(
                        service: RouterService(router: router, logger: logger),
                        successTerminationBehavior: .gracefullyShutdownGroup)
                ],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = try plan.globals.value(RouterGlobals.shutdownTimeout)
        let group = ServiceGroup(configuration: configuration)
        let watcher = signals.watch(group, router: router, logger: logger)
        try await group.run()
        watcher.cancel()

        for stage in router.observer.stages {
            let counters = stage.counters.snapshot().map { counter in
                let label = counter.key.label.map { "{\($0)=\(counter.key.value ?? "")}" } ?? ""
                return "\"\(counter.key.name)\(label)\":\(counter.value)"
            }
            print("{\"stage\":\"\(stage.name)\",\(counters.joined(separator: ","))}")
        }
    }
}
