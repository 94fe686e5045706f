/// A parsed `amqp://user:password@host:port/vhost` or `amqps://...` address (RabbitMQ's URI spec), with a form
/// safe to log.
public struct AMQPURL: Sendable, Equatable, CustomStringConvertible {
    /// Whether the url is `amqps://`: TLS, verified (see ``AMQPTLS``), never plain TCP.
    public var tls: Bool
    /// Host name or address.
    public var host: String
    /// TCP port (5672 unless given; 5671 for `amqps://`).
    public var port: Int
    /// User name (`guest` unless given).
    public var user: String
    /// Password (`guest` unless given); never shown by ``description``.
    public var password: String
    /// Virtual host (`/` unless given; `%2f` in the URL is `/`).
    public var virtualHost: String

    /// Parses `url`, percent-decoding the user, password and virtual host.
    public init(parsing url: String) throws(AMQPError) {
        let text = url.trimmingWhitespace()
        guard let schemeEnd = text.firstRange(of: "://") else {
            throw AMQPError(
                "'\(AMQPURL.redact(text))' is not an amqp:// or amqps:// url (amqp://user:password@host:port/vhost)")
        }
        let scheme = text[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "amqp" || scheme == "amqps" else {
            throw AMQPError(
                "unknown scheme '\(scheme)://' in '\(AMQPURL.redact(text))'; expected amqp:// or amqps:// (TLS)")
        }
        tls = scheme == "amqps"
        var rest = text[schemeEnd.upperBound...]
        user = "guest"
        password = "guest"
        // The credentials end at the last '@', so a password may hold '/', '?' or ':' unescaped (generated
        // passwords often do); a '@' in the virtual host must then be written %40.
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                user = try AMQPURL.percentDecoded(credentials[..<colon], in: text)
                password = try AMQPURL.percentDecoded(credentials[credentials.index(after: colon)...], in: text)
            } else {
                user = try AMQPURL.percentDecoded(credentials, in: text)
                password = ""
            }
        }
        var path = ""
        if let slash = rest.firstIndex(of: "/") {
            path = String(rest[rest.index(after: slash)...])
            rest = rest[..<slash]
        }
        let hostPort = rest
        port = tls ? 5671 : 5672
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else {
                throw AMQPError("unclosed '[' in the host of '\(AMQPURL.redact(text))'")
            }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            let after = hostPort[hostPort.index(after: close)...]
            if after.hasPrefix(":") { port = try AMQPURL.port(after.dropFirst(), in: text) }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            port = try AMQPURL.port(hostPort[hostPort.index(after: colon)...], in: text)
        } else {
            host = String(hostPort)
        }
        if host.isEmpty { host = "localhost" }
        if let query = path.firstIndex(of: "?") { path = String(path[..<query]) }
        virtualHost = path.isEmpty ? "/" : try AMQPURL.percentDecoded(Substring(path), in: text)
    }

    /// `amqp://user:***@host:port/vhost`: the url with the password masked, for logs and errors.
    public var description: String {
        let hostText = host.contains(":") ? "[\(host)]" : host
        let vhost = virtualHost == "/" ? "" : virtualHost.replacingSlashes()
        return "\(tls ? "amqps" : "amqp")://\(user):***@\(hostText):\(port)/\(vhost)"
    }

    /// Masks the password of a url that did not parse, for error messages.
    public static func redact(_ url: String) -> String {
        guard let schemeEnd = url.firstRange(of: "://"), let at = url[schemeEnd.upperBound...].lastIndex(of: "@") else {
            return url
        }
        let credentials = url[schemeEnd.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return String(url[..<colon]) + ":***" + String(url[at...])
    }

    private static func port(_ text: Substring, in url: String) throws(AMQPError) -> Int {
        guard let value = Int(text), (1...65535).contains(value) else {
            throw AMQPError("port '\(text)' in '\(redact(url))' is not a number from 1 to 65535")
        }
        return value
    }

    private static func percentDecoded(_ text: Substring, in url: String) throws(AMQPError) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw AMQPError("bad percent-escape in '\(redact(url))'")
            }
            bytes.append(high << 4 | low)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// An error from the AMQP client, in words a user acts on (the url in it has its password masked).
public struct AMQPError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What went wrong.
    public var message: String

    /// Makes an error.
    public init(_ message: String) { self.message = message }

    /// The message.
    public var description: String { message }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }

    fileprivate func replacingSlashes() -> String {
        split(separator: "/", omittingEmptySubsequences: false).joined(separator: "%2f")
    }
}
