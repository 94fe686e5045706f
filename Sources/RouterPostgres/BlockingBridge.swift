import Dispatch
import NIOCore
import RouterCore
import RouterSupport
import Synchronization

/// Runs async work (postgres-nio's) from the output's own thread and waits for it there.
///
/// The output thread is a plain OS thread of its own, so blocking it on a semaphore is fine. The work runs as a task
/// on the connection's event loop (``EventLoopTaskExecutor``), not on Swift's cooperative pool: that pool has one
/// thread per core, and code that blocks its threads (a library user's, a test's) would otherwise stall every
/// database call until its deadline. The work only awaits, so it never blocks the event loop.
enum BlockingBridge {
    /// The work did not finish before the deadline; it goes on in the background, and the caller must make it end
    /// (close the connection it uses).
    struct TimedOut: Error {}

    /// Runs `work` and waits until it finishes or the monotonic deadline (nanoseconds) passes. A value that
    /// arrives after the caller stopped waiting is handed to `discard` (to close a connection nobody will use).
    static func run<Value: Sendable>(
        on executor: EventLoopTaskExecutor, until deadlineNanos: Int64,
        discard: @escaping @Sendable (Value) -> Void = { _ in },
        _ work: @escaping @Sendable () async throws -> Value
    ) throws -> Value {
        let box = ResultBox<Value>(discard: discard)
        Task(executorPreference: executor) {
            do {
                box.finish(.success(try await work()))
            } catch {
                box.finish(.failure(error))
            }
        }
        let remaining = max(0, deadlineNanos - monotonicNanos())
        _ = box.semaphore.wait(timeout: .now() + .nanoseconds(Int(clamping: remaining)))
        guard let outcome = box.takeOrAbandon() else { throw TimedOut() }
        return try outcome.get()
    }
}

private final class ResultBox<Value: Sendable>: Sendable {
    private let state = Mutex<(result: Result<Value, any Error>?, abandoned: Bool)>((nil, false))
    private let discard: @Sendable (Value) -> Void
    let semaphore = DispatchSemaphore(value: 0)

    init(discard: @escaping @Sendable (Value) -> Void) {
        self.discard = discard
    }

    func finish(_ outcome: Result<Value, any Error>) {
        let abandoned = state.withLock { state -> Bool in
            state.result = outcome
            return state.abandoned
        }
        if abandoned, case .success(let value) = outcome { discard(value) }
        semaphore.signal()
    }

    /// The result if there is one; otherwise marks the box abandoned, so that a late value is discarded.
    func takeOrAbandon() -> Result<Value, any Error>? {
        state.withLock { state in
            if case .none = state.result { state.abandoned = true }
            return state.result
        }
    }
}

/// Runs tasks' jobs on one NIO event loop.
final class EventLoopTaskExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
