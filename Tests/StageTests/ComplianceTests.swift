import Filters
import Foundation
import Inputs
import Logging
import Outputs
import Router
import RouterAMQP
import RouterHTTPStats
import RouterPostgres
import RouterSupport
import StageTestKit
import Testing

// MARK: - Shared helpers for stage tests

/// Builds stages by hand, as a library user would, with defaults filled in from the kind's declaration.
enum StageHarness {
    /// Every built-in stage kind, in the order routerd registers them.
    static let builtin: [any Stage.Type] = Compliance.builtin

    /// A logger that prints nothing.
    static let logger = Logger(label: "routerd.tests", factory: { _ in SwiftLogNoOpLogHandler() })

    /// The registered kind of `stageType` (its declared options plus the runtime's for its role).
    static func kind(of stageType: any Stage.Type) throws -> StageRegistry.Kind {
        try #require(try StageRegistry([stageType]).kinds.first)
    }

    /// A context for `stageType` named `name`: every declared default, overridden by `options`.
    static func context(
        for stageType: any Stage.Type, name: String = "subject", options: [String: OptionValue] = [:]
    ) throws -> StageContext {
        let kind = try kind(of: stageType)
        var values: [String: OptionValue] = [:]
        for option in kind.options {
            if case .defaultValue(let value) = option.requirement { values[option.name] = value }
        }
        values.merge(options) { _, given in given }
        return StageContext(
            name: name, type: kind.declaration.type, options: StageOptions(values), logger: logger,
            counters: StageCounters(stage: name, type: kind.declaration.type, declaration: kind.declaration),
            health: StageHealth(), router: RouterObserver())
    }
}

/// A temporary directory, removed when the value is released.
final class TemporaryDirectory {
    /// The directory's path, without a trailing slash.
    let path: String

    init() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "routerd-tests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        path = url.path
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// `path/name`.
    func file(_ name: String) -> String { path + "/" + name }
}

/// A one-shot signal with a bounded wait, for threads the test starts.
final class Latch: @unchecked Sendable {
    // Safe to share: `isOpen` is only touched with `condition` locked.
    private let condition = NSCondition()
    private var isOpen = false

    /// Opens the latch and wakes its waiters.
    func open() {
        condition.lock()
        isOpen = true
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until the latch opens; false when `timeout` passed first.
    func wait(timeout: Duration = .seconds(10)) -> Bool {
        let deadline = Date(timeIntervalSinceNow: Double(timeout.nanoseconds) / 1e9)
        condition.lock()
        defer { condition.unlock() }
        while !isOpen {
            if !condition.wait(until: deadline) { return isOpen }
        }
        return true
    }
}

// MARK: - Compliance

/// Every built-in stage kind keeps the promises all stages make: clean registration, snake_case names, described
/// options, defaults that pass their own checks, and a prompt clean shutdown.
@Suite("compliance: every built-in stage")
struct ComplianceTests {
    /// `role/type` of every built-in kind (a type name is unique within its role: `input/amqp`, `output/amqp`).
    static let typeNames = ((try? StageRegistry(StageHarness.builtin))?.kinds ?? []).map {
        "\($0.role.rawValue)/\($0.declaration.type)"
    }

    /// The kinds whose example needs nothing from outside: the ones the unit tests build and run (the server
    /// tests run the rest against the broker and the database `make test` starts).
    static let unitTypeNames = ((try? StageRegistry(StageHarness.builtin))?.kinds ?? []).filter {
        $0.declaration.example.needs.isEmpty
    }.map { "\($0.role.rawValue)/\($0.declaration.type)" }

    private static let standardCounters = ["events_in", "events_out", "events_dropped", "events_discarded"]

    private func kind(_ id: String) throws -> StageRegistry.Kind {
        let parts = id.split(separator: "/").map(String.init)
        let role = try #require(StageRole(rawValue: parts[0]))
        return try #require(try StageRegistry(StageHarness.builtin).kind(parts[1], role: role))
    }

    @Test func builtinStages_registerTogetherWithoutConflict() throws {
        let registry = try StageRegistry(StageHarness.builtin)
        #expect(registry.kinds.count == StageHarness.builtin.count)
        #expect(ComplianceTests.typeNames.count == StageHarness.builtin.count)
        #expect(Set(ComplianceTests.typeNames).count == ComplianceTests.typeNames.count)
        #expect(!registry.typeNames(for: .input).isEmpty)
        #expect(!registry.typeNames(for: .filter).isEmpty)
        #expect(!registry.typeNames(for: .output).isEmpty)
    }

    @Test(arguments: typeNames)
    func stage_registersAloneInItsRole(_ type: String) throws {
        let stageType = try kind(type).stageType
        let kind = try StageHarness.kind(of: stageType)
        switch kind.role {
        case .input: #expect(stageType is any InputStage.Type)
        case .filter: #expect(stageType is any FilterStage.Type)
        case .output: #expect(stageType is any OutputStage.Type)
        }
        #expect(
            kind.options.map(\.name) == kind.declaration.options.map(\.name)
                + StageRegistry.runtimeOptions(for: kind.role).map(\.name))
    }

    @Test(arguments: typeNames)
    func stage_namesEverythingInSnakeCase(_ type: String) throws {
        let kind = try kind(type)
        let declaration = kind.declaration
        #expect(Naming.isSnakeCase(declaration.type))
        for option in kind.options {
            #expect(Naming.isSnakeCase(option.name), "option '\(option.name)'")
            if case .oneOf(let values) = option.type {
                // Level names are upper case by convention (they are matched case-insensitively).
                let names = values.filter { Level(name: $0) == nil }
                for value in names { #expect(Naming.isSnakeCase(value), "option '\(option.name)' value '\(value)'") }
            }
        }
        for port in declaration.ports { #expect(Naming.isSnakeCase(port.name), "port '\(port.name)'") }
        for counter in declaration.counters {
            #expect(Naming.isSnakeCase(counter.name), "counter '\(counter.name)'")
            #expect(
                !ComplianceTests.standardCounters.contains(counter.name),
                "counter '\(counter.name)' repeats a standard counter")
            if let label = counter.label {
                #expect(Naming.isSnakeCase(label), "counter '\(counter.name)' label '\(label)'")
                #expect(!counter.labelValues.isEmpty, "counter '\(counter.name)' has a label but no values")
                for value in counter.labelValues {
                    #expect(Naming.isSnakeCase(value), "counter '\(counter.name)' label value '\(value)'")
                }
            } else {
                #expect(counter.labelValues.isEmpty, "counter '\(counter.name)' has values but no label")
            }
        }
        #expect(Set(declaration.counters.map(\.name)).count == declaration.counters.count)
    }

    @Test(arguments: typeNames)
    func stage_describesItselfEveryOptionPortAndCounter(_ type: String) throws {
        let kind = try kind(type)
        #expect(!kind.declaration.summary.trimmingCharacters(in: .whitespaces).isEmpty)
        for option in kind.options {
            #expect(!option.description.trimmingCharacters(in: .whitespaces).isEmpty, "option '\(option.name)'")
        }
        for port in kind.declaration.ports {
            #expect(!port.description.trimmingCharacters(in: .whitespaces).isEmpty, "port '\(port.name)'")
        }
        for counter in kind.declaration.counters {
            #expect(!counter.description.trimmingCharacters(in: .whitespaces).isEmpty, "counter '\(counter.name)'")
        }
    }

    @Test(arguments: typeNames)
    func stage_defaultsPassTheirOwnOptionTypes(_ type: String) throws {
        let kind = try kind(type)
        for option in kind.options {
            guard case .defaultValue(let value) = option.requirement else { continue }
            #expect(
                ComplianceTests.problem(with: value, as: option.type) == nil,
                "option '\(option.name)' default \(value)")
        }
    }

    @Test(arguments: unitTypeNames)
    func stage_defaultsWrittenOutInAConfigReadBackUnchanged(_ type: String) throws {
        let directory = try TemporaryDirectory()
        let subject = try kind(type)
        var explicit: [(String, String)] = []
        for option in subject.options {
            guard case .defaultValue(let value) = option.requirement else { continue }
            explicit.append((option.name, ComplianceTests.yaml(value)))
        }
        let yaml = try ComplianceTests.config(around: subject, in: directory, extraOptions: explicit)
        let plan = try #require(try ComplianceTests.plan(yaml, directory: directory))
        let options = try #require(plan.stage("subject")).options
        for option in subject.options {
            guard case .defaultValue(let value) = option.requirement else { continue }
            #expect(options.values[option.name] == value, "option '\(option.name)'")
        }
    }

    @Test(arguments: typeNames)
    func stage_sizesAndDurationsFormatAndParseBackExactly(_ type: String) throws {
        let kind = try kind(type)
        for option in kind.options {
            var sizes: [Int] = []
            var durations: [Duration] = []
            switch option.type {
            case .size(let range): sizes = [range.lowerBound, range.upperBound]
            case .duration(let range): durations = [range.lowerBound, range.upperBound]
            default: break
            }
            switch option.requirement {
            case .defaultValue(.size(let bytes)): sizes.append(bytes)
            case .defaultValue(.duration(let duration)): durations.append(duration)
            default: break
            }
            for bytes in sizes {
                let text = Units.formatSize(bytes)
                #expect(Units.parseSize(text) == .success(bytes), "option '\(option.name)': \(bytes) as '\(text)'")
            }
            for duration in durations {
                let text = Units.formatDuration(duration)
                #expect(
                    Units.parseDuration(text) == .success(duration), "option '\(option.name)': \(duration) as '\(text)'"
                )
            }
        }
    }

    @Test(arguments: unitTypeNames)
    func stage_buildsStartsAndStopsCleanlyWithNoTraffic(_ type: String) throws {
        let directory = try TemporaryDirectory()
        let yaml = try ComplianceTests.config(around: try kind(type), in: directory)
        let plan = try #require(try ComplianceTests.plan(yaml, directory: directory))
        let router = try Router(plan: plan, logger: StageHarness.logger)
        try router.start()
        let stopped = Latch()
        let stopper = WorkerThread(name: "test-stop") {
            router.stop()
            stopped.open()
        }
        try stopper.start()
        guard stopped.wait(timeout: .seconds(10)) else {
            Issue.record("stop() did not return")
            return
        }
        stopper.join()
        #expect(router.observer.isStopped)
        #expect(router.queuedEvents == 0)
        for status in router.observer.stages {
            #expect(status.health.current == .ok, "\(status.path)")
            #expect(status.counters.total("events_dropped") == 0, "\(status.path)")
        }
    }

    @Test(arguments: unitTypeNames)
    func stage_fromItsExample_passesEntriesCountsThemAndSettlesEachBatchOnce(_ type: String) throws {
        let directory = try TemporaryDirectory()
        let registry = try StageRegistry(StageHarness.builtin + Compliance.harnessKinds)
        let problems = Compliance.run(
            try kind(type), registry: registry,
            environment: try Compliance.environment(directory: directory.path, extra: [:]))
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
    }

    /// A config with one stage per role: `subject` in its role, built from its declared example, built-in
    /// companions (`udp`, `validate_json`, `file`) in the others, and `extraOptions` on the subject.
    static func config(
        around subject: StageRegistry.Kind, in directory: TemporaryDirectory, extraOptions: [(String, String)] = []
    ) throws -> String {
        let registry = try StageRegistry(StageHarness.builtin)
        var stages: [StageRole: (name: String, kind: StageRegistry.Kind)] = [:]
        for (role, type) in [(StageRole.input, "udp"), (.filter, "validate_json"), (.output, "file")] {
            stages[role] = ("companion_\(role.rawValue)", try #require(registry.kind(type)))
        }
        stages[subject.role] = ("subject", subject)
        var yaml = ""
        var upstream: String?
        for role in StageRole.allCases {
            guard let (name, kind) = stages[role] else { continue }
            yaml += "\(role.section):\n  \(name):\n    type: \(kind.declaration.type)\n"
            if let upstream { yaml += "    inputs: [\(upstream)]\n" }
            var lines = kind.declaration.example.options.split(separator: "\n").map(String.init)
            if name == "subject" {
                let given = Set(extraOptions.map(\.0))
                lines.removeAll { line in given.contains(String(line.prefix { $0 != ":" })) }
                lines += extraOptions.map { "\($0.0): \($0.1)" }
            }
            // A companion's example names the directory its files go to; the subject's names a port of its own.
            for line in lines {
                yaml +=
                    "    "
                    + line.replacingOccurrences(of: "${EXAMPLE_DIR}", with: directory.path + "/" + name)
                    .replacingOccurrences(of: "${EXAMPLE_PORT}", with: name == "subject" ? "${EXAMPLE_PORT}" : "0")
                    + "\n"
            }
            upstream = name
            // A filter without a default port (a route) is read through every port its example names.
            if name == "subject" && kind.role == .filter && !kind.declaration.hasDefaultPort {
                let options = RouterConfig.exampleOptions(
                    of: kind, environment: ["EXAMPLE_DIR": "/tmp", "EXAMPLE_PORT": "0"])
                upstream = kind.declaration.portNames(for: options ?? StageOptions()).dropFirst()
                    .map { "subject.\($0)" }.joined(separator: ", ")
            }
        }
        return yaml
    }

    /// The plan for `yaml`, or nil with the errors recorded as the test's failure.
    static func plan(_ yaml: String, directory: TemporaryDirectory) throws -> RouterPlan? {
        let registry = try StageRegistry(StageHarness.builtin)
        let environment = try Compliance.environment(directory: directory.path, extra: [:])
        do {
            return try RouterConfig.parse(
                ConfigSource(path: "compliance.yaml", text: yaml), environment: environment, registry: registry)
        } catch {
            Issue.record("the test config is refused:\n\(error.description)\n\(yaml)")
            return nil
        }
    }

    /// `value` as YAML text: strings quoted, everything else as it is written in configs.
    static func yaml(_ value: OptionValue) -> String {
        switch value {
        case .string(let text): JSONText.quoted(text)
        case .list(let items): "[" + items.map(yaml).joined(separator: ", ") + "]"
        case .mapping(let entries):
            "{"
                + entries.sorted { $0.key < $1.key }.map { JSONText.quoted($0.key) + ": " + yaml($0.value) }
                .joined(separator: ", ") + "}"
        default: value.description
        }
    }

    /// Why `value` is not a valid `type`, or nil when it is.
    static func problem(with value: OptionValue, as type: OptionType) -> String? {
        switch (type, value) {
        case (.string, .string), (.bool, .bool):
            return nil
        case (.integer(let range), .integer(let number)):
            return range.contains(number) ? nil : "\(number) is outside \(range)"
        case (.size(let range), .size(let bytes)):
            return range.contains(bytes) ? nil : "\(bytes) bytes is outside \(range)"
        case (.duration(let range), .duration(let duration)):
            return range.contains(duration) ? nil : "\(duration) is outside \(range)"
        case (.oneOf(let allowed), .string(let word)):
            return allowed.contains(word) ? nil : "'\(word)' is not one of \(allowed)"
        case (.list(let element), .list(let items)):
            return items.lazy.compactMap { problem(with: $0, as: element) }.first
        case (.mapping(let element), .mapping(let entries)):
            return entries.values.lazy.compactMap { problem(with: $0, as: element) }.first
        default:
            return "\(value) does not have the type \(type.displayName)"
        }
    }
}
