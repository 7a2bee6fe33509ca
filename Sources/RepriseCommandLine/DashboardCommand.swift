import ArgumentParser
import Logging
import RepriseEngine
#if HTTP
import RepriseHTTP
#endif
import RepriseLive
import ServiceLifecycle

struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve a read-only status page: projections, lag, rebuilds in progress, partitions, parked streams.",
        discussion: """
            The page shows the data of `reprise status`: every projection with its active version and \
            build, its lag in events and seconds, rebuilds and migrations in progress with a progress bar \
            and ETA, rebuild and live partitions with their owners and heartbeats, parked streams with \
            their error, and retired builds available for rollback. It refreshes itself (a meta refresh), \
            uses no script and nothing from the internet, and changes nothing: only GET is served. \
            /status serves the JSON of `reprise status --json`. Binds 127.0.0.1 unless --host says \
            otherwise. The endpoints of `reprise live` serve the same page. SIGTERM/SIGINT stop it.
            """)

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var eventSource: SourceOptions
    @OptionGroup var mysql: MySQLOptions

    @Option(help: "Folder of projection files (for the lag of each live partition).")
    var projectionsDir = "projections"

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port, logged).")
    var port = 9470

    @Option(help: "Seconds between the page's own refreshes.")
    var refreshSeconds = 5

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard (0...65_535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard refreshSeconds >= 1 else { throw ValidationError("--refresh-seconds must be at least 1") }
    }

    func run() async throws {
        #if HTTP
        try await reportingFailures {
            let postgresURL = try postgres.resolvedURL(), mysqlURL = try mysql.resolvedURL()
            let logger = logging.bootstrap("reprise.dashboard", hidingPasswordsOf: [postgresURL, mysqlURL])
            let definitions = Dictionary(
                ((try? ProjectionCatalog.load(directory: projectionsDir).all) ?? []).map { ($0.definition.name, $0.definition) }, uniquingKeysWith: { $1 })
            var endpoint = StatusEndpoint(
                host: host, port: port,
                status: .init(postgresURL: postgresURL, mysqlURL: mysqlURL, eventSource: try eventSource.eventSource(postgres), definitions: definitions))
            endpoint.refreshSeconds = refreshSeconds
            let host = self.host
            let http = endpoint.service(logger: logger) { bound in
                logger.info("dashboard.listening", metadata: ["url": "http://\(host):\(bound)/"])
            }
            let group = ServiceGroup(configuration: .init(
                services: [.init(service: http, serviceName: "dashboard")], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            try await group.run()
            logger.info("dashboard.stopped", metadata: ["exit_code": "0"])
        }
        #else
        try await reportingFailures { throw HTTPNotBuilt(what: "reprise dashboard") }
        #endif
    }
}
