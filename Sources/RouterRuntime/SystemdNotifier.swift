import RouterSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Tells systemd (a `Type=notify` unit) what the process is doing, by writing the sd_notify(3) protocol's
/// datagrams to the unix socket in `$NOTIFY_SOCKET`: `READY=1` once the router runs, `RELOADING=1` with
/// `MONOTONIC_USEC` when a reload starts and `READY=1` again when it ends, `STOPPING=1` when the shutdown starts.
///
/// Without `$NOTIFY_SOCKET` (not started by systemd) every call does nothing. A socket path starting with `@` is
/// in the abstract namespace. A datagram that cannot be sent is not retried: systemd then times the unit out
/// (`TimeoutStartSec`), which says more than a log line would.
public struct SystemdNotifier: Sendable {
    /// The socket from `$NOTIFY_SOCKET`, or nil.
    public let socketPath: String?

    /// Reads `NOTIFY_SOCKET` from `environment`.
    public init(environment: [String: String]) {
        let path = environment["NOTIFY_SOCKET"] ?? ""
        socketPath = path.isEmpty ? nil : path
    }

    /// `READY=1`, with a `STATUS=` line when given.
    @discardableResult
    public func ready(status: String? = nil) -> Bool {
        notify(["READY=1"] + (status.map { ["STATUS=\($0)"] } ?? []))
    }

    /// `RELOADING=1` and `MONOTONIC_USEC=` (the monotonic clock now, in microseconds, as systemd requires with it).
    @discardableResult
    public func reloading() -> Bool {
        notify(["RELOADING=1", "MONOTONIC_USEC=\(monotonicNanos() / 1000)", "STATUS=reloading the config"])
    }

    /// `STOPPING=1`.
    @discardableResult
    public func stopping() -> Bool {
        notify(["STOPPING=1", "STATUS=draining"])
    }

    /// Sends the lines as one datagram; returns whether it was sent (false without `$NOTIFY_SOCKET`).
    @discardableResult
    public func notify(_ lines: [String]) -> Bool {
        guard let socketPath else { return false }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(socketPath.utf8)
        if pathBytes.first == UInt8(ascii: "@") { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in pathBytes.enumerated() { raw[index] = byte }
        }
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \sockaddr_un.sun_path) ?? 2
        // An abstract name is exactly its bytes; a path is a C string.
        let length = pathOffset + pathBytes.count + (pathBytes.first == 0 ? 0 : 1)
        let descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let message = Array(lines.joined(separator: "\n").utf8)
        let sent = message.withUnsafeBytes { bytes in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), $0, socklen_t(length))
                }
            }
        }
        return sent == message.count
    }
}
