import Logging
public import RouterCore
public import ServiceLifecycle

#if canImport(Glibc)
    import Glibc
#endif

/// `http_stats`: counts the entries it is given and serves a live dashboard (`/`), `/stats` (JSON), `/health`
/// and `/metrics` (Prometheus) about them and about every stage of the router, with a per-sender loss ledger.
///
/// The stage thread takes batches and updates the counts once per batch; the HTTP server (Hummingbird, on its own
/// event loops) only reads. The server is a service of the process's service group (``services``), shut down after
/// the router: it keeps answering through a graceful shutdown (`/health` says `draining` with a 503) until the
/// router has stopped.
public final class HTTPStatsOutput: OutputStage, ServiceProviding {
    /// The `http_stats` declaration.
    public static let declaration = StageDeclaration(
        type: "http_stats",
        summary: "Live dashboard (/), /stats JSON, /health and /metrics (Prometheus), with a per-sender loss ledger.",
        options: [
            address, port, recentErrors, errorLevels, ledgerMaxSenders, authToken, authUser, authPassword,
            publicHealth, tlsCertificate, tlsKey, maxHeadBytes, headerTimeout, maxConnections, reloadAPI,
        ],
        counters: [
            CounterDeclaration(
                "http_requests", label: "endpoint", values: HTTPStatsServer.endpoints,
                "HTTP requests answered, by endpoint (`dashboard` counts the page, its script and its style)."),
            CounterDeclaration(
                "http_unauthorized",
                "HTTP requests refused with 401 for want of the `auth_token` or `auth_user` credentials."),
        ],
        example: StageExample("address: 127.0.0.1\nport: ${EXAMPLE_PORT}"),
        validate: { options in HTTPAccess.problems(options) }
    )

    static let address = StageOption<String>.string(
        "address", default: "0.0.0.0",
        "Address the HTTP server binds: an IPv4 or IPv6 literal or a host name. `0.0.0.0` listens on every IPv4 "
            + "interface; the pages show entry text and sender names, so use 127.0.0.1 where that is private.")
    static let port = StageOption<Int>.integer(
        "port", 0...65535, default: 8080,
        "TCP port; 0 picks a free one, logged in the `listening` line. A port already taken stops routerd before "
            + "anything runs.")
    static let recentErrors = StageOption<Int>.integer(
        "recent_errors", 0...100_000, default: 100,
        "How many of the newest error entries are kept for the dashboard and /stats (each up to about 20 KiB: each "
            + "text field is cut at 4 KiB). 0 keeps none.")
    static let errorLevels = StageOption<[String]>.strings(
        "error_levels", of: .oneOf(Level.acceptedNames), default: ["ERROR", "CRITICAL"],
        "Levels whose entries go into the recent-errors list (and count in `recent_errors.seen`).")
    static let ledgerMaxSenders = StageOption<Int>.integer(
        "ledger_max_senders", 1...1_000_000, default: 10_000,
        "Most senders (host, app) the loss ledger follows at once, about 600 bytes each; past it the least recently "
            + "seen is evicted (counted). Too small and senders that come and go lose their history; each eviction "
            + "is counted in `ledger.evictions`.")

    static let authToken = StageOption<String?>.optionalString(
        "auth_token",
        "A bearer token every request but `/health` must carry (`Authorization: Bearer <token>`), usually "
            + "`\"${DASHBOARD_TOKEN:?set DASHBOARD_TOKEN}\"` so that it comes from the environment. Without it (and "
            + "without `auth_user`) the dashboard is open to whoever reaches the port. Never logged, never in /stats.")
    static let authUser = StageOption<String?>.optionalString(
        "auth_user",
        "The HTTP basic user name a browser signs in with (with `auth_password`); a request may carry either these "
            + "credentials or `auth_token`. Anything else but `/health` gets a 401.")
    static let authPassword = StageOption<String?>.optionalString(
        "auth_password",
        "The HTTP basic password, usually `\"${DASHBOARD_PASSWORD:?set DASHBOARD_PASSWORD}\"`; required with "
            + "`auth_user`. Never logged, never in /stats. Sent in the clear without `tls_certificate`.")
    static let publicHealth = StageOption<Bool>.bool(
        "public_health", default: true,
        "Whether `/health` answers without credentials when `auth_token` or `auth_user` is set, so that a liveness "
            + "probe needs none; it shows health reasons (stage names and errors), so `false` where those are private.")
    static let tlsCertificate = StageOption<String?>.optionalString(
        "tls_certificate",
        "PEM file with the server certificate (and its chain) to serve HTTPS with, with `tls_key`; read at start, "
            + "a file that cannot be read stops routerd before anything runs. Without it the server speaks plain HTTP.")
    static let tlsKey = StageOption<String?>.optionalString(
        "tls_key", "PEM file with the private key of `tls_certificate`; required with it.")
    static let maxHeadBytes = StageOption<Int>.size(
        "max_head_bytes", 1024...1_048_576, default: 16384,
        "Largest request head (request line and headers) the server reads; a larger one is answered 400 and the "
            + "connection closed at once, so a client holds at most this much of routerd's memory per connection.")
    static let headerTimeout = StageOption<Duration>.duration(
        "header_timeout", .milliseconds(100)...(.seconds(3600)), default: .seconds(10),
        "Longest a client may take to send a whole request (its head and any body), counted from when its "
            + "connection opens or from the end of the previous response; past it the connection is closed. This "
            + "is also how long an idle keep-alive connection stays open. Too long, and clients that send a byte "
            + "now and then hold connections (see `max_connections`).")
    static let maxConnections = StageOption<Int>.integer(
        "max_connections", 1...100_000, default: 256,
        "Most connections open at once; past it new ones wait in the kernel's listen queue (256) until one "
            + "closes, and past that are refused. Each open connection holds up to `max_head_bytes` and a few KiB.")
    static let reloadAPI = StageOption<Bool>.bool(
        "reload_api", default: false,
        "Serve `POST /reload`, which reloads the config as SIGHUP does and answers with the outcome (200 applied, 422 "
            + "refused, with every error). Anyone who reaches the port can then reload: keep the address private.")

    private let context: StageContext
    private let store: StatsStore
    private let server: HTTPStatsServer

    /// Reads the options and checks that the address and port can be bound (the server starts with the writer).
    public init(context: StageContext) throws {
        self.context = context
        let options = context.options
        let address = try options.value(Self.address)
        let port = try options.value(Self.port)
        var levels: Set<Level> = []
        for name in try options.value(Self.errorLevels) {
            guard let level = Level(name: name) else { throw StageError(.internalError, "'\(name)' is not a level") }
            levels.insert(level)
        }
        store = StatsStore(
            router: context.router, recentErrors: try options.value(Self.recentErrors), errorLevels: levels,
            ledgerMaxSenders: try options.value(Self.ledgerMaxSenders))
        try BindCheck.check(host: address, port: port)
        let access = try HTTPAccess(options: options)
        let limits = HTTPLimits(
            maxHeadBytes: try options.value(Self.maxHeadBytes), headerTimeout: try options.value(Self.headerTimeout),
            maxConnections: try options.value(Self.maxConnections))
        let tls = try HTTPTLS.configuration(
            certificate: try options.value(Self.tlsCertificate), key: try options.value(Self.tlsKey))
        server = HTTPStatsServer(
            host: address, port: port, store: store, stageName: context.name, counters: context.counters,
            logger: context.logger, health: context.health, access: access, limits: limits, tls: tls,
            reloadAPI: try options.value(Self.reloadAPI))
    }

    /// Wakes for a few thousand entries or every 100 ms, not for every batch: the page refreshes every 2 s, and a
    /// wake-up per batch (futex, context switch) cost more than the counting itself at 200,000/s.
    public var traits: OutputTraits {
        OutputTraits(
            maxGroupEvents: 8192, flushCount: 4096, flushInterval: .milliseconds(100), tickInterval: .milliseconds(100))
    }

    /// The HTTP server, run by the process's service group.
    public var services: [any Service] { [server] }

    /// The writer, on the output's thread.
    public func makeWriter() -> Writer { Writer(store: store) }

    /// Counts what it is given, once per batch.
    public struct Writer: OutputWriter {
        let store: StatsStore

        /// Counts every batch once.
        public func write(_ group: WriteGroup) -> WriteOutcome {
            for batch in group.batches { store.add(batch) }
            store.sampleDrops()
            return .written
        }

        /// Samples the drop counters for the page's recent-drops view.
        public func tick() { store.sampleDrops() }
    }
}

/// Binds and closes a TCP socket on the address, so that a port already taken or an address that is not this
/// machine's fails while the router is built, before anything runs.
enum BindCheck {
    static func check(host: String, port: Int) throws {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            let text = status == 0 ? "no address" : String(cString: gai_strerror(status))
            throw StageError("cannot resolve address '\(host)': \(text)")
        }
        defer { freeaddrinfo(list) }
        let descriptor = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard descriptor >= 0 else { throw StageError("cannot make a TCP socket: \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var one: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(descriptor, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            throw StageError("cannot bind \(host):\(port): \(String(cString: strerror(errno)))")
        }
    }
}
