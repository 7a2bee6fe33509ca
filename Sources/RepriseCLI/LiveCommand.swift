import ArgumentParser
import RepriseEngine
import RepriseLive

struct LiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live",
        abstract: "Keep projections current from RabbitMQ messages published by the relay.",
        discussion: """
            Applies events to the active build of each projection (run `reprise rebuild` first),
            with the same handlers as the rebuild. On start it catches up from its checkpoint to the
            head of the event store, then consumes its queue (bound to the handled event types, with a
            parked queue for poison events). Messages are acknowledged after the MySQL commit.
            Duplicates and redeliveries change nothing; gaps are read from the event store. After a
            rebuild swaps new tables in, the worker continues on the new build without a restart.
            SIGTERM/SIGINT finish the batch, commit, acknowledge and exit. Logs are JSON lines on
            standard error.
            """)

    @Argument(help: "Projection names (files in the projections folder).")
    var projections: [String] = []

    @Flag(help: "Every projection in the projections folder.")
    var all = false

    @Option(help: "Folder of projection files.")
    var projectionsDir = "projections"

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var eventSource: SourceOptions
    @OptionGroup var mysql: MySQLOptions
    @OptionGroup var amqp: AMQPOptions

    @Option(help: "Exchange the relay publishes to.")
    var exchange = "reprise.events"

    @Option(help: "Work queue name (its parked queue is <queue>.parked).")
    var queue = "reprise.live"

    @Option(help: "Events per chunk transaction.")
    var chunkSize = 1_000

    @Option(help: "Milliseconds to gather messages into one batch after the first.")
    var batchWindowMs = 20

    @Option(help: "Milliseconds between catch-up rounds when no message arrives (drives a mapped --source that has no outbox).")
    var pollMs = 1_000

    @Option(help: "What to do with an event whose handler keeps failing: park-stream or stop.")
    var onPoison: String = LiveWorker.PoisonPolicy.parkStream.rawValue

    @OptionGroup var status: StatusEndpointOptions

    func validate() throws {
        guard all != !projections.isEmpty else { throw ValidationError("name the projections, or pass --all (not both)") }
        guard LiveWorker.PoisonPolicy(rawValue: onPoison) != nil else { throw ValidationError("--on-poison must be park-stream or stop") }
        guard chunkSize > 0 else { throw ValidationError("--chunk-size must be positive") }
        guard batchWindowMs >= 0 else { throw ValidationError("--batch-window-ms cannot be negative") }
        guard pollMs > 0 else { throw ValidationError("--poll-ms must be positive") }
    }

    func run() async throws {
        try await reportingFailures {
            let catalog = try ProjectionCatalog.load(directory: projectionsDir)
            let selected = try all ? catalog.all : projections.map { try catalog.projection(named: $0) }
            var configuration = LiveWorker.Configuration(
                postgresURL: try postgres.resolvedURL(), mysqlURL: try mysql.resolvedURL(), amqpURL: try amqp.resolvedURL())
            configuration.storeSchema = try postgres.eventStoreSchema()
            configuration.source = try eventSource.eventSource(postgres)
            configuration.exchange = exchange
            configuration.queue = queue
            configuration.chunkSize = chunkSize
            configuration.batchWindow = .milliseconds(batchWindowMs)
            configuration.pollInterval = .milliseconds(pollMs)
            if let fault = FaultInjection.liveBeforeAck() { configuration.beforeAck = fault }
            configuration.poisonPolicy = LiveWorker.PoisonPolicy(rawValue: onPoison) ?? .parkStream
            let stop = StopSignal()
            Signals.stop(stop)
            let metrics = MetricsRegistry()
            let server = try status.start(metrics, defaultPort: 9464)
            LogLine.emit("live.starting", [("projections", selected.map(\.definition.name).joined(separator: ",")), ("queue", queue)])
            let directory = projectionsDir
            // After a migration swaps in another version, the worker reloads the projection files to find it.
            let resolve: @Sendable (String, Int, String) throws -> RunnableProjection? = { name, version, hash in
                try ProjectionCatalog.load(directory: directory).all.first {
                    $0.definition.name == name && $0.definition.version == version && $0.definition.definitionHash == hash
                }
            }
            try await LiveWorker(configuration, projections: selected, resolve: resolve).run(stop: stop, metrics: metrics) { event in
                switch event {
                case .caughtUp(let events): LogLine.emit("live.caught_up", [("events", events)])
                case .applied(let projection, let events, let messages, let redelivered, let seconds):
                    LogLine.emit("live.applied", [("projection", projection), ("events", events), ("messages", messages), ("redelivered", redelivered), ("seconds", seconds)])
                case .followedNewBuild(let projection, let from, let to):
                    LogLine.emit("live.followed_new_build", [("projection", projection), ("from_build", from), ("to_build", to)])
                case .parked(let projection, let stream, let position, let error):
                    LogLine.emit("live.parked", [("projection", projection), ("stream", stream), ("position", position), ("error", error)], level: "error")
                case .released(let projection, let stream): LogLine.emit("live.released", [("projection", projection), ("stream", stream)])
                case .retrying(let error, let attempt): LogLine.emit("live.retrying", [("error", error), ("attempt", attempt)], level: "warn")
                case .brokerUnavailable(let error): LogLine.emit("live.broker_unavailable", [("error", error)], level: "warn")
                case .storeUnavailable(let error, let attempt): LogLine.emit("live.store_unavailable", [("error", error), ("attempt", String(attempt))], level: "warn")
                }
            }
            server?.stop()
            LogLine.emit("live.stopped")
        }
    }
}
