import Foundation
import Logging
import Router
import RouterSupport
import Synchronization
import Testing

// MARK: - Test-only stage kinds

/// An input that emits the batches its test sends it (``TestHub/send(_:to:)``), from its own thread, and on a stop
/// request first emits everything already sent, as every input must.
private final class FeedInput: InputStage {
    static let declaration = StageDeclaration(
        type: "feed",
        summary: "Emits the batches a test sends it.",
        options: [CaptureOutput.hub],
        canReply: { _ in true }
    )

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
        hub.mark("stop requested: \(name)")
        hub.wake()
    }
}

/// A filter that sends entries containing `reject` to its `rejected` port and the rest to the default port.
private final class RouteFilter: FilterStage {
    static let declaration = StageDeclaration(
        type: "route",
        summary: "Sends entries containing 'reject' to `rejected`.",
        ports: [PortDeclaration("rejected", "Entries containing 'reject'.")]
    )

    init(context: StageContext) throws {}

    func process(_ batch: Batch, into output: inout FilterOutput) {
        output.emit(
            partitioned: batch.partition(portCount: 2) { event in
                batch.text(of: event).contains("reject") ? 1 : 0
            })
    }
}

/// An output with a `rejected` port, like `postgres`: it hands entries containing `reject` to that port (keeping
/// the batch's trackers), then settles each batch as written. `gated: true` takes nothing until released.
private final class RefusingOutput: OutputStage, OutputWriter {
    static let declaration = StageDeclaration(
        type: "refusing",
        summary: "Hands entries containing 'reject' to its `rejected` port.",
        options: [CaptureOutput.hub, gated],
        ports: [PortDeclaration("rejected", "Entries containing 'reject'.")]
    )

    static let gated = StageOption<Bool>.bool("gated", default: false, "Take nothing until released.")

    private let hub: TestHub
    private let name: String
    private let gated: Bool
    private let context: StageContext

    init(context: StageContext) throws {
        hub = try TestHub.find(context)
        name = context.name
        gated = try context.options.value(Self.gated)
        self.context = context
    }

    func open() throws {
        if gated { hub.waitForRelease(of: name) }
    }

    func write(_ group: WriteGroup) throws -> WriteOutcome {
        guard let rejectedPort = context.ports.port(named: "rejected") else {
            throw StageError(.stopped, "no rejected port")
        }
        var refusals: [Refusal] = []
        for (index, batch) in group.batches.enumerated() {
            for (offset, event) in batch.events.enumerated() where batch.text(of: event).contains("reject") {
                refusals.append(Refusal(batch: index, event: offset, reason: Reason("refused"), detail: "refused"))
            }
        }
        hub.changed()
        return refusals.isEmpty ? .written : .refused(refusals, port: rejectedPort)
    }
}

// MARK: - Helpers

private let quietLogger = Logger(label: "routerd.tests", factory: { _ in SwiftLogNoOpLogHandler() })

/// A router built from `yaml` (stages find the hub through `hub: "${HUB}"`), started.
private func startRouter(_ yaml: String, hub: TestHub) throws -> Router {
    let registry = try StageRegistry([FeedInput.self, RouteFilter.self, CaptureOutput.self, RefusingOutput.self])
    let plan = try RouterConfig.parse(
        ConfigSource(path: "router.yaml", text: yaml), environment: ["HUB": hub.id], registry: registry)
    let router = try Router(plan: plan, logger: quietLogger)
    try router.start()
    return router
}

/// Stops the router on a thread of its own and waits for it; false when it did not stop within `timeout`.
@discardableResult
private func stop(_ router: Router, hub: TestHub, timeout: Duration = .seconds(20)) -> Bool {
    let stopper = WorkerThread(name: "test-stop") {
        router.stop()
        hub.changed()
    }
    do {
        try stopper.start()
    } catch {
        router.stop()
    }
    guard hub.waitUntil(timeout, { router.observer.isStopped }) else { return false }
    stopper.join()
    return true
}

/// Releases every gate and stops the router, so that a test that failed half-way does not hang the run.
private func shutdown(_ router: Router, hub: TestHub) {
    hub.releaseAll()
    #expect(stop(router, hub: hub), "the router did not stop")
}

private func counters(_ name: String, in router: Router) throws -> StageCounters {
    try #require(router.observer.stages.first { $0.name == name }).counters
}

/// Pushes one-event probe batches into `queue` until it refuses one, which it does once it is closed; returns how
/// many it accepted, or nil when it still accepts after `timeout`. Polls: a closing queue sends no event.
private func pushProbesUntilRefused(_ queue: OutputQueue, timeout: Duration = .seconds(10)) -> Int? {
    let deadline = monotonicNanos() + timeout.nanoseconds
    var accepted = 0
    while monotonicNanos() < deadline {
        guard queue.push(Batch(lines: ["probe"])) else { return accepted }
        accepted += 1
        Thread.sleep(forTimeInterval: 0.001)
    }
    return nil
}

/// A batch of `lines` whose events are all tracked by `tracker`.
private func trackedBatch(_ lines: [String], by tracker: DeliveryTracker) -> Batch {
    var batch = Batch(lines: lines)
    for index in batch.events.indices { batch.events[index].flags.insert(.tracked) }
    batch.trackers = [tracker]
    return batch
}

/// Records the outcomes a tracker reports and wakes the hub's waiters.
private final class OutcomeRecorder: Sendable {
    private let outcomes = Mutex<[DeliveryOutcome]>([])
    private let hub: TestHub

    init(hub: TestHub) { self.hub = hub }

    func tracker() -> DeliveryTracker {
        DeliveryTracker { [self] outcome in
            outcomes.withLock { $0.append(outcome) }
            hub.changed()
        }
    }

    var reported: [DeliveryOutcome] { outcomes.withLock { $0 } }

    /// The first outcome, waiting for it up to `timeout`.
    func first(timeout: Duration = .seconds(10)) -> DeliveryOutcome? {
        _ = hub.waitUntil(timeout) { !reported.isEmpty }
        return reported.first
    }
}

// MARK: - Runtime

@Suite("runtime")
struct RuntimeTests {
    @Test func queue_whenConsumerWantsMoreThanFits_getsWhatIsQueuedOnceAProducerBlocks() throws {
        let counters = StageCounters(
            stage: "out", type: "test", declaration: StageDeclaration(type: "test", summary: "test"))
        let queue = OutputQueue(capacity: 10, whenFull: .block, counters: counters)
        #expect(queue.push(Batch(lines: (0..<6).map(String.init))))
        let producer = Thread {
            // Does not fit next to the first six: blocks until the consumer takes them.
            queue.push(Batch(lines: (6..<12).map(String.init)))
        }
        producer.start()
        // Wants more than the queue can ever hold at once; without the hand-over this would wait for the timeout.
        let started = ContinuousClock.now
        guard case .batches(let first) = queue.take(minEvents: 100, timeout: .seconds(30)) else {
            Issue.record("expected batches")
            return
        }
        #expect(first.reduce(0) { $0 + $1.count } == 6)
        #expect(ContinuousClock.now - started < .seconds(10))
        guard case .batches(let second) = queue.take(minEvents: 1, timeout: .seconds(10)) else {
            Issue.record("expected the blocked batch")
            return
        }
        #expect(second.reduce(0) { $0 + $1.count } == 6)
    }

    @Test func runtime_withFanOut_deliversEveryBatchToEveryConsumer() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            outputs:
              first: {type: capture, hub: "${HUB}", inputs: [feed]}
              second: {type: capture, hub: "${HUB}", inputs: [feed]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        hub.send(Batch(lines: ["a", "b"]), to: "feed")
        hub.send(Batch(lines: ["c"]), to: "feed")
        let first = try #require(hub.capture("first"))
        let second = try #require(hub.capture("second"))
        #expect(first.waitForEvents(3))
        #expect(second.waitForEvents(3))
        #expect(first.lines == ["a", "b", "c"])
        #expect(second.lines == ["a", "b", "c"])
    }

    @Test func runtime_withFanIn_deliversEveryInputsBatchesToTheOneOutput() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              east: {type: feed, hub: "${HUB}"}
              west: {type: feed, hub: "${HUB}"}
            outputs:
              all: {type: capture, hub: "${HUB}", inputs: [east, west]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        hub.send(Batch(lines: ["east-1", "east-2"]), to: "east")
        hub.send(Batch(lines: ["west-1"]), to: "west")
        hub.send(Batch(lines: ["east-3"]), to: "east")
        let all = try #require(hub.capture("all"))
        #expect(all.waitForEvents(4))
        #expect(Set(all.lines) == ["east-1", "east-2", "east-3", "west-1"])
        #expect(all.lines.filter { $0.hasPrefix("east") } == ["east-1", "east-2", "east-3"])
    }

    @Test func runtime_routesEachPortToItsConsumers() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            filters:
              split: {type: route, inputs: [feed]}
            outputs:
              kept: {type: capture, hub: "${HUB}", inputs: [split]}
              refused: {type: capture, hub: "${HUB}", inputs: [split.rejected]}
              both: {type: capture, hub: "${HUB}", inputs: [split, split.rejected]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        hub.send(Batch(lines: ["ok-1", "reject-2", "ok-3", "reject-4", "ok-5"]), to: "feed")
        let kept = try #require(hub.capture("kept"))
        let refused = try #require(hub.capture("refused"))
        let both = try #require(hub.capture("both"))
        #expect(kept.waitForEvents(3))
        #expect(refused.waitForEvents(2))
        #expect(both.waitForEvents(5))
        #expect(kept.lines == ["ok-1", "ok-3", "ok-5"])
        #expect(refused.lines == ["reject-2", "reject-4"])
        #expect(Set(both.lines) == ["ok-1", "reject-2", "ok-3", "reject-4", "ok-5"])
    }

    @Test func runtime_countsEventsInOutAndDiscarded() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            filters:
              split: {type: route, inputs: [feed]}
            outputs:
              kept: {type: capture, hub: "${HUB}", inputs: [split]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        hub.send(Batch(lines: ["ok-1", "reject-2", "ok-3"]), to: "feed")
        hub.send(Batch(lines: ["reject-4", "ok-5"]), to: "feed")
        #expect(hub.waitUntilEmitted(5, from: "feed"))
        let feed = try counters("feed", in: router)
        #expect(feed.value("events_in") == 5)
        #expect(feed.value("events_out", label: "port", value: "default") == 5)
        let split = try counters("split", in: router)
        #expect(split.value("events_in") == 5)
        #expect(split.value("events_out", label: "port", value: "default") == 3)
        #expect(split.value("events_out", label: "port", value: "rejected") == 2)
        #expect(split.value("events_discarded") == 2)
        let kept = try counters("kept", in: router)
        #expect(kept.value("events_in") == 3)
        #expect(kept.total("events_dropped") == 0)
        #expect(try #require(hub.capture("kept")).waitForEvents(3))
    }

    @Test func runtime_whenFullUnderDropNewest_dropsTheNewBatchesAndCountsThem() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            outputs:
              slow:
                type: capture
                hub: "${HUB}"
                inputs: [feed]
                gated: true
                queue_max_events: 2
                when_full: drop_newest
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        let recorder = OutcomeRecorder(hub: hub)
        hub.send(Batch(lines: ["kept-1", "kept-2"]), to: "feed")
        hub.send(trackedBatch(["dropped-3"], by: recorder.tracker()), to: "feed")
        hub.send(Batch(lines: ["dropped-4", "dropped-5"]), to: "feed")
        #expect(hub.waitUntilEmitted(5, from: "feed"))
        let slow = try counters("slow", in: router)
        #expect(slow.value("events_dropped", label: "reason", value: "queue_full") == 3)
        #expect(slow.value("events_in") == 5)
        #expect(recorder.first() == .failed("dropped: output queue full"))
        hub.release("slow")
        #expect(stop(router, hub: hub))
        #expect(try #require(hub.capture("slow")).lines == ["kept-1", "kept-2"])
    }

    @Test func runtime_whenFullUnderBlock_waitsAndDropsNothing() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            outputs:
              slow:
                type: capture
                hub: "${HUB}"
                inputs: [feed]
                gated: true
                queue_max_events: 2
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        hub.send(Batch(lines: ["1", "2"]), to: "feed")
        hub.send(Batch(lines: ["3", "4"]), to: "feed")
        hub.send(Batch(lines: ["5"]), to: "feed")
        // The first batch fills the queue; the input then waits inside the second push until the output takes.
        #expect(hub.waitUntilEmitted(2, from: "feed"))
        let queue = try #require(router.observer.stages.first { $0.name == "slow" }?.queue)
        #expect(queue.depth == 2)
        hub.release("slow")
        let slow = try #require(hub.capture("slow"))
        #expect(slow.waitForEvents(5))
        #expect(slow.lines == ["1", "2", "3", "4", "5"])
        #expect(try counters("slow", in: router).total("events_dropped") == 0)
    }

    @Test func runtime_stop_drainsEveryQueueBeforeReturning() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            filters:
              split: {type: route, inputs: [feed]}
            outputs:
              kept: {type: capture, hub: "${HUB}", inputs: [split], gated: true}
              refused: {type: capture, hub: "${HUB}", inputs: [split.rejected], gated: true}
              everything: {type: capture, hub: "${HUB}", inputs: [feed]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        var expectedKept: [String] = []
        var expectedRefused: [String] = []
        for batchIndex in 0..<50 {
            var lines: [String] = []
            for eventIndex in 0..<4 {
                let line = eventIndex == 3 ? "reject-\(batchIndex)" : "ok-\(batchIndex)-\(eventIndex)"
                lines.append(line)
                if eventIndex == 3 { expectedRefused.append(line) } else { expectedKept.append(line) }
            }
            hub.send(Batch(lines: lines), to: "feed")
        }
        #expect(hub.waitUntilEmitted(200, from: "feed"))
        #expect(router.queuedEvents >= 200)
        let stopper = WorkerThread(name: "test-stop") {
            router.stop()
            hub.changed()
        }
        try stopper.start()
        // stop() closes the queues in graph order, `everything` last: once it refuses a probe, the gated outputs'
        // queues are closed too, with everything still in them.
        let probe = try #require(router.observer.stages.first { $0.name == "everything" }?.queue)
        let acceptedProbes = try #require(pushProbesUntilRefused(probe), "the queues were never closed")
        #expect(router.queuedEvents >= 200)
        hub.release("kept")
        hub.release("refused")
        #expect(hub.waitUntil(.seconds(20)) { router.observer.isStopped })
        stopper.join()
        #expect(try #require(hub.capture("kept")).lines == expectedKept)
        #expect(try #require(hub.capture("refused")).lines == expectedRefused)
        #expect(try #require(hub.capture("everything")).eventCount == 200 + acceptedProbes)
        #expect(router.queuedEvents == 0)
        for name in ["kept", "refused"] {
            #expect(try counters(name, in: router).total("events_dropped") == 0)
        }
        let everything = try counters("everything", in: router)
        #expect(everything.total("events_dropped") == 1)
        #expect(everything.value("events_dropped", label: "reason", value: "output_failed") == 1)
    }

    @Test func runtime_outputPort_runsRefusedEntriesThroughFiltersToOutputsAndCountsThem() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            filters:
              again: {type: route, inputs: [store.rejected]}
            outputs:
              store: {type: refusing, hub: "${HUB}", inputs: [feed]}
              dead: {type: capture, hub: "${HUB}", inputs: [store.rejected]}
              after_filter: {type: capture, hub: "${HUB}", inputs: [again.rejected]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        hub.send(Batch(lines: ["ok-1", "reject-1", "ok-2"]), to: "feed")
        hub.send(Batch(lines: ["reject-2"]), to: "feed")
        hub.send(Batch(lines: ["ok-3"]), to: "feed")
        let dead = try #require(hub.capture("dead"))
        #expect(dead.waitForEvents(2))
        #expect(try #require(hub.capture("after_filter")).waitForEvents(2))
        #expect(stop(router, hub: hub))
        #expect(dead.lines == ["reject-1", "reject-2"])
        let store = try counters("store", in: router)
        #expect(store.value("events_in") == 5)
        #expect(store.value("events_out", label: "port", value: "default") == 3)
        #expect(store.value("events_out", label: "port", value: "rejected") == 2)
        #expect(store.value("events_discarded") == 0)
        #expect(try counters("again", in: router).value("events_in") == 2)
    }

    @Test func runtime_outputPortThatNothingReads_countsItsEventsAsDiscarded() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            outputs:
              store: {type: refusing, hub: "${HUB}", inputs: [feed]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        hub.send(Batch(lines: ["ok-1", "reject-1", "reject-2"]), to: "feed")
        #expect(hub.waitUntilEmitted(3, from: "feed"))
        #expect(stop(router, hub: hub))
        let store = try counters("store", in: router)
        #expect(store.value("events_out", label: "port", value: "rejected") == 2)
        #expect(store.value("events_discarded") == 2)
    }

    @Test func runtime_stop_drainsAnOutputBeforeClosingTheOutputsItFeedsThroughAPort() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            outputs:
              store: {type: refusing, hub: "${HUB}", inputs: [feed], gated: true}
              dead: {type: capture, hub: "${HUB}", inputs: [store.rejected]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        for index in 0..<100 { hub.send(Batch(lines: ["ok-\(index)", "reject-\(index)"]), to: "feed") }
        #expect(hub.waitUntilEmitted(200, from: "feed"))
        let stopper = WorkerThread(name: "test-stop") {
            router.stop()
            hub.changed()
        }
        try stopper.start()
        // The store's queue closes first, with everything still in it; the dead-letter queue stays open meanwhile.
        let storeQueue = try #require(router.observer.stages.first { $0.name == "store" }?.queue)
        _ = try #require(pushProbesUntilRefused(storeQueue), "the store's queue was never closed")
        let deadQueue = try #require(router.observer.stages.first { $0.name == "dead" }?.queue)
        #expect(deadQueue.push(Batch(lines: ["probe"])), "the dead-letter queue closed before the store drained")
        hub.release("store")
        #expect(hub.waitUntil(.seconds(20)) { router.observer.isStopped })
        stopper.join()
        let dead = try #require(hub.capture("dead"))
        #expect(dead.lines == ["probe"] + (0..<100).map { "reject-\($0)" })
        #expect(try counters("dead", in: router).total("events_dropped") == 0)
    }

    @Test func runtime_stop_emitsWhatTheInputHadAlreadyReceived() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            outputs:
              all: {type: capture, hub: "${HUB}", inputs: [feed]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        for index in 0..<100 { hub.send(Batch(lines: ["\(index)"]), to: "feed") }
        #expect(stop(router, hub: hub))
        #expect(try #require(hub.capture("all")).lines == (0..<100).map(String.init))
    }
}

// MARK: - Delivery tracking

@Suite("runtime: delivery tracking")
struct DeliveryTrackingTests {
    @Test func tracker_reportsWrittenOnlyOnceEveryOutputHasSettled() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            outputs:
              fast: {type: capture, hub: "${HUB}", inputs: [feed]}
              slow: {type: capture, hub: "${HUB}", inputs: [feed], gated: true}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        let recorder = OutcomeRecorder(hub: hub)
        hub.send(trackedBatch(["e-1", "e-2"], by: recorder.tracker()), to: "feed")
        #expect(try #require(hub.capture("fast")).waitForEvents(2))
        #expect(hub.waitUntilEmitted(2, from: "feed"))
        #expect(recorder.reported.isEmpty)
        hub.release("slow")
        #expect(recorder.first() == .written(outputs: 2))
        #expect(try #require(hub.capture("slow")).waitForEvents(2))
        #expect(recorder.reported.count == 1)
    }

    @Test func tracker_whenAnOutputHandsEventsOnThroughItsPort_waitsForTheOutputsDownstream() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            outputs:
              store: {type: refusing, hub: "${HUB}", inputs: [feed]}
              dead: {type: capture, hub: "${HUB}", inputs: [store.rejected], gated: true}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        let recorder = OutcomeRecorder(hub: hub)
        hub.send(trackedBatch(["ok-1", "reject-1"], by: recorder.tracker()), to: "feed")
        #expect(hub.waitUntil(.seconds(10)) { router.observer.stages.first { $0.name == "dead" }?.queue?.depth == 1 })
        #expect(recorder.reported.isEmpty)
        hub.release("dead")
        #expect(recorder.first() == .written(outputs: 2))
        #expect(try #require(hub.capture("dead")).lines == ["reject-1"])
    }

    @Test func tracker_reportsFailedWhenOneOutputFails() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            outputs:
              good: {type: capture, hub: "${HUB}", inputs: [feed]}
              bad: {type: capture, hub: "${HUB}", inputs: [feed], fail: true}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        let recorder = OutcomeRecorder(hub: hub)
        hub.send(trackedBatch(["e-1"], by: recorder.tracker()), to: "feed")
        #expect(recorder.first() == .failed(CaptureOutput.failureReason))
        #expect(try #require(hub.capture("good")).waitForEvents(1))
        #expect(try #require(hub.capture("bad")).waitForEvents(1))
        #expect(recorder.reported.count == 1)
    }

    @Test func tracker_reportsNotRoutedWhenNoOutputTookTheEvents() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            filters:
              split: {type: route, inputs: [feed]}
            outputs:
              kept: {type: capture, hub: "${HUB}", inputs: [split]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        let recorder = OutcomeRecorder(hub: hub)
        hub.send(trackedBatch(["reject-1", "reject-2"], by: recorder.tracker()), to: "feed")
        #expect(recorder.first() == .notRouted)
        #expect(try counters("split", in: router).value("events_discarded") == 2)
        #expect(try #require(hub.capture("kept")).eventCount == 0)
    }

    @Test func tracker_whenSomeEventsGoToAPortNothingReads_namesThemDroppedAndReportsTheRestWritten() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            filters:
              split: {type: route, inputs: [feed]}
            outputs:
              kept: {type: capture, hub: "${HUB}", inputs: [split]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        let sender = SenderAddress.ipv4(127, 0, 0, 1, port: 40_000)
        let reported = Mutex<(DeliveryOutcome, [String?])?>(nil)
        let tracker = DeliveryTracker { outcome, dropped in
            reported.withLock { $0 = (outcome, (1...2).map { dropped.reason(sender: sender, sequence: Int64($0)) }) }
            hub.changed()
        }
        var batch = Batch(lines: ["ok-1", "reject-2"])
        for index in batch.events.indices {
            batch.events[index].flags.insert(.tracked)
            batch.events[index].sequence = Int64(index + 1)
            batch.events[index].sender = sender
        }
        batch.trackers = [tracker]
        hub.send(batch, to: "feed")
        _ = hub.waitUntil(.seconds(10)) { reported.withLock { $0 } != nil }
        let (outcome, reasons) = try #require(reported.withLock { $0 })
        #expect(outcome == .written(outputs: 1))
        #expect(reasons == [nil, DeliveryTracker.notRoutedReason])
    }

    @Test func tracker_countsOnlyOutputsThatReceivedItsEvents() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            filters:
              split: {type: route, inputs: [feed]}
            outputs:
              kept: {type: capture, hub: "${HUB}", inputs: [split]}
              refused: {type: capture, hub: "${HUB}", inputs: [split.rejected]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        let recorder = OutcomeRecorder(hub: hub)
        var batch = Batch(lines: ["ok-1", "reject-2"])
        batch.events[0].flags.insert(.tracked)
        batch.trackers = [recorder.tracker()]
        hub.send(batch, to: "feed")
        #expect(recorder.first() == .written(outputs: 1))
        #expect(try #require(hub.capture("refused")).waitForEvents(1))
        #expect(try #require(hub.capture("refused")).batches.allSatisfy { $0.trackers.isEmpty })
    }

    @Test func tracker_withoutDeliveries_reportsNotRoutedWhenItsCreationHoldIsReleased() {
        let outcomes = Mutex<[DeliveryOutcome]>([])
        let tracker = DeliveryTracker { outcome in outcomes.withLock { $0.append(outcome) } }
        #expect(outcomes.withLock { $0 }.isEmpty)
        tracker.releaseCreationHold()
        #expect(outcomes.withLock { $0 } == [.notRouted])
    }

    @Test func tracker_waitsForEveryDeliveryAndTheCreationHold() {
        let outcomes = Mutex<[DeliveryOutcome]>([])
        let tracker = DeliveryTracker { outcome in outcomes.withLock { $0.append(outcome) } }
        tracker.beginDelivery()
        tracker.beginDelivery()
        tracker.settle(.written)
        tracker.releaseCreationHold()
        #expect(outcomes.withLock { $0 }.isEmpty)
        tracker.settle(.written)
        #expect(outcomes.withLock { $0 } == [.written(outputs: 2)])
    }

    @Test func tracker_whenSeveralOutputsFail_reportsTheFirstReasonOnce() {
        let outcomes = Mutex<[DeliveryOutcome]>([])
        let tracker = DeliveryTracker { outcome in outcomes.withLock { $0.append(outcome) } }
        for _ in 0..<3 { tracker.beginDelivery() }
        tracker.settle(.failed("disk full"))
        tracker.settle(.written)
        tracker.settle(.failed("broker away"))
        tracker.releaseCreationHold()
        #expect(outcomes.withLock { $0 } == [.failed("disk full")])
    }
}

// MARK: - Failing outputs

@Suite("runtime: failing outputs")
struct FailingOutputTests {
    @Test func runtime_whenAnOutputsRunThrows_failsItsQueueCountsDropsAndStillStops() throws {
        let hub = TestHub()
        let router = try startRouter(
            """
            inputs:
              feed: {type: feed, hub: "${HUB}"}
            outputs:
              broken: {type: capture, hub: "${HUB}", inputs: [feed], throw_on_start: true}
              healthy: {type: capture, hub: "${HUB}", inputs: [feed]}
            """, hub: hub)
        defer { shutdown(router, hub: hub) }
        let recorder = OutcomeRecorder(hub: hub)
        hub.send(trackedBatch(["t-1"], by: recorder.tracker()), to: "feed")
        for index in 0..<20 { hub.send(Batch(lines: ["e-\(index)", "f-\(index)"]), to: "feed") }
        #expect(hub.waitUntilEmitted(41, from: "feed"))
        let outcome = recorder.first()
        guard case .failed = outcome else {
            Issue.record("expected a failed outcome, got \(String(describing: outcome))")
            return
        }
        #expect(stop(router, hub: hub))
        let broken = try counters("broken", in: router)
        #expect(broken.value("events_dropped", label: "reason", value: "output_failed") == 41)
        #expect(broken.value("events_in") == 41)
        let health = try #require(router.observer.stages.first { $0.name == "broken" }).health.current
        #expect(health == .degraded("stopped: capture told to throw"))
        #expect(router.observer.degradedReasons == ["outputs.broken: stopped: capture told to throw"])
        #expect(try #require(hub.capture("healthy")).eventCount == 41)
    }
}
