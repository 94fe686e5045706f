/// A `postgres://user:password@host:port/database` URL, read once, with a form that is safe to print.
///
/// The password (often from `${VAR}`) never appears in ``masked``, in ``description`` or in any error this type
/// throws, so logs, `/health` and config errors can name the URL freely.
struct PostgresURL: Sendable, CustomStringConvertible {
    var user: String
    var password: String?
    var host: String
    var port: Int
    var database: String
    /// Whether and how the connection uses TLS.
    var sslMode: PostgresSSLMode

    /// The URL with the password replaced by `***`.
    var masked: String {
        let credentials = Self.escape(user) + (password == nil ? "" : ":***")
        let hostText = host.contains(":") ? "[\(host)]" : host
        let query = sslMode == .disable ? "" : "?sslmode=\(sslMode.rawValue)"
        return "postgres://\(credentials)@\(hostText):\(port)/\(Self.escape(database))\(query)"
    }

    var description: String { masked }

    /// Reads `text`; the error message says what is wrong without repeating the text (it may hold the password).
    init(parsing text: String) throws(PostgresURLError) {
        var rest = Substring(text)
        guard let schemeEnd = rest.range(of: "://") else {
            throw PostgresURLError("must look like postgres://user:password@host:5432/database")
        }
        let scheme = rest[..<schemeEnd.lowerBound].lowercased()
        guard scheme == "postgres" || scheme == "postgresql" else {
            throw PostgresURLError("must start with postgres:// or postgresql://, not \(scheme)://")
        }
        rest = rest[schemeEnd.upperBound...]
        // The credentials end at the last '@', so a password may hold '/', '?' or ':' unescaped (generated
        // passwords often do); a '@' after the host must then be written %40.
        guard let at = rest.lastIndex(of: "@") else {
            throw PostgresURLError("names no user: write postgres://user:password@host/database")
        }
        let credentials = rest[..<at]
        rest = rest[rest.index(after: at)...]
        sslMode = .disable
        if let query = rest.firstIndex(of: "?") {
            sslMode = try Self.sslMode(in: rest[rest.index(after: query)...])
            rest = rest[..<query]
        }
        guard let slash = rest.firstIndex(of: "/") else {
            throw PostgresURLError("names no database: add /database after the host")
        }
        var hostPort = rest[..<slash]
        database = try Self.unescape(rest[rest.index(after: slash)...], part: "database")
        guard !database.isEmpty else { throw PostgresURLError("names no database: add /database after the host") }
        if let colon = credentials.firstIndex(of: ":") {
            user = try Self.unescape(credentials[..<colon], part: "user")
            password = try Self.unescape(credentials[credentials.index(after: colon)...], part: "password")
        } else {
            user = try Self.unescape(credentials, part: "user")
            password = nil
        }
        guard !user.isEmpty else {
            throw PostgresURLError("names no user: write postgres://user:password@host/database")
        }
        var portText: Substring?
        if hostPort.first == "[" {
            guard let close = hostPort.firstIndex(of: "]") else {
                throw PostgresURLError("has an IPv6 host without its closing ']'")
            }
            host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
            hostPort = hostPort[hostPort.index(after: close)...]
            if hostPort.first == ":" {
                portText = hostPort.dropFirst()
            } else if !hostPort.isEmpty {
                throw PostgresURLError("has text after the IPv6 host that is not a :port")
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = String(hostPort[..<colon])
            portText = hostPort[hostPort.index(after: colon)...]
        } else {
            host = String(hostPort)
        }
        guard !host.isEmpty else { throw PostgresURLError("names no host") }
        if let portText {
            guard let number = Int(portText), (1...65535).contains(number) else {
                throw PostgresURLError("has a port that is not a number between 1 and 65535")
            }
            port = number
        } else {
            port = 5432
        }
    }

    /// `sslmode` (libpq's word, so that a URL from elsewhere keeps its meaning): `disable` (the default) or one of
    /// the three that never fall back to plain text. `allow` and `prefer`, which do, are refused.
    private static func sslMode(in query: Substring) throws(PostgresURLError) -> PostgresSSLMode {
        var mode = PostgresSSLMode.disable
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.first == "sslmode" else {
                throw PostgresURLError(
                    "has the parameter '\(parts.first ?? "")', which is not supported (only sslmode; the TLS files "
                        + "are the options tls_ca_file, tls_cert_file and tls_key_file)")
            }
            let value = parts.count == 2 ? parts[1] : ""
            if value == "allow" || value == "prefer" {
                throw PostgresURLError(
                    "has sslmode=\(value), which falls back to plain text when the server refuses TLS; use "
                        + "sslmode=require, verify-ca or verify-full (or disable)")
            }
            guard let parsed = PostgresSSLMode(rawValue: value) else {
                throw PostgresURLError(
                    "has sslmode='\(value)'; expected disable, require, verify-ca or verify-full")
            }
            mode = parsed
        }
        return mode
    }

    private static func unescape(_ text: Substring, part: String) throws(PostgresURLError) -> String {
        guard text.contains("%") else { return String(text) }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                throw PostgresURLError("has a bad %-escape in the \(part)")
            }
            bytes.append(high << 4 | low)
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw PostgresURLError("has a \(part) that is not UTF-8 once %-escapes are decoded")
        }
        return decoded
    }

    private static func escape(_ text: String) -> String {
        var output = ""
        for byte in text.utf8 {
            let scalar = Unicode.Scalar(byte)
            if byte < 0x80
                && (scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)
                    || "-._~".contains(Character(scalar)))
            {
                output.unicodeScalars.append(scalar)
            } else {
                output += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return output
    }
}

/// The `sslmode` of a URL: none of the TLS modes ever falls back to plain text.
enum PostgresSSLMode: String, Sendable {
    /// Plain TCP.
    case disable
    /// TLS; the server's chain is checked only when `tls_ca_file` is set (as libpq does with a root certificate).
    case require
    /// TLS, the server's chain checked against `tls_ca_file` (or the system's store), not its name.
    case verifyCA = "verify-ca"
    /// TLS, the chain and the server's name (the URL's host: a DNS name, or an IP address) checked.
    case verifyFull = "verify-full"
}

/// What is wrong with a `url` option; never contains the URL itself.
struct PostgresURLError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) { self.description = description }
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
    default: nil
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
