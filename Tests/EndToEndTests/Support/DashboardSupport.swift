import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An HTTP response as the dashboard tests read it.
struct HTTPReply {
    var status: Int
    var headers: [String: String]
    var body: String

    /// The body parsed as a JSON object.
    func json() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else {
            throw TestFailure("not a JSON object: \(body)")
        }
        return object
    }
}

/// A plain HTTP/1.1 GET to 127.0.0.1, over a socket of its own (no URLSession: nothing cached, nothing pooled).
func httpGet(port: UInt16, _ path: String, timeout: Double = 10) throws -> HTTPReply {
    try httpRequest(port: port, "GET", path, timeout: timeout)
}

/// A TCP socket connected to 127.0.0.1:`port`, with `timeout` seconds on each receive.
func connectLoopback(port: UInt16, timeout: Double = 10) throws -> Int32 {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
    var time = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else {
        let reason = String(cString: strerror(errno))
        close(descriptor)
        throw TestFailure("connect to port \(port): \(reason)")
    }
    return descriptor
}

/// Sends all of `bytes` (MSG_NOSIGNAL: a peer that closed is an error, not a SIGPIPE); false when the peer closed
/// or reset the connection first.
@discardableResult
func sendAll(_ descriptor: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let sent = bytes[offset...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if sent < 0 && errno == EINTR { continue }
        guard sent > 0 else { return false }
        offset += sent
    }
    return true
}

/// Everything the peer sends until it closes (or resets, or `SO_RCVTIMEO` passes).
func receiveAll(_ descriptor: Int32) -> [UInt8] {
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        data.append(contentsOf: buffer[0..<count])
    }
    return data
}

/// One HTTP/1.1 request to 127.0.0.1 with `Connection: close` and `headers`, over a socket of its own.
func httpRequest(
    port: UInt16, _ method: String, _ path: String, headers: [String: String] = [:], timeout: Double = 10
) throws -> HTTPReply {
    let descriptor = try connectLoopback(port: port, timeout: timeout)
    defer { close(descriptor) }
    let extra = headers.map { "\($0.key): \($0.value)\r\n" }.joined()
    let length = method == "GET" || method == "HEAD" ? "" : "Content-Length: 0\r\n"
    let request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\(length)\(extra)\r\n"
    sendAll(descriptor, Array(request.utf8))
    var data: [UInt8] = []
    data = receiveAll(descriptor)
    return try parseReply(data, port: port)
}

/// An HTTP/1.1 response's bytes as an ``HTTPReply``.
func parseReply(_ data: [UInt8], port: UInt16) throws -> HTTPReply {
    let text = String(decoding: data, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw TestFailure("no HTTP response from port \(port)") }
    let headLines = text[..<split.lowerBound].split(separator: "\r\n")
    guard let statusLine = headLines.first, statusLine.split(separator: " ").count >= 2,
        let status = Int(statusLine.split(separator: " ")[1])
    else { throw TestFailure("bad status line in: \(text.prefix(200))") }
    var headers: [String: String] = [:]
    for line in headLines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return HTTPReply(status: status, headers: headers, body: String(text[split.upperBound...]))
}

/// The resident set size of process `pid` (VmRSS of /proc/PID/status), in bytes.
func residentBytes(pid: Int32) throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
        let kib = line.split(separator: " ").dropFirst().first.flatMap({ Int($0) })
    else { throw TestFailure("no VmRSS in /proc/\(pid)/status") }
    return kib * 1024
}

/// How many file descriptors process `pid` has open (its sockets among them).
func openDescriptors(pid: Int32) throws -> Int {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count
}

/// Polls `condition` every 50 ms until it holds, or fails with `what` after `timeout` seconds.
@discardableResult
func waitUntil<Value>(
    _ what: String, timeout: Double = 20, _ condition: () throws -> Value?
) throws -> Value {
    let deadline = Date().addingTimeInterval(timeout)
    var lastError: (any Error)?
    while Date() < deadline {
        do {
            if let value = try condition() { return value }
        } catch {
            lastError = error
        }
        usleep(50_000)
    }
    throw TestFailure("timed out after \(timeout)s waiting for \(what)" + (lastError.map { ": \($0)" } ?? ""))
}

/// The external programs the dashboard tests drive. Missing ones fail the test (they never skip it): `make test`
/// installs them with scripts/ensure-test-deps.sh.
enum ExternalTools {
    /// The first of `names` found on PATH, or a failure that says how to install it.
    static func find(_ names: [String], package: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for name in names {
            for directory in path.split(separator: ":") {
                let candidate = "\(directory)/\(name)"
                if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            }
        }
        throw TestFailure(
            "\(names[0]) is not installed: run scripts/ensure-test-deps.sh (apt-get install \(package))")
    }

    /// Runs a program to completion with `input` on stdin; returns its status and combined output.
    static func run(_ executable: String, _ arguments: [String], input: String = "") throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdin = Pipe()
        let output = Pipe()
        process.standardInput = stdin
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let reader = PipeReader(output)
        let writer = Thread {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try? stdin.fileHandleForWriting.close()
        }
        writer.start()
        process.waitUntilExit()
        return (process.terminationStatus, reader.readToEnd())
    }

    /// `promtool check metrics` on an exposition text: its status and what it printed.
    static func promtoolCheck(_ metrics: String) throws -> (Int32, String) {
        try run(try find(["promtool"], package: "prometheus"), ["check", "metrics"], input: metrics)
    }
}

/// A real headless Chromium on the dashboard, through scripts/dashboard-check.py (the DevTools protocol): the page
/// is loaded once and read several times, so a test sees it refresh in place.
final class DashboardBrowser {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var pending = Data()

    /// Opens `url` in a new headless Chromium; fails when Chromium or python3 is missing.
    init(url: String) throws {
        let chromium = try ExternalTools.find(["chromium", "chromium-browser"], package: "chromium")
        let python = try ExternalTools.find(["python3"], package: "python3")
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [
            TestPaths.packageRoot.appendingPathComponent("scripts/dashboard-check.py").path, "--url", url,
            "--chromium", chromium,
        ]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.standardError
        try process.run()
        let ready = try readReply()
        guard ready["ready"] as? Bool == true else { throw TestFailure("dashboard-check did not start: \(ready)") }
    }

    /// Waits until the page shows `total` entries received, and returns what the page shows then.
    func waitForTotal(_ total: Int, timeout: Double = 20) throws -> [String: Any] {
        let reply = try command(["wait_total": total, "timeout": timeout])
        guard let page = reply["page"] as? [String: Any] else { throw TestFailure("no page in \(reply)") }
        return page
    }

    /// Saves a PNG of the page.
    func screenshot(to path: String) throws {
        _ = try command(["screenshot": path])
    }

    private func command(_ object: [String: Any]) throws -> [String: Any] {
        var line = try JSONSerialization.data(withJSONObject: object)
        line.append(0x0A)
        input.fileHandleForWriting.write(line)
        let reply = try readReply()
        guard reply["ok"] as? Bool == true else { throw TestFailure("dashboard-check: \(reply)") }
        return reply
    }

    private func readReply() throws -> [String: Any] {
        while true {
            if let newline = pending.firstIndex(of: 0x0A) {
                let line = pending[pending.startIndex..<newline]
                pending = Data(pending[pending.index(after: newline)...])
                guard let object = try JSONSerialization.jsonObject(with: line) as? [String: Any] else {
                    throw TestFailure("dashboard-check printed: \(String(decoding: line, as: UTF8.self))")
                }
                return object
            }
            // read(2) with EINTR retried: FileHandle's reads trap on EINTR.
            var buffer = [UInt8](repeating: 0, count: 65536)
            let descriptor = output.fileHandleForReading.fileDescriptor
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { throw TestFailure("dashboard-check exited (status \(process.terminationStatus))") }
            pending.append(contentsOf: buffer[0..<count])
        }
    }

    deinit {
        if process.isRunning {
            input.fileHandleForWriting.write(Data("{\"quit\":true}\n".utf8))
            try? input.fileHandleForWriting.close()
            let deadline = Date().addingTimeInterval(10)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { process.terminate() }
        }
    }
}
