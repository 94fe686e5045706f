import Foundation
import Router
import RouterSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("systemd notify")
struct SystemdNotifierTests {
    /// A unix datagram socket bound at a fresh path, as systemd's NOTIFY_SOCKET is.
    private final class NotifySocket {
        let path: String
        let descriptor: Int32

        init() throws {
            path = NSTemporaryDirectory() + "routerd-notify-\(UUID().uuidString.prefix(8)).sock"
            descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (index, byte) in path.utf8.enumerated() { raw[index] = byte }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            try #require(bound == 0, "bind \(path): \(String(cString: strerror(errno)))")
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit {
            close(descriptor)
            unlink(path)
        }

        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            return String(decoding: buffer[..<count], as: UTF8.self)
        }
    }

    @Test func notifier_sendsReadyReloadingWithMonotonicTimeAndStopping() throws {
        let socket = try NotifySocket()
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": socket.path])

        #expect(notifier.ready(status: "running generation 1"))
        #expect(socket.receive() == "READY=1\nSTATUS=running generation 1")

        let before = monotonicNanos() / 1000
        #expect(notifier.reloading())
        let reloading = try #require(socket.receive())
        let after = monotonicNanos() / 1000
        let lines = reloading.split(separator: "\n").map(String.init)
        #expect(lines.first == "RELOADING=1")
        let stamp = try #require(lines.first { $0.hasPrefix("MONOTONIC_USEC=") }?.dropFirst("MONOTONIC_USEC=".count))
        let micros = try #require(Int64(stamp))
        #expect(micros >= before && micros <= after)

        #expect(notifier.stopping())
        #expect(socket.receive() == "STOPPING=1\nSTATUS=draining")
    }

    @Test func notifier_withoutNotifySocket_sendsNothing() {
        let notifier = SystemdNotifier(environment: [:])
        #expect(notifier.socketPath == nil)
        #expect(!notifier.ready())
    }
}
