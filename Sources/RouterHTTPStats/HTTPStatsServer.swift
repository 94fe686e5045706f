import Hummingbird
import Logging
import RouterCore
import ServiceLifecycle

/// The HTTP side of `http_stats`: a Hummingbird 2 application serving `/`, `/stats`, `/health` and `/metrics`
/// from a ``StatsStore``, on its own event loops: a service of the process's service group.
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
    private let metrics = MetricsRenderer()
    private let reloadAPI: Bool

    init(
        host: String, port: Int, store: StatsStore, stageName: String, counters: StageCounters, logger: Logger,
        health: StageHealth, reloadAPI: Bool = false
    ) {
        self.reloadAPI = reloadAPI
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

    private func makeApplication() -> some ApplicationProtocol {
        let routes = Hummingbird.Router(context: BasicRequestContext.self)
        let store = self.store
        let stageName = self.stageName
        let metrics = self.metrics
        let requests = self.requests
        routes.get("/") { _, _ -> Response in
            requests["dashboard"]?.add()
            return Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: DashboardPage.html)))
        }
        routes.get("/stats") { request, _ -> Response in
            requests["stats"]?.add()
            let limit = request.uri.queryParameters.get("ledger_limit", as: Int.self) ?? 100
            let body = StatsJSON.stats(store: store, stageName: stageName, ledgerLimit: max(0, limit))
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
                body: .init(byteBuffer: ByteBuffer(string: StatsJSON.healthBody(status, reasons))))
        }
        routes.get("/metrics") { _, _ -> Response in
            requests["metrics"]?.add()
            let text = metrics.render(store: store, stageName: stageName)
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
        return Application(
            router: routes,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port)),
            onServerRunning: { channel in
                var address = "\(channel.localAddress?.ipAddress ?? "?")"
                if address.contains(":") { address = "[\(address)]" }
                address += ":\(channel.localAddress?.port ?? 0)"
                logger.info("listening", metadata: ["address": "\(address)"])
            },
            logger: quiet)
    }
}
