public import Logging
public import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs a ``Router`` as a swift-service-lifecycle service: starts it, waits for graceful shutdown (SIGTERM or
/// SIGINT through the ``ServiceGroup``), then stops it; a second signal during the drain exits at once.
public struct RouterService: Service {
    private let router: Router
    private let logger: Logger
    private let shutdownTimeout: Duration

    /// Wraps a built router.
    public init(router: Router, logger: Logger, shutdownTimeout: Duration = .seconds(30)) {
        self.router = router
        self.logger = logger
        self.shutdownTimeout = shutdownTimeout
    }

    /// Starts the router and runs until graceful shutdown; then drains.
    public func run() async throws {
        // Trap before anything starts, so that the first signal is counted even if it comes at once.
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        try router.start()
        logger.info("started", metadata: ["stages": "\(router.observer.stages.count)"])
        let signalWatcher = Task { [router, logger] in
            var seen = 0
            for await signal in signals {
                seen += 1
                if seen == 1 {
                    logger.info("signal received; draining", metadata: ["signal": "\(signal)"])
                } else {
                    logger.warning(
                        "second signal; exiting at once",
                        metadata: ["signal": "\(signal)", "events_not_written": "\(router.unwrittenEvents)"])
                    _exit(1)
                }
            }
        }
        defer { signalWatcher.cancel() }
        try? await gracefulShutdown()
        let started = monotonicNanos()
        let finished = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let stopper = WorkerThread(name: "shutdown") { [router] in
                router.stop()
                continuation.resume(returning: true)
            }
            do {
                try stopper.start()
            } catch {
                router.stop()
                continuation.resume(returning: true)
            }
            let timeout = shutdownTimeout
            let watchdog = WorkerThread(name: "shutdown-timer") { [router, logger] in
                var waited: Int64 = 0
                while waited < timeout.nanoseconds {
                    usleep(50_000)
                    waited = monotonicNanos() - started
                    if router.observer.isStopped { return }
                }
                logger.error(
                    "shutdown timed out; exiting with events still queued",
                    metadata: ["events_not_written": "\(router.unwrittenEvents)"])
                _exit(1)
            }
            try? watchdog.start()
        }
        if finished {
            logger.info("stopped", metadata: ["drain_ms": "\((monotonicNanos() - started) / 1_000_000)"])
        }
    }
}
