import ArgumentParser
import Foundation
import Router

/// `routerd test -c router.yaml TESTS.yaml...`: config unit tests, run in-process on the config's real filters.
struct TestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run config unit tests: entries into a stage, and what must come out at which output or port.",
        discussion: """
            Runs the config's real filters in-process; inputs are not started and outputs are replaced by captures, \
            so no socket, file or broker is touched. Prints a diff of expected and received entries for each \
            failing test and exits 1 when a test fails or a test file has errors (positioned as config errors are). \
            The test file format is in README.md, "Testing a config".
            """)

    @OptionGroup var options: ConfigOptions

    @Argument(help: ArgumentHelp("Test files (YAML).", valueName: "tests.yaml"))
    var tests: [String]

    @Flag(name: .shortAndLong, help: "Print each test that passes, too.")
    var verbose = false

    func validate() throws {
        guard !tests.isEmpty else { throw ValidationError("name at least one test file") }
    }

    func run() throws {
        let registry = try BuiltinStages.registry()
        var passed = 0
        var failed = 0
        var broken = 0
        for path in tests {
            let file: ConfigTestFile
            let plan: RouterPlan
            let resolved: [ConfigTestSession.Resolved]
            let session: ConfigTestSession
            do {
                file = try ConfigTestFileReader.load(path: path)
                var environment = ProcessInfo.processInfo.environment
                environment.merge(file.environment) { $1 }
                plan = try RouterConfig.load(path: options.config, environment: environment, registry: registry)
                session = ConfigTestSession(file: file, graph: ConfigTestGraph(plan: plan))
                resolved = try session.resolve()
            } catch {
                printError(error.description)
                broken += 1
                continue
            }
            for test in resolved {
                do {
                    let problems = try session.run(test)
                    if problems.isEmpty {
                        passed += 1
                        if verbose { print("PASS \(test.test.location): \(test.test.name)") }
                    } else {
                        failed += 1
                        print("FAIL \(test.test.location): \(test.test.name)")
                        for line in problems { print("    " + line) }
                    }
                } catch {
                    printError("\(error)")
                    broken += 1
                }
            }
        }
        var summary = "routerd test: \(passed) passed, \(failed) failed"
        if broken > 0 { summary += ", \(broken) test file\(broken == 1 ? "" : "s") with errors" }
        print(summary)
        if failed > 0 || broken > 0 { throw ExitCode(1) }
    }
}
