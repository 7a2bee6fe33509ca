import Hummingbird
import Logging
import Prometheus
import RepriseEngine
import RepriseLive
import RepriseSupport
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The read-only HTTP endpoint of `reprise live`, `reprise relay` and `reprise dashboard`
/// (Hummingbird): `GET /metrics` (Prometheus text from the registry the executable bootstrapped),
/// `GET /health`, `GET /status` (the JSON of `reprise status --json`) and `GET /` (the dashboard).
/// Only GET routes exist: nothing here changes state. Binds 127.0.0.1 unless told otherwise.
///
/// ```swift
/// let endpoint = StatusEndpoint(host: "127.0.0.1", port: 9464, prometheus: registry, metrics: metrics, status: source)
/// let group = ServiceGroup(configuration: .init(services: [.init(service: endpoint.service(logger: logger)), …], logger: logger))
/// ```
public struct StatusEndpoint: Sendable {
    public var host: String
    public var port: Int
    /// The registry behind `/metrics` (nil: no `/metrics`).
    public var prometheus: PrometheusCollectorRegistry?
    /// The worker's registry: its heartbeat drives `/health`, its uptime gauge is refreshed per scrape.
    public var metrics: MetricsRegistry?
    /// A worker is unhealthy when its loop has not beaten for this long.
    public var healthyWithinSeconds: Double = 30
    /// Where `/status` and the dashboard read from (nil: neither is served).
    public var status: StatusSnapshot.Source?
    /// Seconds between the dashboard's own refreshes.
    public var refreshSeconds = 5

    public init(host: String = "127.0.0.1", port: Int, prometheus: PrometheusCollectorRegistry? = nil, metrics: MetricsRegistry? = nil, status: StatusSnapshot.Source? = nil) {
        self.host = host
        self.port = port
        self.prometheus = prometheus
        self.metrics = metrics
        self.status = status
    }

    /// The Hummingbird application as a `Service`; `onListening` receives the bound port (useful with port 0).
    public func service(logger: Logger, onListening: @escaping @Sendable (Int) async -> Void = { _ in }) -> some Service {
        Application(
            router: router(logger: logger),
            configuration: .init(address: .hostname(host, port: port), serverName: "reprise"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    func router(logger: Logger) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: ReadOnlyMiddleware())
        let endpoint = self
        if let prometheus {
            router.get("metrics") { _, _ -> Response in
                endpoint.metrics?.recordUptime()
                return Self.response(prometheus.emitToString(), type: "text/plain; version=0.0.4; charset=utf-8")
            }
        }
        router.get("health") { _, _ -> Response in
            let age = endpoint.metrics?.secondsSinceHeartbeat ?? 0
            let healthy = age <= endpoint.healthyWithinSeconds
            return Self.response(
                "{\"status\":\"\(healthy ? "ok" : "stalled")\",\"seconds_since_progress\":\(Int(age))}\n",
                type: "application/json", status: healthy ? .ok : .serviceUnavailable)
        }
        if let source = status {
            let redactor = SecretRedactor(secrets: [source.postgresURL, source.mysqlURL].map { try? ConnectionURL($0).password })
            router.get("status") { _, _ -> Response in
                do {
                    let snapshot = try await StatusSnapshot.read(source)
                    return Self.response(ProjectionStatus.jsonText(snapshot.projections) + "\n", type: "application/json")
                } catch {
                    logger.warning("status.unavailable", metadata: ["error": "\(redactor.redact("\(error)"))"])
                    return Self.response(
                        "{\"error\":\(JSONText.quoted(redactor.redact("\(error)")))}\n", type: "application/json", status: .serviceUnavailable)
                }
            }
            let page: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
                let now = Self.now()
                do {
                    let snapshot = try await StatusSnapshot.read(source)
                    return Self.response(DashboardPage.render(snapshot, refreshSeconds: endpoint.refreshSeconds, now: now), type: "text/html; charset=utf-8")
                } catch {
                    logger.warning("dashboard.unavailable", metadata: ["error": "\(redactor.redact("\(error)"))"])
                    return Self.response(
                        DashboardPage.renderUnavailable(redactor.redact("\(error)"), refreshSeconds: endpoint.refreshSeconds, now: now),
                        type: "text/html; charset=utf-8", status: .serviceUnavailable)
                }
            }
            router.get("/", use: page)
            router.get("dashboard", use: page)
        }
        return router
    }

    private static func response(_ body: String, type: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: type, .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// Seconds since 1970 (UTC), without Foundation.
    static func now() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}

/// Answers every method but GET and HEAD with 405: the endpoint changes nothing.
struct ReadOnlyMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .get || request.method == .head else {
            return Response(
                status: .methodNotAllowed, headers: [.allow: "GET, HEAD", .contentType: "text/plain"],
                body: .init(byteBuffer: ByteBuffer(string: "read-only: GET /metrics, /health, /status or /\n")))
        }
        return try await next(request, context)
    }
}
