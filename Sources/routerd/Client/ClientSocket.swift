import CRouterShims

#if canImport(Glibc)
    import Glibc
#endif

/// A UDP socket connected to one routerd: sends datagrams in sendmmsg(2) batches and receives the acks that
/// routerd sends back to the same address.
///
/// The socket is connected, so the kernel keeps the route instead of looking it up for every datagram, only the
/// server's replies are delivered to it, and an ICMP "port unreachable" (nothing listening) comes back as
/// ECONNREFUSED on the next send, which is counted as `refused` and the datagram sent again.
///
/// Not thread-safe: each sender thread owns its socket.
final class ClientSocket {
    let descriptor: Int32
    /// `host:port` as resolved (`[v6]:port` for IPv6).
    let peer: String
    /// ECONNREFUSED answers seen on sends and reads: "port unreachable" came back, nothing listens at `peer`.
    private(set) var portUnreachable = 0

    /// Resolves `host` (IPv4 addresses first, as the seed's AF_INET client), opens a socket and connects it.
    init(host: String, port: Int, sendBufferBytes: Int, receiveBufferBytes: Int) throws {
        guard (1...65535).contains(port) else { throw ClientError("port \(port) is not in 1...65535") }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &found)
        guard status == 0, let first = found else {
            throw ClientError("cannot resolve '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        var chosen = first
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            if info.pointee.ai_family == AF_INET {
                chosen = info
                break
            }
            cursor = info.pointee.ai_next
        }
        let family = chosen.pointee.ai_family
        let descriptor = socket(family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw ClientError("cannot open a UDP socket: \(ClientSocket.errorText())") }
        ClientSocket.setBuffer(descriptor, SO_SNDBUF, bytes: sendBufferBytes)
        ClientSocket.setBuffer(descriptor, SO_RCVBUF, bytes: receiveBufferBytes)
        guard connect(descriptor, chosen.pointee.ai_addr, chosen.pointee.ai_addrlen) == 0 else {
            let message = ClientSocket.errorText()
            close(descriptor)
            throw ClientError("cannot connect a UDP socket to \(host):\(port): \(message)")
        }
        self.descriptor = descriptor
        self.peer = ClientSocket.numericName(chosen.pointee.ai_addr, chosen.pointee.ai_addrlen, port: port)
    }

    deinit {
        close(descriptor)
    }

    /// Sends every datagram, in as few sendmmsg calls as the kernel allows.
    ///
    /// A datagram refused with ECONNREFUSED (the previous one drew a "port unreachable") is sent again, up to
    /// three times; EINTR is retried; any other error skips that one datagram and counts it as failed.
    func send(_ datagrams: UnsafeBufferPointer<routerd_out_dgram>) -> SendOutcome {
        var outcome = SendOutcome()
        guard let base = datagrams.baseAddress else { return outcome }
        var index = 0
        var refusalsInARow = 0
        while index < datagrams.count {
            let result = routerd_send_batch(descriptor, base + index, UInt32(datagrams.count - index), 0)
            if result > 0 {
                index += Int(result)
                outcome.sent += Int(result)
                refusalsInARow = 0
                continue
            }
            let code = errno
            if result < 0 && code == EINTR { continue }
            if result < 0 && code == ECONNREFUSED {
                outcome.refused += 1
                portUnreachable += 1
                refusalsInARow += 1
                if refusalsInARow <= 3 { continue }
            }
            outcome.failed += 1
            outcome.lastError = ClientSocket.errorText(code)
            index += 1
            refusalsInARow = 0
        }
        return outcome
    }

    /// Sends byte arrays as datagrams (the low-volume path of `routerd send`).
    func send(_ payloads: [[UInt8]]) -> SendOutcome {
        var outcome = SendOutcome()
        var start = 0
        while start < payloads.count {
            let end = min(payloads.count, start + 64)
            let part = Array(payloads[start..<end])
            let joined = part.flatMap { $0 }
            joined.withUnsafeBytes { bytes in
                var offset = 0
                var datagrams: [routerd_out_dgram] = []
                for payload in part {
                    datagrams.append(
                        routerd_out_dgram(
                            buffer: bytes.baseAddress.map { $0 + offset }, length: payload.count, address: nil))
                    offset += payload.count
                }
                datagrams.withUnsafeBufferPointer { outcome.add(send($0)) }
            }
            start = end
        }
        return outcome
    }

    /// Waits until a datagram can be read or `nanoseconds` pass; true when one can be read.
    ///
    /// select(2) is used for its microsecond timeout (poll's is in milliseconds, too coarse for pacing batches a
    /// few hundred microseconds apart, and Glibc's Swift overlay does not export ppoll).
    func waitReadable(nanoseconds: Int64) -> Bool {
        let wait = max(0, nanoseconds)
        guard descriptor < 1024 else {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            return poll(&poller, 1, Int32(clamping: (wait + 999_999) / 1_000_000)) > 0
        }
        var readable = fd_set()
        withUnsafeMutableBytes(of: &readable) { raw in
            let words = raw.bindMemory(to: UInt.self)
            let bitsPerWord = UInt.bitWidth
            words[Int(descriptor) / bitsPerWord] |= 1 << UInt(Int(descriptor) % bitsPerWord)
        }
        var timeout = timeval(tv_sec: Int(wait / 1_000_000_000), tv_usec: Int((wait % 1_000_000_000) / 1_000))
        return select(descriptor + 1, &readable, nil, nil, &timeout) > 0
    }

    /// Reads the datagrams waiting (never blocks) into `slots`; returns how many.
    func receiveWaiting(_ slots: ReplySlots) -> Int {
        while true {
            let received = routerd_recv_batch(descriptor, slots.slots, UInt32(slots.count), Int32(MSG_DONTWAIT))
            if received >= 0 { return Int(received) }
            // ECONNREFUSED here is the pending "port unreachable": nothing to read, and the next read is clean.
            if errno == ECONNREFUSED { portUnreachable += 1 }
            if errno == EINTR || errno == ECONNREFUSED { continue }
            return 0
        }
    }

    private static func setBuffer(_ descriptor: Int32, _ option: Int32, bytes: Int) {
        var value = Int32(clamping: bytes)
        setsockopt(descriptor, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<Int32>.size))
    }

    private static func numericName(_ address: UnsafeMutablePointer<sockaddr>?, _ length: socklen_t, port: Int)
        -> String
    {
        var text = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard let address, getnameinfo(address, length, &text, socklen_t(text.count), nil, 0, NI_NUMERICHOST) == 0
        else { return "?:\(port)" }
        let host = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    static func errorText(_ code: Int32 = errno) -> String {
        String(cString: strerror(code))
    }
}

/// What one send call did.
struct SendOutcome {
    /// Datagrams the kernel took.
    var sent = 0
    /// Datagrams given up on (an error other than ECONNREFUSED or EINTR, or refused too often).
    var failed = 0
    /// ECONNREFUSED answers: a previous datagram drew "port unreachable" (nothing listening).
    var refused = 0
    /// The text of the last error that made a datagram fail.
    var lastError: String?

    mutating func add(_ other: SendOutcome) {
        sent += other.sent
        failed += other.failed
        refused += other.refused
        lastError = other.lastError ?? lastError
    }
}

/// Preallocated receive slots for acks: `count` datagrams of up to `capacity` bytes each.
final class ReplySlots {
    let slots: UnsafeMutablePointer<routerd_dgram>
    let count: Int
    private let arena: UnsafeMutableRawPointer

    init(count: Int = 32, capacity: Int = 2048) {
        self.count = count
        arena = UnsafeMutableRawPointer.allocate(byteCount: count * capacity, alignment: 16)
        slots = UnsafeMutablePointer<routerd_dgram>.allocate(capacity: count)
        for index in 0..<count {
            (slots + index).initialize(
                to: routerd_dgram(
                    buffer: arena + index * capacity, capacity: capacity, address: sockaddr_storage(), length: 0,
                    truncated: 0, arrival_ns: 0))
        }
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
        arena.deallocate()
    }

    /// The bytes of slot `index` after a receive.
    func bytes(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: slots[index].buffer, count: slots[index].length)
    }
}

/// A client-side failure with a message for the user.
struct ClientError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
