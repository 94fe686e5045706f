/// The network address an entry came from, kept compact and free of C types.
public struct SenderAddress: Sendable, Hashable, CustomStringConvertible {
    /// 0 when absent, 4 for IPv4, 6 for IPv6.
    public var family: UInt8
    /// The port, in host byte order.
    public var port: UInt16
    /// IPv6: the first 8 address bytes (network order packed big-endian). IPv4: 0.
    public var high: UInt64
    /// IPv6: the last 8 address bytes. IPv4: the 4 address bytes in the low 32 bits, big-endian.
    public var low: UInt64
    /// IPv6 scope id (interface), 0 otherwise.
    public var scope: UInt32

    /// Makes an address from its parts.
    public init(family: UInt8, port: UInt16, high: UInt64, low: UInt64, scope: UInt32 = 0) {
        self.family = family
        self.port = port
        self.high = high
        self.low = low
        self.scope = scope
    }

    /// No address: the event did not come from a socket.
    public static let none = SenderAddress(family: 0, port: 0, high: 0, low: 0)

    /// An IPv4 address from its four octets.
    public static func ipv4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16) -> SenderAddress {
        let value = UInt64(a) << 24 | UInt64(b) << 16 | UInt64(c) << 8 | UInt64(d)
        return SenderAddress(family: 4, port: port, high: 0, low: value)
    }

    /// `127.0.0.1:5514`, `[::1]:5514`, or `-` when absent.
    public var description: String {
        switch family {
        case 4:
            let octets = (0..<4).map { String((low >> (8 * UInt64(3 - $0))) & 0xFF) }
            return octets.joined(separator: ".") + ":\(port)"
        case 6:
            var groups: [String] = []
            for word in [high, low] {
                for index in 0..<4 { groups.append(String((word >> (16 * UInt64(3 - index))) & 0xFFFF, radix: 16)) }
            }
            return "[" + groups.joined(separator: ":") + "]:\(port)"
        default:
            return "-"
        }
    }
}
