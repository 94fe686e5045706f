import Dispatch
import NIOCore
import Router
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

    /// Runs `work` and waits until it finishes or the monotonic deadline (nanoseconds) passes.
    static func run<Value: Sendable>(
        on executor: EventLoopTaskExecutor, until deadlineNanos: Int64,
        _ work: @escaping @Sendable () async throws -> Value
    ) throws -> Value {
        let box = ResultBox<Value>()
        Task(executorPreference: executor) {
            do {
                box.finish(.success(try await work()))
            } catch {
                box.finish(.failure(error))
            }
        }
        let remaining = max(0, deadlineNanos - monotonicNanos())
        guard box.semaphore.wait(timeout: .now() + .nanoseconds(Int(clamping: remaining))) == .success else {
            throw TimedOut()
        }
        guard let outcome = box.result.withLock({ $0 }) else { throw TimedOut() }
        return try outcome.get()
    }
}

private final class ResultBox<Value: Sendable>: Sendable {
    let result = Mutex<Result<Value, any Error>?>(nil)
    let semaphore = DispatchSemaphore(value: 0)

    func finish(_ outcome: Result<Value, any Error>) {
        result.withLock { $0 = outcome }
        semaphore.signal()
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
