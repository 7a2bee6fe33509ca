import ArgumentParser
import RepriseLive

/// `--metrics-port` and `--metrics-host` of the long-running workers.
struct StatusEndpointOptions: ParsableArguments {
    @Option(help: "Port of the read-only /metrics and /health endpoint (0: off; default 9464 for live, 9465 for relay).")
    var metricsPort: UInt16?

    @Option(help: "Address the metrics endpoint binds to.")
    var metricsHost = "127.0.0.1"

    /// Starts the endpoint unless turned off.
    func start(_ metrics: MetricsRegistry, defaultPort: UInt16) throws -> StatusServer? {
        let port = metricsPort ?? defaultPort
        guard port != 0 else { return nil }
        let server = try StatusServer(host: metricsHost, port: port, metrics: metrics)
        LogLine.emit("metrics.listening", [("address", "\(metricsHost):\(port)")])
        return server
    }
}
