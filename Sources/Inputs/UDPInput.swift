import CRouterShims
import Logging
public import RouterCore
import RouterSupport
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `udp`: receives JSON log entries as UDP datagrams, in batches of one recvmmsg(2) call each.
///
/// Each worker owns a socket (SO_REUSEPORT shares the port among them) and a thread that reads up to
/// `read_batch_count` datagrams per system call straight into preallocated buffers, copies them into one batch
/// (dropping a trailing LF or CRLF) and runs the graph on it. No per-datagram allocation, lock or async hop.
///
/// SwiftNIO's datagram channel was measured first on this machine class (../shared/PERFORMANCE.md): it costs about
/// 1.4 µs per datagram in pipeline overhead, more than validation and writing together, so the receive loop uses
/// recvmmsg directly through a three-function C shim.
public final class UDPInput: InputStage, Replacing {
    /// The `udp` declaration.
    public static let declaration = StageDeclaration(
        type: "udp",
        summary: "Receives JSON log entries as UDP datagrams (recvmmsg batches, SO_REUSEPORT workers).",
        options: [
            address,
            port,
            receiveBufferBytes,
            sendBufferBytes,
            maxDatagramBytes,
            readBatchCount,
            batchWait,
            workers,
            oneWay,
        ],
        counters: [
            CounterDeclaration("datagrams", "Datagrams received."),
            CounterDeclaration("bytes", "Bytes received (before a trailing newline is removed)."),
            CounterDeclaration(
                "truncated", "Datagrams larger than max_datagram_bytes (kept as truncated, sent to `invalid`)."),
            CounterDeclaration(
                "kernel_drops", "Datagrams the kernel dropped for these sockets because the receive buffer was full."),
            CounterDeclaration("receive_errors", "recvmmsg calls that failed with an error other than a timeout."),
            CounterDeclaration("replies_sent", "Replies (acks) sent from these sockets."),
            CounterDeclaration("replies_failed", "Replies the kernel refused (full send buffer, unreachable sender)."),
        ],
        canReply: { options in !((try? options.value(UDPInput.oneWay)) ?? false) },
        example: StageExample(
            """
            address: 127.0.0.1
            port: ${EXAMPLE_PORT}
            """,
            send: { entries, environment in
                try UDPExample.send(entries, port: Int(environment["EXAMPLE_PORT"] ?? "") ?? 0)
            })
    )

    static let address = StageOption<String>(
        OptionDeclaration(
            "address", .string, .defaultValue(.string("0.0.0.0")),
            "Address to bind: an IPv4 or IPv6 literal or a host name. `0.0.0.0` listens on every IPv4 interface."))

    static let port = StageOption<Int>(
        OptionDeclaration(
            "port", .integer(0...65535), .defaultValue(.integer(5514)),
            "UDP port to bind; 0 picks a free port, logged in the `listening` line."))

    static let receiveBufferBytes = StageOption<Int>(
        OptionDeclaration(
            "receive_buffer_bytes", .size(4096...(1 << 30)), .defaultValue(.size(4 * 1024 * 1024)),
            "SO_RCVBUF: how much the kernel queues while routerd is busy. Too small and bursts are dropped by the "
                + "kernel (counted as kernel_drops). Above net.core.rmem_max it needs root (SO_RCVBUFFORCE); "
                + "the granted size is logged, with a warning when it is less than asked."))

    static let sendBufferBytes = StageOption<Int>(
        OptionDeclaration(
            "send_buffer_bytes", .size(4096...(1 << 30)), .defaultValue(.size(1024 * 1024)),
            "SO_SNDBUF of the same socket, which sends acks. Too small and acks are dropped under load "
                + "(counted as replies_failed)."))

    static let maxDatagramBytes = StageOption<Int>(
        OptionDeclaration(
            "max_datagram_bytes", .size(64...65536), .defaultValue(.size(65536)),
            "Largest datagram kept whole. A larger one is counted as truncated and marked so that validate_json "
                + "sends it to `invalid` with the reason truncated; it is never passed on as if whole."))

    static let readBatchCount = StageOption<Int>(
        OptionDeclaration(
            "read_batch_count", .integer(1...1024), .defaultValue(.integer(64)),
            "Most datagrams read by one recvmmsg call, which is one batch through the graph. Each slot reserves "
                + "max_datagram_bytes of address space (touched only as datagrams fill it)."))

    static let batchWait = StageOption<Duration>(
        OptionDeclaration(
            "batch_wait", .duration(.zero...(.milliseconds(100))), .defaultValue(.duration(.microseconds(300))),
            "After a read that filled less than half of read_batch_count, wait this long before reading again, so "
                + "that more datagrams gather per system call: fewer wake-ups per entry (make bench: 2.9 -> 2.1 "
                + "CPU-s per million at 200,000/s) for at most this much added latency. 0 reads again at once. "
                + "Keep it well below what the receive buffer holds at peak rate."))

    static let workers = StageOption<Int>(
        OptionDeclaration(
            "workers", .integer(1...64), .defaultValue(.integer(1)),
            "Sockets (and threads) on the same port with SO_REUSEPORT; the kernel spreads senders over them. "
                + "More than the number of cores only adds contention."))

    static let oneWay = StageOption<Bool>(
        OptionDeclaration(
            "one_way", .bool, .defaultValue(.bool(false)),
            "Data-diode mode: this socket never sends anything. The config check refuses an `ack` downstream."))

    private let sockets: [UDPSocket]
    private let maxDatagramBytes: Int
    private let readBatchCount: Int
    private let oneWay: Bool
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    /// Whether the latest replacement built for this input took its sockets over.
    private let socketsTaken = Atomic<Bool>(false)
    /// Set when that replacement runs: stop without draining the shared sockets.
    private let skipDrain = Atomic<Bool>(false)
    /// Wakes the kernel-drop reader when the receive loops are done.
    private let dropsWake = ConditionLock()
    private let dropsDone = Atomic<Bool>(false)
    private let batchWaitMicros: UInt32
    private let requestedReceiveBuffer: Int
    private let workerCount: Int
    private let host: String
    private let requestedPort: Int
    private let datagrams: Counter
    private let bytes: Counter
    private let truncated: Counter
    private let kernelDrops: Counter
    private let receiveErrors: Counter

    /// Binds the sockets and logs `listening` with the bound address.
    public convenience init(context: StageContext) throws {
        try self.init(context: context, takingOver: nil)
    }

    /// The replacement of a running `udp` input whose options changed: when its address, port and workers are
    /// the same, it takes over the running input's sockets (with the new buffer sizes applied to them), so that
    /// nothing the kernel holds for the port is lost and no datagram finds the port closed; otherwise it binds
    /// sockets of its own, before the running input closes its.
    public convenience init(context: StageContext, replacing previous: UDPInput) throws {
        let options = context.options
        let same =
            try options.value(UDPInput.address) == previous.host
            && options.value(UDPInput.port) == previous.requestedPort
            && options.value(UDPInput.workers) == previous.workerCount
        try self.init(context: context, takingOver: same ? previous.sockets : nil)
        previous.socketsTaken.store(same, ordering: .releasing)
    }

    /// The replacement reads the sockets now: stop at once rather than read them dry, which under a steady load
    /// never ends (what is in them, the replacement reads). With sockets of its own, drain as usual.
    public func replacementStarted() {
        skipDrain.store(socketsTaken.load(ordering: .acquiring), ordering: .releasing)
    }

    private init(context: StageContext, takingOver existing: [UDPSocket]?) throws {
        let options = context.options
        let host = try options.value(UDPInput.address)
        let port = try options.value(UDPInput.port)
        let workers = try options.value(UDPInput.workers)
        let receiveBuffer = try options.value(UDPInput.receiveBufferBytes)
        let sendBuffer = try options.value(UDPInput.sendBufferBytes)
        maxDatagramBytes = try options.value(UDPInput.maxDatagramBytes)
        readBatchCount = try options.value(UDPInput.readBatchCount)
        batchWaitMicros = UInt32(clamping: try options.value(UDPInput.batchWait).nanoseconds / 1000)
        oneWay = try options.value(UDPInput.oneWay)
        logger = context.logger
        var sockets: [UDPSocket] = []
        if let existing {
            for socket in existing {
                socket.setBuffers(receiveBufferBytes: receiveBuffer, sendBufferBytes: sendBuffer)
            }
            sockets = existing
        } else {
            var boundPort = port
            for _ in 0..<workers {
                let socket = try UDPSocket(
                    host: host, port: boundPort, reusePort: workers > 1, receiveBufferBytes: receiveBuffer,
                    sendBufferBytes: sendBuffer, counters: context.counters, logger: context.logger)
                boundPort = Int(socket.boundAddress.port)
                sockets.append(socket)
            }
        }
        self.sockets = sockets
        self.host = host
        requestedPort = port
        datagrams = context.counters.counter("datagrams")
        bytes = context.counters.counter("bytes")
        truncated = context.counters.counter("truncated")
        kernelDrops = context.counters.counter("kernel_drops")
        receiveErrors = context.counters.counter("receive_errors")
        guard !sockets.isEmpty else { throw StageError("workers must be at least 1") }
        requestedReceiveBuffer = receiveBuffer
        workerCount = workers
    }

    /// Reads until stopped, one thread per socket, then drains what the kernel still holds.
    public func run(_ emitter: InputEmitter) throws {
        // Announced here, not when the socket is bound: by now the process handles SIGTERM gracefully, so a
        // client that starts sending (and a supervisor that stops it) on seeing this line loses nothing.
        if let first = sockets.first { announce(first) }
        var helpers: [WorkerThread] = []
        for socket in sockets.dropFirst() {
            let thread = WorkerThread(name: "udp-worker") { [self] in self.receiveLoop(socket, emitter) }
            try thread.start()
            helpers.append(thread)
        }
        // Kernel drops are read on a clock of their own, so that they show (in kernel_drops and /health) while a
        // receive loop waits on a full output queue, which is exactly when the kernel drops.
        let dropReader = WorkerThread(name: "udp-drops") { [self] in self.readKernelDrops() }
        try dropReader.start()
        if let first = sockets.first { receiveLoop(first, emitter) }
        for thread in helpers { thread.join() }
        dropsWake.withLock {
            dropsDone.store(true, ordering: .releasing)
            dropsWake.broadcast()
        }
        dropReader.join()
    }

    /// Adds what the kernel dropped for these sockets to `kernel_drops`, every 250 ms until the receive loops are
    /// done, and once more then.
    private func readKernelDrops() {
        var last = sockets.map { $0.kernelDrops ?? 0 }
        while true {
            let finished = dropsDone.load(ordering: .acquiring)
            for (index, socket) in sockets.enumerated() {
                guard let drops = socket.kernelDrops, drops > last[index] else { continue }
                kernelDrops.add(drops - last[index])
                last[index] = drops
            }
            if finished { return }
            dropsWake.withLock {
                if !dropsDone.load(ordering: .acquiring) {
                    _ = dropsWake.wait(0, untilMonotonicNanos: monotonicNanos() + 250_000_000)
                }
            }
        }
    }

    private func announce(_ first: UDPSocket) {
        let granted = first.effectiveReceiveBufferBytes
        logger.info(
            "listening",
            metadata: [
                "address": "\(first.boundAddress)", "workers": "\(workerCount)",
                "receive_buffer_bytes": "\(granted)", "send_buffer_bytes": "\(first.effectiveSendBufferBytes)",
                "one_way": "\(oneWay)",
            ])
        if granted < requestedReceiveBuffer {
            logger.warning(
                "the kernel granted a smaller receive buffer than asked; raise net.core.rmem_max or run as root",
                metadata: ["requested_bytes": "\(requestedReceiveBuffer)", "granted_bytes": "\(granted)"])
        }
    }

    /// Asks every receive loop to finish; each drains its socket first.
    public func requestStop() {
        stopping.store(true, ordering: .relaxed)
    }

    private func receiveLoop(_ socket: UDPSocket, _ emitter: InputEmitter) {
        let slotCount = readBatchCount
        let capacity = maxDatagramBytes
        let arena = UnsafeMutableRawPointer.allocate(byteCount: slotCount * capacity, alignment: 16)
        let slots = UnsafeMutablePointer<routerd_dgram>.allocate(capacity: slotCount)
        defer {
            slots.deallocate()
            arena.deallocate()
        }
        for index in 0..<slotCount {
            (slots + index).initialize(
                to: routerd_dgram(
                    buffer: arena + index * capacity, capacity: capacity, address: sockaddr_storage(), length: 0,
                    truncated: 0, arrival_ns: 0))
        }
        let replyChannel: (any ReplyChannel)? = oneWay ? nil : socket
        var draining = false
        while true {
            let flags = draining ? Int32(MSG_DONTWAIT) : routerd_msg_waitforone()
            let received = Int(routerd_recv_batch(socket.descriptor, slots, UInt32(slotCount), flags))
            if received > 0 {
                emitter.emit(makeBatch(slots, count: received, replyChannel: replyChannel))
                // A half-empty read means the socket ran dry: let more datagrams gather before the next system
                // call, so that each wake-up carries more entries (see batch_wait).
                if received < slotCount / 2 && batchWaitMicros > 0 && !draining { usleep(batchWaitMicros) }
            } else if received < 0 {
                let code = errno
                if code != EAGAIN && code != EWOULDBLOCK && code != EINTR {
                    receiveErrors.add()
                    logger.error("receive failed", metadata: ["error": "\(FileDescriptorWriter.describe(code))"])
                    usleep(10_000)
                }
            }
            if draining {
                if received <= 0 { return }
            } else if stopping.load(ordering: .relaxed) {
                if skipDrain.load(ordering: .acquiring) { return }
                // Stop intake: what the kernel already holds is still read (without waiting) and emitted.
                draining = true
            }
        }
    }

    private func makeBatch(_ slots: UnsafeMutablePointer<routerd_dgram>, count: Int, replyChannel: (any ReplyChannel)?)
        -> Batch
    {
        var total = 0
        var receivedBytes = 0
        var truncatedCount = 0
        var oldest = Int64.max
        for index in 0..<count {
            total += slots[index].length
            let arrival = slots[index].arrival_ns
            if arrival > 0 && arrival < oldest { oldest = arrival }
        }
        // The batch is dated by its oldest datagram's arrival, each entry by its own (as an offset from it).
        let readAt = wallClockNanos()
        let batchTime = oldest == Int64.max ? readAt : oldest
        var batch = Batch(replyChannel: replyChannel, receivedAtNanos: batchTime)
        batch.bytes.reserveCapacity(total)
        batch.events.reserveCapacity(count)
        for index in 0..<count {
            let slot = slots[index]
            receivedBytes += slot.length
            var length = slot.length
            let isTruncated = slot.truncated != 0
            if isTruncated { truncatedCount += 1 }
            // Drop one trailing LF or CRLF, so that senders that end datagrams with a newline never make blank lines.
            if !isTruncated, length > 0, let buffer = slot.buffer {
                let raw = buffer.assumingMemoryBound(to: UInt8.self)
                if raw[length - 1] == 0x0A {
                    length -= 1
                    if length > 0 && raw[length - 1] == 0x0D { length -= 1 }
                }
            }
            let start = Int32(batch.bytes.count)
            if let buffer = slot.buffer, length > 0 {
                batch.bytes.append(
                    contentsOf: UnsafeRawBufferPointer(start: buffer, count: length).assumingMemoryBound(to: UInt8.self)
                )
            }
            var event = Event(
                start: start, count: Int32(length), sender: SenderAddress(slot.address),
                flags: isTruncated ? .truncated : [])
            let arrival = slot.arrival_ns > 0 ? slot.arrival_ns : readAt
            event.arrivalOffsetMicros = Int32(clamping: max(0, arrival - batchTime) / 1000)
            batch.events.append(event)
        }
        datagrams.add(count)
        bytes.add(receivedBytes)
        if truncatedCount > 0 { truncated.add(truncatedCount) }
        return batch
    }
}

/// Sends entries to a `udp` input, one datagram each, as the compliance test does with the declared example.
enum UDPExample {
    static func send(_ entries: [String], port: Int) throws {
        let descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw StageError("socket: \(FileDescriptorWriter.describe(errno))") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(clamping: port).bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        for entry in entries {
            let sent = entry.utf8CString.withUnsafeBytes { bytes in
                withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(
                            descriptor, bytes.baseAddress, bytes.count - 1, 0, $0,
                            socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
            guard sent >= 0 else {
                throw StageError("sendto 127.0.0.1:\(port): \(FileDescriptorWriter.describe(errno))")
            }
        }
    }
}
