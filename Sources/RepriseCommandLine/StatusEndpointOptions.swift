import ArgumentParser
import Logging
import Metrics
import Prometheus
#if HTTP
import RepriseHTTP
#endif
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

    /// The endpoint as a service, nil when turned off (`--metrics-port 0`). `status` is what the
    /// live worker's /status and dashboard read.
    func service(
        defaultPort: Int, metrics: MetricsRegistry, status: StatusSnapshot.Source? = nil, logger: Logger
    ) throws -> (any Service)? {
        let port = metricsPort ?? defaultPort
        guard port != 0 else { return nil }
        #if HTTP
        let endpoint = StatusEndpoint(host: metricsHost, port: port, prometheus: Observability.prometheus, metrics: metrics, status: status)
        let host = metricsHost
        return endpoint.service(logger: logger) { bound in
            logger.info("http.listening", metadata: ["address": "\(host):\(bound)"])
        }
        #else
        // Asked for explicitly: an error. By default the worker runs without it and says so.
        if metricsPort != nil { throw HTTPNotBuilt(what: "--metrics-port") }
        logger.notice("http.not_built", metadata: ["reason": "built without the HTTP trait; no /metrics, /health or /status"])
        return nil
        #endif
    }
}

/// A feature of the HTTP trait asked of a `reprise` built without it (scripts/demo builds so).
struct HTTPNotBuilt: Error, CustomStringConvertible {
    var what: String
    var description: String {
        "\(what) needs the HTTP endpoints, and this binary was built without them (the package's HTTP trait "
            + "is off, as in the lean build of scripts/demo); build with the trait on, the default: `swift build -c release --product reprise`"
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
            let prometheus = PrometheusMetricsFactory(registry: made)
            let own = CommandLineContext.metricsFactories
            MetricsSystem.bootstrap(own.isEmpty ? prometheus : MultiplexMetricsHandler(factories: [prometheus] + own))
            existing = made
            return made
        }
    }

    /// A worker's metrics: into `prometheus`, and the team's own backends given to `Reprise.main`.
    static func workerMetrics() -> MetricsRegistry {
        _ = prometheus
        return MetricsRegistry(factory: MetricsSystem.factory)
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
