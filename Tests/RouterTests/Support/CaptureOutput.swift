import Foundation
import Router
import RouterSupport
import Synchronization

/// Where a test meets the stages the runtime builds for it.
///
/// The runtime builds stages itself, from their kind and options, exactly as for a config file; a test stage finds
/// its test through the `hub` option, which names a hub made by that test. Every wait on a hub is bounded by a
/// timeout and wakes on the event itself (a condition variable), never by sleeping.
final class TestHub: @unchecked Sendable {
    // Safe to share: every mutable field is only touched with `condition` locked.
    private static let hubs = Mutex<[String: Weak]>([:])

    /// The value to give the `hub` option of the test's stages.
    let id = UUID().uuidString

    private let condition = NSCondition()
    private var captures: [String: CaptureOutput] = [:]
    private var inboxes: [String: [Batch]] = [:]
    private var emitted: [String: Int] = [:]
    private var released: Set<String> = []
    private var marks: Set<String> = []

    init() {
        TestHub.hubs.withLock { $0[id] = Weak(self) }
    }

    deinit {
        let id = self.id
        TestHub.hubs.withLock { $0[id] = nil }
    }

    /// The hub named by a stage's `hub` option.
    static func find(_ context: StageContext) throws -> TestHub {
        let id = try context.options.value(CaptureOutput.hub)
        guard let hub = hubs.withLock({ $0[id]?.hub }) else { throw StageError("no test hub '\(id)'") }
        return hub
    }

    // MARK: Inputs

    /// Queues `batch` for the test input named `input`, which emits it from its own thread.
    func send(_ batch: Batch, to input: String) {
        withLock {
            inboxes[input, default: []].append(batch)
            condition.broadcast()
        }
    }

    /// Called by a test input: the next batch for it, or nil once `stopping()` is true and its inbox is empty.
    func nextBatch(for input: String, stopping: () -> Bool) -> Batch? {
        withLock {
            while true {
                if var inbox = inboxes[input], !inbox.isEmpty {
                    let batch = inbox.removeFirst()
                    inboxes[input] = inbox
                    return batch
                }
                if stopping() { return nil }
                condition.wait()
            }
        }
    }

    /// Called by a test input once `InputEmitter.emit` has returned for a batch.
    func didEmit(_ count: Int, from input: String) {
        withLock {
            emitted[input, default: 0] += count
            condition.broadcast()
        }
    }

    /// Wakes test inputs so that they notice a stop request.
    func wake() {
        withLock { condition.broadcast() }
    }

    /// Waits until the input has emitted `count` events (the graph has run on them and their output queues hold
    /// them, or counted them dropped). Returns false on timeout.
    func waitUntilEmitted(_ count: Int, from input: String, timeout: Duration = .seconds(10)) -> Bool {
        waitUntil(timeout) { emitted[input, default: 0] >= count }
    }

    // MARK: Outputs

    /// Called by a capture output when it is built.
    func register(_ capture: CaptureOutput, as name: String) {
        withLock {
            captures[name] = capture
            condition.broadcast()
        }
    }

    /// The capture output built under `name`.
    func capture(_ name: String) -> CaptureOutput? {
        withLock { captures[name] }
    }

    /// Lets the gated capture output `name` start taking batches (it stays open from then on).
    func release(_ name: String) {
        withLock {
            released.insert(name)
            condition.broadcast()
        }
    }

    /// Called by a gated capture output before it takes anything.
    func waitForRelease(of name: String) {
        withLock {
            while !released.contains(name) { condition.wait() }
        }
    }

    /// Lets every gated capture output take batches (so that a failed test can still stop its router).
    func releaseAll() {
        withLock {
            released.formUnion(captures.keys)
            condition.broadcast()
        }
    }

    /// Wakes waiters after something they may be waiting for changed (a capture recorded, a tracker settled).
    func changed() {
        withLock { condition.broadcast() }
    }

    // MARK: Marks

    /// Records that something happened (`stop requested: feed`), for ``waitForMark(_:timeout:)``.
    func mark(_ name: String) {
        withLock {
            marks.insert(name)
            condition.broadcast()
        }
    }

    /// Waits until ``mark(_:)`` was called with `name`; false on timeout.
    func waitForMark(_ name: String, timeout: Duration = .seconds(10)) -> Bool {
        waitUntil(timeout) { marks.contains(name) }
    }

    /// Waits until `predicate` (evaluated with the hub locked) holds; false on timeout.
    func waitUntil(_ timeout: Duration, _ predicate: () -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: Double(timeout.nanoseconds) / 1e9)
        return withLock {
            while !predicate() {
                if !condition.wait(until: deadline) { return predicate() }
            }
            return true
        }
    }

    private func withLock<Result>(_ body: () throws -> Result) rethrows -> Result {
        condition.lock()
        defer { condition.unlock() }
        return try body()
    }

    private struct Weak {
        weak var hub: TestHub?

        init(_ hub: TestHub) { self.hub = hub }
    }
}

/// An output that records every batch it takes, like fluent-bit's `lib` output, for tests.
///
/// Options: `hub` (the test's ``TestHub/id``), `fail` (settle every batch as failed instead of written), `gated`
/// (take nothing until the test calls ``TestHub/release(_:)``) and `throw_on_start` (opening throws at once, and
/// the output stops).
final class CaptureOutput: OutputStage, OutputWriter {
    static let declaration = StageDeclaration(
        type: "capture",
        summary: "Records every batch it takes, for tests.",
        options: [
            hub,
            fail,
            gated,
            throwOnStart,
        ]
    )

    static let hub = StageOption<String>(
        OptionDeclaration("hub", .string, .required, "The test hub's id."))

    static let fail = StageOption<Bool>(
        OptionDeclaration("fail", .bool, .defaultValue(.bool(false)), "Settle every batch as failed."))

    static let gated = StageOption<Bool>(
        OptionDeclaration("gated", .bool, .defaultValue(.bool(false)), "Take nothing until released."))

    static let throwOnStart = StageOption<Bool>(
        OptionDeclaration("throw_on_start", .bool, .defaultValue(.bool(false)), "run() throws at once."))

    /// The reason a `fail: true` capture gives.
    static let failureReason = "capture told to fail"

    private let hub: TestHub
    private let name: String
    private let fails: Bool
    private let gated: Bool
    private let throwsOnStart: Bool
    private let recordedBatches = Mutex<[Batch]>([])

    init(context: StageContext) throws {
        hub = try TestHub.find(context)
        name = context.name
        fails = try context.options.value(CaptureOutput.fail)
        gated = try context.options.value(CaptureOutput.gated)
        throwsOnStart = try context.options.value(CaptureOutput.throwOnStart)
        hub.register(self, as: context.name)
    }

    /// Throws (`throw_on_start`) or waits for the test's release (`gated`) before anything is taken.
    func open() throws {
        if throwsOnStart { throw StageError(.stopped, "capture told to throw") }
        if gated { hub.waitForRelease(of: name) }
    }

    /// Records the group; `fail: true` answers it as dropped.
    func write(_ group: WriteGroup) -> WriteOutcome {
        recordedBatches.withLock { $0 += group.batches }
        hub.changed()
        return fails ? .dropped(reason: "capture_failed", detail: CaptureOutput.failureReason) : .written
    }

    /// Every batch taken so far, in order.
    var batches: [Batch] { recordedBatches.withLock { $0 } }

    /// The text of every event taken so far, in order.
    var lines: [String] {
        batches.flatMap { batch in batch.events.map { batch.text(of: $0) } }
    }

    /// Events taken so far.
    var eventCount: Int { recordedBatches.withLock { $0.reduce(0) { $0 + $1.count } } }

    /// Waits until at least `count` events were taken; false on timeout.
    func waitForEvents(_ count: Int, timeout: Duration = .seconds(10)) -> Bool {
        hub.waitUntil(timeout) { eventCount >= count }
    }
}
