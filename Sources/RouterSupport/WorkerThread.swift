import CRouterShims

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A named OS thread that runs one closure and can be joined.
///
/// Inputs and outputs block in system calls (recvmmsg, write, fsync); they run on threads of their own so that
/// they never hold up Swift concurrency's small cooperative pool (two threads on two cores).
package final class WorkerThread: @unchecked Sendable {
    // Safe to share: `thread` is written once by start() before any join(), from the same owner.
    private var thread: pthread_t?
    private let name: String
    private let body: @Sendable () -> Void

    /// Makes a thread that will run `body` once started.
    package init(name: String, _ body: @escaping @Sendable () -> Void) {
        self.name = name
        self.body = body
    }

    /// Starts the thread; throws when the system cannot make one.
    package func start() throws {
        let box = Unmanaged.passRetained(ThreadBox(name: name, body: body))
        var handle = pthread_t()
        let result = pthread_create(
            &handle, nil,
            { argument in
                guard let argument else { return nil }
                let box = Unmanaged<ThreadBox>.fromOpaque(argument).takeRetainedValue()
                routerd_set_thread_name(String(box.name.prefix(15)))
                box.body()
                return nil
            }, box.toOpaque())
        guard result == 0 else {
            box.release()
            throw ThreadStartError(description: "cannot start thread '\(name)': \(String(cString: strerror(result)))")
        }
        thread = handle
    }

    /// Waits for the thread to finish (returns at once when it was never started).
    package func join() {
        guard let thread else { return }
        pthread_join(thread, nil)
        self.thread = nil
    }
}

private final class ThreadBox {
    package let name: String
    package let body: @Sendable () -> Void

    package init(name: String, body: @escaping @Sendable () -> Void) {
        self.name = name
        self.body = body
    }
}

/// The system could not make a thread (its limit on threads or memory).
package struct ThreadStartError: Error, CustomStringConvertible {
    /// What failed and why.
    package var description: String
}
