import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Runs `body(index)` on `count` threads at once and waits for all of them.
private func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for index in 0..<count {
        group.enter()
        let thread = Thread {
            body(index)
            group.leave()
        }
        thread.stackSize = 256 * 1024
        thread.start()
    }
    group.wait()
}

/// A request whose one header holds `bytes` bytes.
private func oversizedRequest(headerBytes bytes: Int) -> [UInt8] {
    Array("GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".utf8) + [UInt8](repeating: 0x61, count: bytes)
        + Array("\r\n\r\n".utf8)
}

/// The status of each reply to `total` requests of `request`, `threads` at a time, each on a new connection:
/// 0 for a connection closed without an answer.
private func sendMany(_ request: [UInt8], total: Int, threads: Int, port: UInt16) -> [Int: Int] {
    let next = Atomic<Int>(0)
    let statuses = Mutex<[Int: Int]>([:])
    onThreads(threads) { _ in
        while next.add(1, ordering: .relaxed).oldValue < total {
            var status = -1
            if let descriptor = try? connectLoopback(port: port, timeout: 10) {
                sendAll(descriptor, request)
                status = (try? parseReply(receiveAll(descriptor), port: port))?.status ?? 0
                close(descriptor)
            }
            statuses.withLock { $0[status, default: 0] += 1 }
        }
    }
    return statuses.withLock { $0 }
}

@Suite("routerd binary: http_stats bounds what a client can hold", .serialized)
struct DashboardLimitsTests {
    private func config(_ extra: String = "") -> String {
        """
        inputs:
          udp_in: { type: udp, address: 127.0.0.1, port: 0 }
        filters:
          valid: { type: validate_json, inputs: [udp_in] }
        outputs:
          stats:
            type: http_stats
            inputs: [valid]
            address: 127.0.0.1
            port: 0
        \(extra)
        """
    }

    private func waitForReceived(_ count: Int, port: UInt16) throws {
        try waitUntil("/stats to count \(count) entries", timeout: 60) { () -> Bool? in
            try httpGet(port: port, "/stats").json()["received"] as? Int == count ? true : nil
        }
    }

    /// Before: 20,000 requests with a 256 KiB header took RSS from 35 to 1,588 MiB, and it stayed there.
    @Test func oversizedHeads_areEachAnswered400AndLeaveRSSAndConnectionsFlat() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(config: config(), directory: directory)
        let pid = routerd.process.processIdentifier
        let udpPort = try routerd.listeningPort(stage: "udp_in")
        let httpPort = try routerd.listeningPort(stage: "stats")

        // A first round lets the allocator and the event loops reach their working size.
        let warmUp = sendMany(oversizedRequest(headerBytes: 256 * 1024), total: 300, threads: 32, port: httpPort)
        #expect(warmUp == [400: 300], "\(warmUp)")
        usleep(500_000)
        let rssBefore = try residentBytes(pid: pid)
        let descriptorsBefore = try openDescriptors(pid: pid)

        // UDP entries arrive all through the abuse: none may be lost.
        let entries = 20_000
        let sender = Thread {
            guard let client = try? UDPClient() else { return }
            for start in stride(from: 1, through: entries, by: 100) {
                client.send((start..<start + 100).map { seedEntry(sequence: $0, level: "INFO") }, port: udpPort)
                usleep(5_000)
            }
        }
        sender.start()
        let large = sendMany(oversizedRequest(headerBytes: 256 * 1024), total: 4000, threads: 64, port: httpPort)
        let huge = sendMany(oversizedRequest(headerBytes: 1024 * 1024), total: 600, threads: 32, port: httpPort)
        #expect(large == [400: 4000], "\(large)")
        #expect(huge == [400: 600], "\(huge)")
        try waitForReceived(entries, port: httpPort)

        // Every connection is closed (within the linger after each 400), and the memory is back.
        try waitUntil("routerd to close the refused connections") {
            try openDescriptors(pid: pid) <= descriptorsBefore + 2 ? true : nil
        }
        usleep(500_000)
        let rssAfter = try residentBytes(pid: pid)
        let growth = rssAfter - rssBefore
        #expect(growth < 32 * 1024 * 1024, "RSS \(rssBefore / 1_048_576) MiB -> \(rssAfter / 1_048_576) MiB")
        #expect(try httpGet(port: httpPort, "/health").status == 200)
        #expect(try routerd.terminate() == 0)
    }

    /// Before: 1,000 connections that send a header byte now and then stayed open for minutes.
    @Test func slowHeads_areClosedAtTheHeaderTimeoutAndLeaveRSSFlat() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(
            config: config("    header_timeout: 2s\n    max_connections: 2000"), directory: directory)
        let pid = routerd.process.processIdentifier
        let httpPort = try routerd.listeningPort(stage: "stats")
        #expect(try httpGet(port: httpPort, "/health").status == 200)
        let rssBefore = try residentBytes(pid: pid)

        let count = 1000
        var sockets: [Int32] = []
        for _ in 0..<count {
            let descriptor = try connectLoopback(port: httpPort)
            sendAll(descriptor, Array("GET /stats HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ".utf8))
            sockets.append(descriptor)
        }
        let opened = Date()
        defer { for descriptor in sockets { close(descriptor) } }
        var closedAt: [Int32: Double] = [:]
        var healthWhileHeld: Int?
        while closedAt.count < count && Date().timeIntervalSince(opened) < 15 {
            for descriptor in sockets where closedAt[descriptor] == nil {
                var byte: UInt8 = 0
                let peeked = recv(descriptor, &byte, 1, Int32(MSG_DONTWAIT))
                let gone = peeked == 0 || (peeked < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                if gone || !sendAll(descriptor, [0x61]) {
                    closedAt[descriptor] = Date().timeIntervalSince(opened)
                }
            }
            if healthWhileHeld == nil { healthWhileHeld = try httpGet(port: httpPort, "/health", timeout: 5).status }
            usleep(200_000)
        }
        #expect(healthWhileHeld == 200)
        #expect(closedAt.count == count, "\(count - closedAt.count) slow connections still open after 15 s")
        let latest = closedAt.values.max() ?? 0
        #expect(latest < 2 + 2, "the last slow connection closed \(latest) s after it opened")
        let rssAfter = try residentBytes(pid: pid)
        #expect(
            rssAfter - rssBefore < 24 * 1024 * 1024,
            "RSS \(rssBefore / 1_048_576) MiB -> \(rssAfter / 1_048_576) MiB")
        #expect(try routerd.terminate() == 0)
    }

    @Test func maxConnections_holdsANewConnectionUntilAnOpenOneCloses() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(
            config: config("    header_timeout: 60s\n    max_connections: 8"), directory: directory)
        let httpPort = try routerd.listeningPort(stage: "stats")
        #expect(try httpGet(port: httpPort, "/health").status == 200)
        usleep(100_000)
        var held = try (0..<8).map { _ in try connectLoopback(port: httpPort) }
        defer { for descriptor in held { close(descriptor) } }
        usleep(200_000)

        // The ninth is left in the listen queue: no answer while the eight are open.
        let ninth = try connectLoopback(port: httpPort, timeout: 1)
        defer { close(ninth) }
        sendAll(ninth, Array("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8))
        var byte: UInt8 = 0
        #expect(recv(ninth, &byte, 1, 0) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))

        // One closes: the ninth is accepted and answered.
        close(held.removeLast())
        var time = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(ninth, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
        let reply = try parseReply(receiveAll(ninth), port: httpPort)
        #expect(reply.status == 200)
        #expect(reply.body == "{\"status\":\"ok\"}")
        #expect(try routerd.terminate() == 0)
    }

    @Test func head_answersWhereGetDoesWithTheSameHeadersAndNoBody() throws {
        let directory = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let routerd = try RouterdProcess(config: config(), directory: directory)
        let httpPort = try routerd.listeningPort(stage: "stats")
        for path in ["/", "/dashboard.js", "/dashboard.css", "/stats", "/health", "/metrics"] {
            let get = try httpRequest(port: httpPort, "GET", path)
            let head = try httpRequest(port: httpPort, "HEAD", path)
            #expect(get.status == 200, "GET \(path)")
            #expect(head.status == 200, "HEAD \(path)")
            #expect(head.body.isEmpty, "HEAD \(path): \(head.body.prefix(80))")
            #expect(head.headers["content-type"] == get.headers["content-type"], "HEAD \(path)")
            #expect(head.headers["content-security-policy"] == get.headers["content-security-policy"])
        }
        #expect(try httpRequest(port: httpPort, "HEAD", "/nothing-here").status == 404)
        #expect(try routerd.terminate() == 0)
    }
}
