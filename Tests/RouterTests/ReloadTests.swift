import Foundation
import Logging
import Router
import RouterSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Test-only stage kinds

/// An input that emits what its test sends it, from its own thread; on a stop request it first emits everything
/// already sent, as every input must.
private final class ReloadFeed: InputStage {
    static let declaration = StageDeclaration(
        type: "reload_feed", summary: "Emits the batches a test sends it.", options: [CaptureOutput.hub])

    private let hub: TestHub
    private let name: String
    private let stopping = Atomic<Bool>(false)

    init(context: StageContext) throws {
        hub = try TestHub.find(context)
        name = context.name
    }

    func run(_ emitter: InputEmitter) throws {
        while let batch = hub.nextBatch(for: name, stopping: { stopping.load(ordering: .relaxed) }) {
            emitter.emit(batch)
            hub.didEmit(batch.count, from: name)
        }
    }

    func requestStop() {
        stopping.store(true, ordering: .relaxed)
        hub.wake()
    }
}

/// A filter that passes everything on; `tag` only makes two configs of it differ.
private final class PassFilter: FilterStage {
    static let declaration = StageDeclaration(
        type: "pass", summary: "Passes every entry.",
        options: [OptionDeclaration("tag", .string, .defaultValue(.string("")), "Only makes configs differ.")])

    init(context: StageContext) throws {}
    func process(_ batch: Batch, into output: inout FilterOutput) { output.emit(batch) }
}

private let quietLogger = Logger(label: "routerd.tests", factory: { _ in SwiftLogNoOpLogHandler() })

private func reloadPlan(_ yaml: String, hub: TestHub) throws -> RouterPlan {
    let registry = try StageRegistry([ReloadFeed.self, PassFilter.self, CaptureOutput.self])
    return try RouterConfig.parse(
        ConfigSource(path: "router.yaml", text: yaml), environment: ["HUB": hub.id], registry: registry)
}

/// feed -> pass -> outputs, with the output stages given as YAML lines under `outputs:`.
private func config(filterTag: String = "", outputs: String) -> String {
    """
    inputs:
      feed: { type: reload_feed, hub: "${HUB}" }
    filters:
      pass: { type: pass, inputs: [feed], tag: "\(filterTag)" }
    outputs:
    \(outputs)
    """
}

/// Runs `body` on a thread of its own (a reload joins threads and may wait for a gated output) and waits.
private func onThread<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) throws -> Value {
    let result = Mutex<Result<Value, any Error>?>(nil)
    let thread = WorkerThread(name: "test-reload") { result.withLock { $0 = Result { try body() } } }
    try thread.start()
    thread.join()
    return try #require(result.withLock { $0 }).get()
}

private func send(_ count: Int, from first: Int, to input: String, hub: TestHub) {
    for offset in 0..<count { hub.send(Batch(lines: ["entry \(first + offset)"]), to: input) }
}

private func counters(_ name: String, in router: Router) throws -> StageCounters {
    try #require(router.observer.stages.first { $0.name == name }).counters
}

@Suite("runtime: reload")
struct ReloadTests {
    @Test func reload_whenNothingChanged_keepsEveryStageItsCountersAndItsQueue() throws {
        let hub = TestHub()
        let yaml = config(outputs: "  out: { type: capture, inputs: [pass], hub: \"${HUB}\" }")
        let router = try Router(plan: try reloadPlan(yaml, hub: hub), logger: quietLogger)
        try router.start()
        defer { router.stop() }
        send(10, from: 0, to: "feed", hub: hub)
        #expect(hub.waitUntilEmitted(10, from: "feed"))
        let before = try counters("out", in: router)
        let capture = try #require(hub.capture("out"))

        let changes = try onThread { try router.reload(try reloadPlan(yaml, hub: hub)) }

        #expect(changes.isEmpty)
        #expect(changes.kept == ["inputs.feed", "filters.pass", "outputs.out"])
        #expect(try counters("out", in: router) === before)
        #expect(hub.capture("out") === capture)
        send(5, from: 10, to: "feed", hub: hub)
        #expect(capture.waitForEvents(15))
        #expect(try counters("out", in: router).value("events_in") == 15)
        #expect(try counters("feed", in: router).value("events_in") == 15)
    }

    @Test func reload_addsAndRemovesOutputs_drainingTheRemovedOneBeforeItReturns() throws {
        let hub = TestHub()
        let before = config(outputs: "  old: { type: capture, inputs: [pass], hub: \"${HUB}\", gated: true }")
        let after = config(outputs: "  new: { type: capture, inputs: [pass], hub: \"${HUB}\" }")
        let router = try Router(plan: try reloadPlan(before, hub: hub), logger: quietLogger)
        try router.start()
        defer {
            hub.releaseAll()
            router.stop()
        }
        send(20, from: 0, to: "feed", hub: hub)
        #expect(hub.waitUntilEmitted(20, from: "feed"))
        let old = try #require(hub.capture("old"))
        #expect(old.eventCount == 0)

        // The removed output still holds all 20 in its queue: the reload waits for it to drain them.
        let release = WorkerThread(name: "test-release") {
            _ = hub.waitUntil(.seconds(10)) { router.observer.stages.contains { $0.name == "new" } }
            hub.release("old")
        }
        try release.start()
        let changes = try onThread { try router.reload(try reloadPlan(after, hub: hub)) }
        release.join()

        #expect(changes.added == ["outputs.new"])
        #expect(changes.removed == ["outputs.old"])
        #expect(changes.kept == ["inputs.feed", "filters.pass"])
        #expect(changes.droppedWhileRetiring == 0)
        #expect(old.eventCount == 20)
        send(7, from: 20, to: "feed", hub: hub)
        let new = try #require(hub.capture("new"))
        #expect(new.waitForEvents(7))
        #expect(new.lines == (20..<27).map { "entry \($0)" })
        #expect(router.observer.stages.map(\.name) == ["feed", "pass", "new"])
    }

    @Test func reload_whileEntriesFlow_changedOutputsAndFiltersLoseNothingAndCountersContinue() throws {
        let hub = TestHub()
        let router = try Router(
            plan: try reloadPlan(
                config(outputs: "  out: { type: capture, inputs: [pass], hub: \"${HUB}\" }"), hub: hub),
            logger: quietLogger)
        try router.start()
        defer { router.stop() }
        let total = 3000
        let sender = WorkerThread(name: "test-sender") {
            for index in 0..<total {
                hub.send(Batch(lines: ["entry \(index)"]), to: "feed")
                if index % 100 == 0 { usleep(1000) }
            }
        }
        try sender.start()
        var captures = [try #require(hub.capture("out"))]
        for round in 1...6 {
            // Alternately a changed filter and a changed output (gated on odd rounds: released at once after).
            let gated = round % 2 == 1
            let yaml = config(
                filterTag: "round \(round / 2)",
                outputs: "  out: { type: capture, inputs: [pass], hub: \"${HUB}\", gated: \(gated) }")
            let changes = try onThread { try router.reload(try reloadPlan(yaml, hub: hub)) }
            #expect(changes.changed.contains("outputs.out"))
            let current = try #require(hub.capture("out"))
            if gated { hub.release("out") }
            if current !== captures.last { captures.append(current) }
        }
        sender.join()
        #expect(hub.waitUntilEmitted(total, from: "feed"))
        router.stop()
        let lines = captures.flatMap(\.lines)
        #expect(lines.count == total)
        #expect(Set(lines) == Set((0..<total).map { "entry \($0)" }))
        #expect(captures.count == 7)
        // The replaced output's counters are the same series throughout.
        #expect(try counters("out", in: router).value("events_in") == total)
        #expect(try counters("out", in: router).value("events_out", label: "port", value: "default") == total)
    }

    @Test func reload_whenANewStageCannotBeBuilt_throwsAndTheRunningGraphGoesOn() throws {
        let hub = TestHub()
        let yaml = config(outputs: "  out: { type: capture, inputs: [pass], hub: \"${HUB}\" }")
        let router = try Router(plan: try reloadPlan(yaml, hub: hub), logger: quietLogger)
        try router.start()
        defer { router.stop() }
        let broken = config(
            filterTag: "changed",
            outputs: """
                  out: { type: capture, inputs: [pass], hub: "${HUB}" }
                  other: { type: capture, inputs: [pass], hub: "no-such-hub" }
                """)
        let plan = try reloadPlan(broken, hub: hub)
        let error = try onThread { () -> ConfigErrors? in
            do throws(ConfigErrors) {
                _ = try router.reload(plan)
                return nil
            } catch {
                return error
            }
        }
        #expect(
            error?.description == """
                router.yaml:7:3: error: outputs.other: cannot start: no test hub 'no-such-hub'
                  other: { type: capture, inputs: [pass], hub: "no-such-hub" }
                  ^
                """)
        #expect(router.observer.stages.map(\.name) == ["feed", "pass", "out"])
        send(3, from: 0, to: "feed", hub: hub)
        #expect(try #require(hub.capture("out")).waitForEvents(3))
    }
}

@Suite("config reloader")
struct ConfigReloaderTests {
    @Test func reloader_aRequestDuringAReload_waitsForItAndRunsAfterIt_neverAlongside() throws {
        let hub = TestHub()
        let directory = NSTemporaryDirectory() + "routerd-reloader-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/router.yaml"
        let first = config(outputs: "  old: { type: capture, inputs: [pass], hub: \"${HUB}\", gated: true }")
        try first.write(toFile: path, atomically: true, encoding: .utf8)
        let registry = try StageRegistry([ReloadFeed.self, PassFilter.self, CaptureOutput.self])
        let plan = try RouterConfig.load(path: path, environment: ["HUB": hub.id], registry: registry)
        let router = try Router(plan: plan, logger: quietLogger)
        try router.start()
        defer {
            hub.releaseAll()
            router.stop()
        }
        let reloader = ConfigReloader(
            router: router, plan: plan, path: path, registry: registry, logger: quietLogger
        ) { ["HUB": hub.id] }
        #expect(router.observer.loadedConfig?.number == 1)
        send(10, from: 0, to: "feed", hub: hub)
        #expect(hub.waitUntilEmitted(10, from: "feed"))

        // The first reload removes the gated output, so it waits until the test releases it.
        try config(outputs: "  new: { type: capture, inputs: [pass], hub: \"${HUB}\" }")
            .write(toFile: path, atomically: true, encoding: .utf8)
        // Each request from a thread of its own (not the concurrency pool, which the other tests keep busy).
        let firstAttempt = Attempt()
        let firstThread = WorkerThread(name: "reload-1") {
            firstAttempt.value.withLock { $0 = reloader.reloadAndWait(trigger: "SIGHUP") }
        }
        try firstThread.start()
        // The new output is built once the first reload runs (bounded poll: building sends the hub nothing to wait on).
        let deadline = monotonicNanos() + 60_000_000_000
        while hub.capture("new") == nil && monotonicNanos() < deadline { usleep(1_000) }
        #expect(hub.capture("new") != nil)
        let secondAttempt = Attempt()
        let secondThread = WorkerThread(name: "reload-2") {
            secondAttempt.value.withLock { $0 = reloader.reloadAndWait(trigger: "http") }
        }
        try secondThread.start()
        usleep(200_000)
        // The second waits behind the first, which cannot finish while the removed output holds its entries.
        #expect(router.observer.lastReload == nil)
        #expect(router.observer.loadedConfig?.number == 1)
        hub.release("old")

        firstThread.join()
        secondThread.join()
        let one = try #require(firstAttempt.value.withLock { $0 })
        let two = try #require(secondAttempt.value.withLock { $0 })
        #expect(one.applied && one.generation == 2 && one.trigger == "SIGHUP")
        #expect(one.stages["removed"] == ["outputs.old"] && one.stages["added"] == ["outputs.new"])
        #expect(two.applied && two.generation == 3 && two.trigger == "http")
        #expect(two.stages["kept"] == ["inputs.feed", "filters.pass", "outputs.new"])
        #expect(try #require(hub.capture("old")).eventCount == 10)
        #expect(router.observer.loadedConfig?.number == 3)
    }
}

/// A reload's outcome, set by the thread that asked for it.
private final class Attempt: Sendable {
    let value = Mutex<ReloadAttempt?>(nil)
}
