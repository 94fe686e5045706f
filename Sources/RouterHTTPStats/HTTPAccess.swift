import Hummingbird
import RouterCore

/// Who may read the dashboard: anyone (no credentials set), or a request that carries the bearer token or the
/// HTTP basic credentials of the config. `/health` stays open when ``publicHealth`` is set, for liveness probes.
///
/// The secrets live only here: they are never logged, never in `/stats`, and compared in constant time.
struct HTTPAccess: Sendable {
    /// `Authorization: Bearer <token>`'s token, as UTF-8.
    private let token: [UInt8]?
    /// `Authorization: Basic <base64(user:password)>`'s decoded `user:password`, as UTF-8.
    private let basic: [UInt8]?
    /// Whether `/health` answers without credentials.
    let publicHealth: Bool

    /// Whether any credential is required.
    var isRestricted: Bool { token != nil || basic != nil }

    /// How the log's `listening` line names the access (never the secrets themselves).
    var summary: String {
        switch (token != nil, basic != nil) {
        case (true, true): "bearer or basic"
        case (true, false): "bearer"
        case (false, true): "basic"
        case (false, false): "none"
        }
    }

    /// Open to everyone.
    static let open = HTTPAccess(token: nil, user: nil, password: nil, publicHealth: true)

    init(token: String?, user: String?, password: String?, publicHealth: Bool) {
        self.token = token.map { Array($0.utf8) }
        if let user, let password { basic = Array("\(user):\(password)".utf8) } else { basic = nil }
        self.publicHealth = publicHealth
    }

    /// Reads the stage's options (already checked by ``problems(_:)``).
    init(options: StageOptions) throws(StageError) {
        self.init(
            token: try options.value(HTTPStatsOutput.authToken), user: try options.value(HTTPStatsOutput.authUser),
            password: try options.value(HTTPStatsOutput.authPassword),
            publicHealth: try options.value(HTTPStatsOutput.publicHealth))
    }

    /// The config problems of the access and TLS options, each at the option it is about.
    static func problems(_ options: StageOptions) -> [OptionProblemReport] {
        var problems: [OptionProblemReport] = []
        func value(_ option: StageOption<String?>) -> String? { (try? options.value(option)) ?? nil }
        func report(_ message: String, at option: StageOption<String?>) {
            problems.append(OptionProblemReport(message, at: options.locations[option.name]))
        }
        if value(HTTPStatsOutput.authToken)?.isEmpty == true {
            report(
                "'auth_token' is empty: set it, usually from \"${DASHBOARD_TOKEN:?set DASHBOARD_TOKEN}\", or leave "
                    + "it out", at: HTTPStatsOutput.authToken)
        }
        let user = value(HTTPStatsOutput.authUser)
        let password = value(HTTPStatsOutput.authPassword)
        if user != nil && password == nil {
            report("'auth_user' needs 'auth_password' (HTTP basic takes both)", at: HTTPStatsOutput.authUser)
        }
        if password != nil && user == nil {
            report("'auth_password' needs 'auth_user' (HTTP basic takes both)", at: HTTPStatsOutput.authPassword)
        }
        if let user, user.isEmpty || user.contains(":") {
            report("'auth_user' must be non-empty and hold no ':'", at: HTTPStatsOutput.authUser)
        }
        if password?.isEmpty == true {
            report(
                "'auth_password' is empty: set it, usually from \"${DASHBOARD_PASSWORD:?set DASHBOARD_PASSWORD}\"",
                at: HTTPStatsOutput.authPassword)
        }
        let certificate = value(HTTPStatsOutput.tlsCertificate)
        let key = value(HTTPStatsOutput.tlsKey)
        if certificate != nil && key == nil {
            report("'tls_certificate' needs 'tls_key'", at: HTTPStatsOutput.tlsCertificate)
        }
        if key != nil && certificate == nil {
            report("'tls_key' needs 'tls_certificate'", at: HTTPStatsOutput.tlsKey)
        }
        return problems
    }

    /// Whether `request` may see what it asks for.
    func allows(_ request: Request) -> Bool {
        allows(path: request.uri.path, authorization: request.headers[.authorization])
    }

    /// Whether a request for `path` with this `Authorization` header (nil: none) may see it.
    func allows(path: String, authorization: String?) -> Bool {
        guard isRestricted else { return true }
        if publicHealth && path == "/health" { return true }
        guard let authorization else { return false }
        let (scheme, credentials) = Self.split(authorization)
        switch scheme.lowercased() {
        case "bearer":
            guard let token else { return false }
            return Self.constantTimeEqual(Array(credentials.utf8), token)
        case "basic":
            guard let basic, let decoded = Base64.decode(credentials) else { return false }
            return Self.constantTimeEqual(decoded, basic)
        default:
            return false
        }
    }

    /// The `WWW-Authenticate` challenge of a 401: basic first, so a browser asks for a user name and password.
    var challenge: String {
        basic != nil ? "Basic realm=\"routerd\", charset=\"UTF-8\"" : "Bearer realm=\"routerd\""
    }

    private static func split(_ header: String) -> (Substring, Substring) {
        let trimmed = header.drop { $0 == " " }
        guard let space = trimmed.firstIndex(of: " ") else { return (trimmed, "") }
        return (trimmed[..<space], trimmed[space...].drop { $0 == " " })
    }

    /// Compares every byte whatever the first difference, so the time taken says nothing of the secret but its
    /// length.
    static func constantTimeEqual(_ given: [UInt8], _ secret: [UInt8]) -> Bool {
        var difference = UInt8(given.count == secret.count ? 0 : 1)
        for index in 0..<secret.count {
            difference |= secret[index] ^ (index < given.count ? given[index] : 0)
        }
        return difference == 0
    }
}

/// Answers 401 to a request ``HTTPAccess`` refuses, before any route runs.
struct AccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let access: HTTPAccess
    let refused: StageCounter

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        guard access.allows(request) else {
            refused.add()
            return Response(
                status: .unauthorized,
                headers: [.wwwAuthenticate: access.challenge, .contentType: "text/plain; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: "401 Unauthorized\n")))
        }
        return try await next(request, context)
    }
}

/// Standard base64 (RFC 4648, with padding) to bytes; nil for anything else.
enum Base64 {
    static func decode(_ text: Substring) -> [UInt8]? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count * 3 / 4)
        var accumulator: UInt32 = 0
        var bits = 0
        var padding = 0
        for character in text.utf8 {
            let value: UInt32
            switch character {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = UInt32(character - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = UInt32(character - UInt8(ascii: "a")) + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = UInt32(character - UInt8(ascii: "0")) + 52
            case UInt8(ascii: "+"): value = 62
            case UInt8(ascii: "/"): value = 63
            case UInt8(ascii: "="):
                padding += 1
                continue
            default: return nil
            }
            guard padding == 0 else { return nil }
            accumulator = (accumulator << 6) | value
            bits += 6
            if bits >= 8 {
                bits -= 8
                bytes.append(UInt8((accumulator >> UInt32(bits)) & 0xFF))
            }
        }
        guard padding <= 2, (text.utf8.count % 4) == 0 else { return nil }
        return bytes
    }
}
