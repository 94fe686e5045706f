import CRouterShims
import Logging
import RouterCore
import RouterSupport

#if canImport(Glibc)
    import Glibc
#endif

/// A bound UDP socket: receives in batches (recvmmsg) and sends replies from the same address.
final class UDPSocket: ReplyChannel, @unchecked Sendable {
    // Safe to share: `descriptor` is set once in init and closed once in deinit; the kernel serializes the
    // system calls made on it from the receive thread and from reply senders.
    let descriptor: Int32
    let boundAddress: SenderAddress
    private let replyFailures: Counter
    private let repliesSent: Counter

    /// Opens and binds a socket. `reusePort` lets several sockets share the port (workers).
    init(
        host: String, port: Int, reusePort: Bool, receiveBufferBytes: Int, sendBufferBytes: Int,
        counters: StageCounters, logger: Logger
    ) throws {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host.isEmpty ? nil : host, String(port), &hints, &found)
        guard status == 0, let info = found else {
            throw StageError("cannot resolve address '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        let descriptor = socket(info.pointee.ai_family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else {
            throw StageError("cannot open a UDP socket: \(FileDescriptorWriter.describe(errno))")
        }
        var one: Int32 = 1
        if reusePort {
            setsockopt(descriptor, SOL_SOCKET, routerd_so_reuseport(), &one, socklen_t(MemoryLayout<Int32>.size))
        }
        // Wake up every 100 ms so that a stop request is noticed even when no datagram arrives.
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        UDPSocket.setBuffer(descriptor, SO_SNDBUF, force: nil, bytes: sendBufferBytes)
        UDPSocket.setBuffer(descriptor, SO_RCVBUF, force: routerd_so_rcvbufforce(), bytes: receiveBufferBytes)
        // The kernel's receive time of each datagram is its arrival time: what `verify` judges expiry by, however
        // long it then waited in this socket's buffer. Without it (never seen on Linux), the read time is used.
        _ = routerd_enable_receive_timestamps(descriptor)
        guard bind(descriptor, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let message = FileDescriptorWriter.describe(errno)
            close(descriptor)
            throw StageError("cannot bind UDP \(host):\(port): \(message)")
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &storage) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(descriptor, $0, &length) }
        }
        self.descriptor = descriptor
        self.boundAddress = SenderAddress(storage)
        replyFailures = counters.counter("replies_failed")
        repliesSent = counters.counter("replies_sent")
    }

    deinit {
        close(descriptor)
    }

    /// The receive buffer the kernel granted, in the same units as the request (Linux reports double).
    var effectiveReceiveBufferBytes: Int {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &value, &length)
        return Int(value) / 2
    }

    /// The send buffer the kernel granted.
    var effectiveSendBufferBytes: Int {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &value, &length)
        return Int(value) / 2
    }

    /// Datagrams the kernel dropped for this socket since it was opened, or nil when the kernel does not say.
    var kernelDrops: Int? {
        let drops = routerd_socket_drops(descriptor)
        return drops < 0 ? nil : Int(drops)
    }

    /// Applies new buffer sizes to the bound socket (a reload that changed them, keeping the socket).
    func setBuffers(receiveBufferBytes: Int, sendBufferBytes: Int) {
        UDPSocket.setBuffer(descriptor, SO_SNDBUF, force: nil, bytes: sendBufferBytes)
        UDPSocket.setBuffer(descriptor, SO_RCVBUF, force: routerd_so_rcvbufforce(), bytes: receiveBufferBytes)
    }

    private static func setBuffer(_ descriptor: Int32, _ option: Int32, force: Int32?, bytes: Int) {
        var value = Int32(clamping: bytes)
        let size = socklen_t(MemoryLayout<Int32>.size)
        // SO_RCVBUFFORCE goes past net.core.rmem_max when we are root; otherwise it fails and SO_RCVBUF applies.
        if let force, setsockopt(descriptor, SOL_SOCKET, force, &value, size) == 0 { return }
        setsockopt(descriptor, SOL_SOCKET, option, &value, size)
    }

    /// Sends every reply with one sendmmsg call (more when the kernel takes only part); never blocks.
    func sendReplies(_ replies: [(payload: [UInt8], to: SenderAddress)]) {
        guard !replies.isEmpty else { return }
        let addresses = replies.map { sockaddr_storage($0.to) }
        var joined: [UInt8] = []
        var offsets: [Int] = []
        for reply in replies {
            offsets.append(joined.count)
            joined.append(contentsOf: reply.payload)
        }
        var sent = 0
        joined.withUnsafeBytes { payloads in
            addresses.withUnsafeBufferPointer { addressBuffer in
                var datagrams: [routerd_out_dgram] = []
                datagrams.reserveCapacity(replies.count)
                for index in replies.indices {
                    datagrams.append(
                        routerd_out_dgram(
                            buffer: payloads.baseAddress.map { $0 + offsets[index] },
                            length: replies[index].payload.count,
                            address: addressBuffer.baseAddress.map { $0 + index }))
                }
                datagrams.withUnsafeBufferPointer { buffer in
                    guard let base = buffer.baseAddress else { return }
                    while sent < buffer.count {
                        let result = routerd_send_batch(
                            descriptor, base + sent, UInt32(buffer.count - sent), Int32(MSG_DONTWAIT))
                        if result <= 0 {
                            // Skip the datagram the kernel refused (full buffer, unreachable) and go on.
                            if result < 0 && errno == EINTR { continue }
                            break
                        }
                        sent += Int(result)
                    }
                }
            }
        }
        repliesSent.add(sent)
        replyFailures.add(replies.count - sent)
    }
}

extension SenderAddress {
    init(_ storage: sockaddr_storage) {
        var storage = storage
        switch Int32(storage.ss_family) {
        case AF_INET:
            self = withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    SenderAddress(
                        family: 4, port: UInt16(bigEndian: address.pointee.sin_port), high: 0,
                        low: UInt64(UInt32(bigEndian: address.pointee.sin_addr.s_addr)))
                }
            }
        case AF_INET6:
            self = withUnsafePointer(to: &storage) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var bytes = address.pointee.sin6_addr
                    let (high, low) = withUnsafeBytes(of: &bytes) { raw -> (UInt64, UInt64) in
                        var high: UInt64 = 0
                        var low: UInt64 = 0
                        for index in 0..<8 { high = high << 8 | UInt64(raw[index]) }
                        for index in 8..<16 { low = low << 8 | UInt64(raw[index]) }
                        return (high, low)
                    }
                    return SenderAddress(
                        family: 6, port: UInt16(bigEndian: address.pointee.sin6_port), high: high, low: low,
                        scope: address.pointee.sin6_scope_id)
                }
            }
        default:
            self = .none
        }
    }
}

extension sockaddr_storage {
    init(_ address: SenderAddress) {
        self.init()
        switch address.family {
        case 4:
            withUnsafeMutablePointer(to: &self) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { socketAddress in
                    socketAddress.pointee.sin_family = sa_family_t(AF_INET)
                    socketAddress.pointee.sin_port = address.port.bigEndian
                    socketAddress.pointee.sin_addr.s_addr = UInt32(truncatingIfNeeded: address.low).bigEndian
                }
            }
        case 6:
            withUnsafeMutablePointer(to: &self) { pointer in
                pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { socketAddress in
                    socketAddress.pointee.sin6_family = sa_family_t(AF_INET6)
                    socketAddress.pointee.sin6_port = address.port.bigEndian
                    socketAddress.pointee.sin6_scope_id = address.scope
                    withUnsafeMutableBytes(of: &socketAddress.pointee.sin6_addr) { raw in
                        for index in 0..<8 { raw[index] = UInt8(truncatingIfNeeded: address.high >> (56 - 8 * index)) }
                        for index in 0..<8 {
                            raw[8 + index] = UInt8(truncatingIfNeeded: address.low >> (56 - 8 * index))
                        }
                    }
                }
            }
        default:
            break
        }
    }
}
