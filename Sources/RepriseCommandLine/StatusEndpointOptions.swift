import ArgumentParser
import Logging
import Metrics
import Prometheus
import RepriseHTTP
import RepriseLive
import ServiceLifecycle
import Synchronization

/// `--metrics-port` and `--metrics-host` of the long-running workers.
struct StatusEndpointOptions: ParsableArguments {
    @Option(help: "Port of the read-only HTTP endpoint: /metrics, /health, and for live also /status and the dashboard at / (0: off; default 9464 for live, 9465 for relay).")
    var metricsPort: Int?

    @Option(help: "Address the HTTP endpoint binds to.")
    var metricsHost = "127.0.0.1"

    func validate() throws {
        if let metricsPort, !(0...65_535).contains(metricsPort) { throw ValidationError("--metrics-port must be between 0 and 65535") }
    }

    /// The endpoint as a service, nil when turned off (`--metrics-port 0`).
    func service(
        defaultPort: Int, metrics: MetricsRegistry, status: StatusSnapshot.Source? = nil, logger: Logger
    ) -> (any Service)? {
        let port = metricsPort ?? defaultPort
        guard port != 0 else { return nil }
        let endpoint = StatusEndpoint(host: metricsHost, port: port, prometheus: Observability.prometheus, metrics: metrics, status: status)
        let host = metricsHost
        return endpoint.service(logger: logger) { bound in
            logger.info("http.listening", metadata: ["address": "\(host):\(bound)"])
        }
    }
}

/// What the executable bootstraps for its long-running commands: the Prometheus registry behind
/// swift-metrics, and the service group that runs a worker with its HTTP endpoint.
enum Observability {
    /// The process's Prometheus registry; swift-metrics is bootstrapped with it on first use.
    static var prometheus: PrometheusCollectorRegistry {
        registry.withLock { existing in
            if let existing { return existing }
            let made = PrometheusCollectorRegistry()
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: made))
            existing = made
            return made
        }
    }

    /// A worker's metrics, recorded into `prometheus`.
    static func workerMetrics() -> MetricsRegistry {
        MetricsRegistry(factory: PrometheusMetricsFactory(registry: prometheus))
    }

    private static let registry = Mutex<PrometheusCollectorRegistry?>(nil)

    /// Runs `worker` and the HTTP endpoint (if any) in one `ServiceGroup` until the worker returns.
    ///
    /// Shutdown order on SIGTERM/SIGINT (services stop in reverse order of start): the worker
    /// first (it finishes its chunk, commits, acknowledges and returns), then the HTTP endpoint,
    /// so `/metrics` and `/health` answer until the last chunk is committed. The command then
    /// logs `<name>.stopped` with exit code 0. A worker that fails stops the endpoint too and the
    /// command exits with the error's code.
    static func run(_ name: String, worker: WorkerService, endpoint: (any Service)?, logger: Logger) async throws {
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let endpoint { services.append(.init(service: endpoint, serviceName: "http")) }
        services.append(.init(
            service: worker, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup,
            serviceName: name))
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
        logger.info("\(name).stopped", metadata: ["exit_code": "0"])
    }
}
