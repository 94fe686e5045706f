import CRouterShims
public import Logging
import RouterCore
import RouterSupport
internal import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `--watch-config`: calls back when the config file changes, once the changes have stopped for a moment.
///
/// It watches the file's directory with inotify, not the file: an editor that saves by writing a new file and
/// renaming it over the old one (and `ln -sf`, `mv`, configuration managers) replaces the file's inode, which a
/// watch on the file itself would lose. Events for other names in the directory are ignored. The callback comes
/// `debounce` after the last change, so a save in several writes is one reload.
public final class ConfigWatcher: Sendable {
    private let descriptor: Int32
    private let stopping = StopFlag()
    private let thread: WorkerThread

    /// Starts watching `path`; throws when the directory cannot be watched.
    public init(
        path: String, logger: Logger, debounce: Duration = .milliseconds(300),
        onChange: @escaping @Sendable () -> Void
    ) throws {
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        let file = slash.map { String(path[path.index(after: $0)...]) } ?? path
        let descriptor = routerd_watch_directory(directory)
        guard descriptor >= 0 else {
            throw StageError("cannot watch '\(directory)': \(FileDescriptorWriter.describe(errno))")
        }
        self.descriptor = descriptor
        let debounceMillis =
            Int64(debounce.components.seconds * 1000)
            + Int64(debounce.components.attoseconds / 1_000_000_000_000_000)
        let stopping = self.stopping
        thread = WorkerThread(name: "config-watch") {
            var changedAt: Int64?
            while !stopping.value.load(ordering: .relaxed) {
                let result = routerd_watch_wait(descriptor, file, 100)
                let now = monotonicNanos() / 1_000_000
                if result > 0 { changedAt = now }
                if let last = changedAt, now - last >= debounceMillis {
                    changedAt = nil
                    logger.info("config file changed", metadata: ["path": "\(path)"])
                    onChange()
                }
            }
        }
        do {
            try thread.start()
        } catch {
            close(descriptor)
            throw error
        }
        logger.info("watching the config file", metadata: ["path": "\(path)", "directory": "\(directory)"])
    }

    /// Stops watching and waits for the watcher's thread.
    public func stop() {
        guard !stopping.value.exchange(true, ordering: .relaxed) else { return }
        thread.join()
        close(descriptor)
    }
}

/// Set once, when the watcher stops.
private final class StopFlag: Sendable {
    let value = Atomic<Bool>(false)
}
