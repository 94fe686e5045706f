import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A plain UDP socket on 127.0.0.1 for tests: sends datagrams and receives replies (acks).
final class UDPClient {
    let descriptor: Int32

    init() throws {
        descriptor = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket: \(String(cString: strerror(errno)))") }
        var size: Int32 = 4 * 1024 * 1024
        setsockopt(descriptor, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

    deinit { close(descriptor) }

    /// Sends one datagram to 127.0.0.1:port.
    func send(_ bytes: [UInt8], port: UInt16) {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = bytes.withUnsafeBytes { buffer in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(
                        descriptor, buffer.baseAddress, buffer.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
        }
    }

    /// Sends one text datagram.
    func send(_ text: String, port: UInt16) { send(Array(text.utf8), port: port) }

    /// Sends many datagrams, pausing briefly every `burst` so that the receiver's socket buffer is not overrun
    /// by a test machine busy with other work.
    func send(_ datagrams: [String], port: UInt16, burst: Int = 500) {
        for (index, datagram) in datagrams.enumerated() {
            send(datagram, port: port)
            if index % burst == burst - 1 { usleep(2_000) }
        }
    }

    /// Receives one datagram, or nil after `timeout` seconds.
    func receive(timeout: Double) -> String? {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) > 0 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = recv(descriptor, &buffer, buffer.count, 0)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }
}

/// An entry with the seed's fields.
func seedEntry(sequence: Int, level: String, app: String = "web", host: String = "node-1", message: String = "hello")
    -> String
{
    "{\"timestamp\":\"2026-11-22T10:00:00.123456Z\",\"sequence\":\(sequence),\"app\":\"\(app)\",\"level\":\"\(level)\","
        + "\"message\":\"\(message)\",\"host\":\"\(host)\"}"
}

/// The lines of a file (without the empty string after the final newline), or [] when it does not exist.
func fileLines(_ url: URL) -> [String] {
    guard let data = FileManager.default.contents(atPath: url.path) else { return [] }
    return String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        .dropLast().map(String.init)
}

/// The sequence number of a seed entry line, or nil.
func sequenceOf(_ line: String) -> Int? {
    guard let data = line.data(using: .utf8),
        let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
    else { return nil }
    return object["sequence"] as? Int
}
