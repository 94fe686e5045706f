import CRouterShims
import Foundation
import Router

#if canImport(Glibc)
    import Glibc
#endif

/// What `--stats-url` found in the server's /stats JSON.
struct ServerStats {
    /// Datagrams routerd received (its udp inputs' `datagrams` counters), when /stats says.
    var received: Int?
    /// Entries routerd wrote (its file outputs accepted), when /stats says.
    var written: Int?
}

/// Reads routerd's `/stats` (an `http_stats` output) after a load test.
///
/// A plain HTTP/1.1 GET over a blocking TCP socket, `Connection: close`, Content-Length or chunked body: enough
/// for one local JSON endpoint. FoundationNetworking's URLSession would do it too, but it links libcurl into the
/// routerd binary, which every `routerd -c` process would then load (startup time and resident memory).
enum StatsReader {
    /// Fetches and reads `url`; throws with a message when it cannot be fetched or is not a JSON object.
    static func read(_ url: String, timeoutNanos: Int64 = 2_000_000_000) throws -> ServerStats {
        let body = try get(url, timeoutNanos: timeoutNanos)
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw ClientError("\(url) did not return a JSON object")
        }
        return interpret(object)
    }

    /// Finds the received and written totals in a /stats document (docs/http_stats.md, schema 1).
    ///
    /// received: the sum of the `datagrams` counters of the `udp` stages (what routerd read from its sockets),
    /// else a top-level `received`. written: what the `file` and `rotating_file` outputs wrote
    /// (`events_out{port="default"}`, counted after each write), dead-letter files included; entries a
    /// rotating_file still buffers (at most `flush_count`, for `flush_interval`) are not written yet.
    static func interpret(_ object: [String: Any]) -> ServerStats {
        var stages: [[String: Any]] = []
        if let list = object["stages"] as? [[String: Any]] {
            stages = list
        } else if let byName = object["stages"] as? [String: [String: Any]] {
            stages = Array(byName.values)
        }
        var datagrams: Int?
        var written: Int?
        for stage in stages {
            let counters = stage["counters"] as? [String: Any] ?? [:]
            let type = stage["type"] as? String
            if type == "udp", let value = number(counters["datagrams"]) {
                datagrams = (datagrams ?? 0) + value
            }
            if type == "file" || type == "rotating_file",
                let ports = counters["events_out"] as? [String: Any],
                let byPort = ports["port"] as? [String: Any], let value = number(byPort["default"])
            {
                written = (written ?? 0) + value
            }
        }
        return ServerStats(received: datagrams ?? number(object["received"]), written: written)
    }

    /// A counter's total: a number, or the sum of the numbers nested in a labelled series.
    private static func total(_ value: Any?) -> Int {
        if let value = number(value) { return value }
        if let series = value as? [String: Any] { return series.values.reduce(0) { $0 + total($1) } }
        return 0
    }

    private static func number(_ value: Any?) -> Int? {
        if let value = value as? Int { return value }
        if let value = value as? Double, value >= 0, value < 9e18 { return Int(value) }
        return nil
    }

    /// GET `url` (http only); returns the body of a 200 answer.
    static func get(_ url: String, timeoutNanos: Int64) throws -> [UInt8] {
        guard let parsed = URLComponents(string: url), parsed.scheme == "http", let host = parsed.host else {
            throw ClientError("'\(url)' is not an http:// URL")
        }
        let port = parsed.port ?? 80
        let path =
            (parsed.percentEncodedPath.isEmpty ? "/" : parsed.percentEncodedPath)
            + (parsed.percentEncodedQuery.map { "?" + $0 } ?? "")
        let descriptor = try connectTCP(
            host: host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port, timeoutNanos: timeoutNanos)
        defer { close(descriptor) }
        let request =
            "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        var bytes = Array(request.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { raw in
                write(descriptor, raw.baseAddress.map { $0 + offset }, raw.count - offset)
            }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else {
                throw ClientError("cannot send the request to \(url): \(ClientSocket.errorText())")
            }
            offset += written
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while response.count < 64 << 20 {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                throw ClientError("cannot read the answer from \(url): \(ClientSocket.errorText())")
            }
            if count == 0 { break }
            response.append(contentsOf: chunk[0..<count])
        }
        bytes = response
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = firstIndex(of: separator, in: bytes) else {
            throw ClientError("\(url) sent no complete HTTP answer")
        }
        let head = String(decoding: bytes[0..<headEnd], as: UTF8.self)
        let lines = head.components(separatedBy: "\r\n")
        let status = lines.first?.split(separator: " ").dropFirst().first.flatMap { Int($0) } ?? 0
        guard status == 200 else {
            throw ClientError("\(url) answered \(lines.first ?? "nothing")")
        }
        var body = Array(bytes[(headEnd + 4)...])
        let chunked = lines.dropFirst().contains {
            $0.lowercased().hasPrefix("transfer-encoding:") && $0.lowercased().contains("chunked")
        }
        if chunked { body = try dechunk(body) }
        return body
    }

    private static func connectTCP(host: String, port: Int, timeoutNanos: Int64) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var found: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &found)
        guard status == 0, found != nil else {
            throw ClientError("cannot resolve '\(host)': \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(found) }
        var lastError = "no address"
        var cursor = found
        while let info = cursor {
            cursor = info.pointee.ai_next
            let descriptor = socket(
                info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard descriptor >= 0 else { continue }
            var timeout = timeval(
                tv_sec: Int(timeoutNanos / 1_000_000_000), tv_usec: Int(timeoutNanos % 1_000_000_000 / 1_000))
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            if connect(descriptor, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return descriptor }
            lastError = ClientSocket.errorText()
            close(descriptor)
        }
        throw ClientError("cannot connect to \(host):\(port): \(lastError)")
    }

    private static func dechunk(_ bytes: [UInt8]) throws -> [UInt8] {
        var body: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = firstIndex(of: [13, 10], in: bytes, from: index) else { break }
            let sizeText = String(decoding: bytes[index..<lineEnd], as: UTF8.self)
            guard let size = Int(sizeText.split(separator: ";").first ?? "", radix: 16) else {
                throw ClientError("malformed chunked body")
            }
            if size == 0 { break }
            let start = lineEnd + 2
            guard start + size <= bytes.count else { throw ClientError("truncated chunked body") }
            body.append(contentsOf: bytes[start..<(start + size)])
            index = start + size + 2
        }
        return body
    }

    private static func firstIndex(of needle: [UInt8], in bytes: [UInt8], from start: Int = 0) -> Int? {
        guard bytes.count >= needle.count, start <= bytes.count - needle.count else { return nil }
        for index in start...(bytes.count - needle.count)
        where bytes[index..<(index + needle.count)].elementsEqual(needle) {
            return index
        }
        return nil
    }
}
