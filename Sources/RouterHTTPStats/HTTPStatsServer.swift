import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import Logging
import NIOSSL
import RouterCore
import ServiceLifecycle

/// The HTTP side of `http_stats`: a Hummingbird 2 application serving `/`, `/stats`, `/health` and `/metrics`
/// from a ``StatsStore``, on its own event loops: a service of the process's service group.
///
/// Every response carries a strict Content-Security-Policy (scripts and styles from this server only, nothing
/// inline, no frames, no forms), `HEAD` answers wherever `GET` does, ``HTTPAccess`` refuses requests without the
/// configured credentials, and ``HTTPLimits`` bounds what one client can hold.
final class HTTPStatsServer: Service {
    /// The endpoints, as the `http_requests{endpoint}` counter names them.
    static let endpoints = ["dashboard", "stats", "health", "metrics", "reload"]

    private let host: String
    private let port: Int
    private let store: StatsStore
    private let stageName: String
    private let logger: Logger
    private let health: StageHealth
    private let requests: [String: StageCounter]
    private let unauthorized: StageCounter
    private let metrics = MetricsRenderer()
    private let access: HTTPAccess
    private let limits: HTTPLimits
    private let tls: TLSConfiguration?
    private let reloadAPI: Bool

    init(
        host: String, port: Int, store: StatsStore, stageName: String, counters: StageCounters, logger: Logger,
        health: StageHealth, access: HTTPAccess, limits: HTTPLimits, tls: TLSConfiguration?, reloadAPI: Bool = false
    ) {
        self.access = access
        self.limits = limits
        self.tls = tls
        self.reloadAPI = reloadAPI
        unauthorized = counters.counter("http_unauthorized")
        self.host = host
        self.port = port
        self.store = store
        self.stageName = stageName
        self.logger = logger
        self.health = health
        var requests: [String: StageCounter] = [:]
        for endpoint in HTTPStatsServer.endpoints {
            requests[endpoint] = counters.counter("http_requests", label: "endpoint", value: endpoint)
        }
        self.requests = requests
    }

    /// Serves until the service group's graceful shutdown reaches it (after the router has drained, when the
    /// router's service comes after it in the group); a failure to serve is logged and marks the stage degraded.
    func run() async throws {
        do {
            try await makeApplication().run()
        } catch {
            guard !Task.isCancelled else { return }
            health.set(.degraded("HTTP server stopped: \(error)"))
            logger.error("HTTP server stopped", metadata: ["error": "\(error)"])
        }
    }

    /// The headers every response carries: the page's own script and style only (`'self'`, nothing inline, so an
    /// entry's text that slipped into the markup could not run), fetches to this server only, no frames of it.
    static let securityHeaders: HTTPFields = {
        var fields = HTTPFields()
        for (name, value) in [
            (
                "Content-Security-Policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
                    + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
            ("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer"),
        ] {
            if let name = HTTPField.Name(name) { fields[name] = value }
        }
        return fields
    }()

    private func makeApplication() throws -> some ApplicationProtocol {
        let routes = Hummingbird.Router(context: BasicRequestContext.self, options: .autoGenerateHeadEndpoints)
        routes.add(middleware: SecurityHeadersMiddleware())
        routes.add(middleware: AccessMiddleware(access: access, refused: unauthorized))
        let store = self.store
        let stageName = self.stageName
        let metrics = self.metrics
        let requests = self.requests
        for (path, body, type) in [
            ("/", DashboardPage.html, "text/html; charset=utf-8"),
            ("/dashboard.js", DashboardPage.script, "text/javascript; charset=utf-8"),
            ("/dashboard.css", DashboardPage.style, "text/css; charset=utf-8"),
        ] {
            let bytes = ByteBuffer(string: body)
            routes.get(RouterPath(path)) { _, _ -> Response in
                requests["dashboard"]?.add()
                return Response(
                    status: .ok, headers: [.contentType: type, .cacheControl: "no-store"],
                    body: .init(byteBuffer: bytes))
            }
        }
        let defaultLedgerLimit = 100
        let sharedStats = SharedRender {
            StatsJSON.stats(store: store, stageName: stageName, ledgerLimit: defaultLedgerLimit)
        }
        routes.get("/stats") { request, _ -> Response in
            requests["stats"]?.add()
            let limit = request.uri.queryParameters.get("ledger_limit", as: Int.self) ?? defaultLedgerLimit
            let body =
                limit == defaultLedgerLimit
                ? await sharedStats.body()
                : StatsJSON.stats(store: store, stageName: stageName, ledgerLimit: max(0, limit))
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        routes.get("/health") { _, _ -> Response in
            requests["health"]?.add()
            let (status, reasons) = store.health()
            return Response(
                status: status == .draining ? .serviceUnavailable : .ok,
                headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(
                    byteBuffer: ByteBuffer(string: StatsJSON.healthBody(status, reasons, notes: store.healthNotes()))))
        }
        let sharedMetrics = SharedRender { metrics.render(store: store, stageName: stageName) }
        routes.get("/metrics") { _, _ -> Response in
            requests["metrics"]?.add()
            let text = await sharedMetrics.body()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        if reloadAPI {
            // `reload_api: true`: the same reload as SIGHUP; answered when it is done (after one already running).
            routes.post("/reload") { _, _ -> Response in
                requests["reload"]?.add()
                guard let attempt = await store.router.requestReload() else {
                    return Response(
                        status: .serviceUnavailable, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(string: "{\"error\":\"this router cannot reload\"}")))
                }
                return Response(
                    status: attempt.applied ? .ok : .unprocessableContent,
                    headers: [.contentType: "application/json", .cacheControl: "no-store"],
                    body: .init(byteBuffer: ByteBuffer(string: StatsJSON.reloadBody(attempt))))
            }
        }
        // Hummingbird's own lines (one per request at debug, its start line at info) are not routerd's log.
        var quiet = logger
        quiet.logLevel = .warning
        let logger = self.logger
        let http1 = limits.http1()
        let server = try tls.map { try HTTPServerBuilder.tls(http1, tlsConfiguration: $0) } ?? http1
        let scheme = tls == nil ? "http" : "https"
        let accessSummary = access.summary
        return Application(
            router: routes, server: server,
            configuration: ApplicationConfiguration(
                address: .hostname(host, port: port),
                availableConnectionsDelegate: MaximumAvailableConnections(limits.maxConnections, logger: quiet)),
            onServerRunning: { channel in
                var address = "\(channel.localAddress?.ipAddress ?? "?")"
                if address.contains(":") { address = "[\(address)]" }
                address += ":\(channel.localAddress?.port ?? 0)"
                logger.info(
                    "listening", metadata: ["address": "\(address)", "scheme": "\(scheme)", "auth": "\(accessSummary)"])
            },
            logger: quiet)
    }
}

/// Adds ``HTTPStatsServer/securityHeaders`` to every response, the 401s and 404s included.
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        for field in HTTPStatsServer.securityHeaders { response.headers[field.name] = field.value }
        return response
    }
}
