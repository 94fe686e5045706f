import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Reads a pipe to its end on a thread of its own with read(2), retrying EINTR.
///
/// Foundation's `FileHandle` reads trap on EINTR (a `try!` inside), which the SIGCHLD of the many child processes
/// these tests start can cause; this reader never traps.
final class PipeReader: Sendable {
    private let state = Mutex<(data: [UInt8], finished: Bool)>(([], false))
    private let lines = LineSink()

    /// Starts reading the read end of `pipe`.
    init(_ pipe: Pipe) {
        let descriptor = pipe.fileHandleForReading.fileDescriptor
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count > 0 else { break }
                let chunk = Array(buffer[0..<count])
                state.withLock { $0.data.append(contentsOf: chunk) }
                lines.append(String(decoding: chunk, as: UTF8.self))
            }
            state.withLock { $0.finished = true }
        }
        thread.start()
    }

    /// The complete lines read so far.
    var completeLines: [String] { lines.completeLines }

    /// Everything read so far.
    var text: String { state.withLock { String(decoding: $0.data, as: UTF8.self) } }

    /// Waits (up to `timeout` seconds) until the pipe's writers have all closed it, and returns everything read.
    func readToEnd(timeout: Double = 60) -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while !state.withLock({ $0.finished }) && Date() < deadline { usleep(5_000) }
        return text
    }
}
