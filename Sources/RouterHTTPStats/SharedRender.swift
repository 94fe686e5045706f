import Synchronization

/// Renders a body at most once at a time however many requests ask for it, and gives every request a body made
/// after it arrived: requests that come while a render runs wait for the next one, which serves them all.
///
/// Why: `/stats` and `/metrics` cost a render each; 200 clients asking at once queued 200 renders on the few
/// threads of the concurrency pool, and `/health` waited behind all of them (3 s at p99). Now a burst costs one
/// render in flight, and the waiting requests hold no thread.
final class SharedRender: Sendable {
    private struct State {
        var running = false
        var waiting: [CheckedContinuation<String, Never>] = []
    }

    private let state = Mutex(State())
    private let render: @Sendable () -> String

    init(_ render: @escaping @Sendable () -> String) {
        self.render = render
    }

    /// A body rendered after this call began.
    func body() async -> String {
        await withCheckedContinuation { continuation in
            let start = state.withLock { state -> Bool in
                state.waiting.append(continuation)
                guard !state.running else { return false }
                state.running = true
                return true
            }
            if start { Task { self.drain() } }
        }
    }

    private func drain() {
        while true {
            let batch = state.withLock { state -> [CheckedContinuation<String, Never>] in
                let batch = state.waiting
                state.waiting = []
                if batch.isEmpty { state.running = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            let text = render()
            for continuation in batch { continuation.resume(returning: text) }
        }
    }
}
