import Logging
public import Router

#if canImport(Glibc)
    import Glibc
#endif

/// `http_stats`: counts the entries it is given and serves a live dashboard (`/`), `/stats` (JSON), `/health`
/// and `/metrics` (Prometheus) about them and about every stage of the router, with a per-sender loss ledger.
///
/// The stage thread takes batches and updates the counts once per batch; the HTTP server (Hummingbird, on its own
/// event loops) only reads. The server starts with the stage and keeps answering through a graceful shutdown
/// (`/health` says `draining` with a 503) until the router has stopped.
public final class HTTPStatsOutput: OutputStage {
    /// The `http_stats` declaration.
    public static let declaration = StageDeclaration(
        type: "http_stats",
        summary: "Live dashboard (/), /stats JSON, /health and /metrics (Prometheus), with a per-sender loss ledger.",
        options: [
            OptionDeclaration(
                "address", .string, .defaultValue(.string("0.0.0.0")),
                "Address the HTTP server binds: an IPv4 or IPv6 literal or a host name. `0.0.0.0` listens on every "
                    + "IPv4 interface; the pages show entry text and sender names, so use 127.0.0.1 where that is "
                    + "private."),
            OptionDeclaration(
                "port", .integer(0...65535), .defaultValue(.integer(8080)),
                "TCP port; 0 picks a free one, logged in the `listening` line. A port already taken stops routerd "
                    + "before anything runs."),
            OptionDeclaration(
                "recent_errors", .integer(0...100_000), .defaultValue(.integer(100)),
                "How many of the newest error entries are kept for the dashboard and /stats (each up to about "
                    + "20 KiB: each text field is cut at 4 KiB). 0 keeps none."),
            OptionDeclaration(
                "error_levels", .list(.oneOf(Level.acceptedNames)),
                .defaultValue(.list([.string("ERROR"), .string("CRITICAL")])),
                "Levels whose entries go into the recent-errors list (and count in `recent_errors.seen`)."),
            OptionDeclaration(
                "ledger_max_senders", .integer(1...1_000_000), .defaultValue(.integer(10_000)),
                "Most senders (host, app) the loss ledger follows at once, about 600 bytes each; past it the "
                    + "least recently seen is evicted (counted). Too small and senders that come and go lose their "
                    + "history; each eviction is counted in `ledger.evictions`."),
        ],
        counters: [
            CounterDeclaration(
                "http_requests", label: "endpoint", values: HTTPStatsServer.endpoints,
                "HTTP requests answered, by endpoint.")
        ]
    )

    private let context: StageContext
    private let store: StatsStore
    private let server: HTTPStatsServer
    private let written: Counter

    /// Reads the options and checks that the address and port can be bound (the server starts in ``run(_:)``).
    public init(context: StageContext) throws {
        self.context = context
        let address = try context.options.string("address")
        let port = try context.options.integer("port")
        var levels: Set<Level> = []
        for name in try context.options.strings("error_levels") {
            guard let level = Level(name: name) else { throw StageError("'\(name)' is not a level") }
            levels.insert(level)
        }
        store = StatsStore(
            router: context.router, recentErrors: try context.options.integer("recent_errors"), errorLevels: levels,
            ledgerMaxSenders: try context.options.integer("ledger_max_senders"))
        try BindCheck.check(host: address, port: port)
        server = HTTPStatsServer(
            host: address, port: port, store: store, stageName: context.name, counters: context.counters,
            logger: context.logger, health: context.health)
        written = context.counters.counter("events_out", label: "port", value: "default")
    }

    /// Starts the server, counts every batch until the queue closes, then leaves the server answering (with
    /// `/health` at 503 `draining`) until the router has stopped.
    public func run(_ queue: OutputQueue) throws {
        server.start()
        while true {
            // Wake for a few thousand entries or every 100 ms, not for every batch: the page refreshes every 2 s,
            // and a wake-up per batch (futex, context switch) cost more than the counting itself at 200,000/s.
            switch queue.take(maxEvents: 8192, minEvents: 4096, timeout: .milliseconds(100)) {
            case .batches(let batches):
                var count = 0
                for batch in batches {
                    store.add(batch)
                    count += batch.count
                }
                written.add(count)
                for batch in batches { batch.settle(.written) }
                store.sampleDrops()
            case .timedOut:
                store.sampleDrops()
            case .closed:
                server.stop(whenStopped: context.router)
                return
            }
        }
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
