import ArgumentParser
import Logging
import RepriseEngine
import RepriseLive

struct LiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "live",
        abstract: "Keep projections current from RabbitMQ messages published by the relay.",
        discussion: """
            Applies events to the active build of each projection (run `reprise rebuild` first), \
            with the same handlers as the rebuild. On start it catches up from its checkpoint to the \
            head of the event store, then consumes its queue (bound to the handled event types, with a \
            parked queue for poison events). Messages are acknowledged after the MySQL commit. \
            Duplicates and redeliveries change nothing; gaps are read from the event store. After a \
            rebuild swaps new tables in, the worker continues on the new build without a restart. \
            SIGTERM/SIGINT finish the batch, commit, acknowledge and exit 0 (the HTTP endpoint stops \
            last). Logs go to standard error: text on a terminal, JSON lines otherwise (--log-format). \
            The endpoint (--metrics-port, default 9464, 127.0.0.1) serves /metrics, /health, /status \
            and the status page at /.

            With --partitions N, any number of `reprise live` processes (same N, same --queue) share \
            the work: the events of each projection are split into N live partitions by the hash of \
            its partition_key, each with its own queue (the relay routes by stream), its own \
            checkpoint and one consumer at a time. A process takes its fair share of partitions \
            (or --max-partitions), gives some back when others join, and takes over the partitions \
            of a process that died. Every projection needs a partition_key. An unpartitioned live \
            worker, a group of another size or a rollback merges the partitions back into one \
            checkpoint first (refused while consumers of the partitions run).
            """)

    @OptionGroup var selection: ProjectionSelection

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

    @Option(help: "Split the work into this many live partitions shared by every `reprise live` with the same --partitions and --queue (1 to 256).")
    var partitions: Int?

    @Option(help: "With --partitions: apply at most this many partitions in this process (default: a fair share of the running processes).")
    var maxPartitions: Int?

    @Option(help: "With --partitions: this process's name in `reprise status` (default: host:pid).")
    var worker: String?

    @Option(help: ArgumentHelp(
        "With --partitions: a partition whose owner applied and looked at nothing for this long is taken from it (its sessions are ended).",
        valueName: "seconds"))
    var leaseSeconds = 60

    @Option(help: "What to do with an event whose handler keeps failing: park-stream or stop.")
    var onPoison: String = LiveWorker.PoisonPolicy.parkStream.rawValue

    @OptionGroup var status: StatusEndpointOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard LiveWorker.PoisonPolicy(rawValue: onPoison) != nil else { throw ValidationError("--on-poison must be park-stream or stop") }
        guard chunkSize > 0 else { throw ValidationError("--chunk-size must be positive") }
        guard batchWindowMs >= 0 else { throw ValidationError("--batch-window-ms cannot be negative") }
        guard pollMs > 0 else { throw ValidationError("--poll-ms must be positive") }
        if let partitions, !(1...256).contains(partitions) { throw ValidationError("--partitions must be between 1 and 256") }
        if let maxPartitions, maxPartitions < 1 { throw ValidationError("--max-partitions must be at least 1") }
        if partitions == nil, maxPartitions != nil || worker != nil { throw ValidationError("--max-partitions and --worker are for partitioned live workers: give --partitions too") }
        guard leaseSeconds >= 1 else { throw ValidationError("--lease-seconds must be at least 1") }
        // An idle owner records its heartbeat once per look at the store (every --poll-ms).
        if partitions != nil, leaseSeconds * 1_000 < 5 * pollMs {
            throw ValidationError("--lease-seconds must be at least five times --poll-ms, or idle owners would lose their partitions")
        }
    }

    func run() async throws {
        try await reportingFailures {
            let selected = try selection.selected()
            var configuration = LiveWorker.Configuration(
                postgresURL: try postgres.resolvedURL(), mysqlURL: try mysql.resolvedURL(), amqpURL: try amqp.resolvedURL())
            configuration.storeSchema = try postgres.eventStoreSchema()
            configuration.source = try eventSource.eventSource(postgres)
            configuration.exchange = exchange
            configuration.queue = queue
            configuration.chunkSize = chunkSize
            configuration.batchWindow = .milliseconds(batchWindowMs)
            configuration.pollInterval = .milliseconds(pollMs)
            if let fault = CommandLineContext.hooks.liveBeforeAck { configuration.beforeAck = fault }
            configuration.poisonPolicy = LiveWorker.PoisonPolicy(rawValue: onPoison) ?? .parkStream
            let logger = logging.bootstrap("reprise.live", hidingPasswordsOf: [configuration.postgresURL, configuration.mysqlURL, configuration.amqpURL])
            let metrics = Observability.workerMetrics()
            let definitions = Dictionary(selected.map { ($0.definition.name, $0.definition) }, uniquingKeysWith: { $1 })
            let statusSource = StatusSnapshot.Source(
                postgresURL: configuration.postgresURL, mysqlURL: configuration.mysqlURL,
                eventSource: configuration.source ?? .reprise(configuration.storeSchema), definitions: definitions)
            let endpoint = try status.service(defaultPort: 9464, metrics: metrics, status: statusSource, logger: logger)
            logger.info("live.starting", metadata: ["projections": "\(selected.map(\.definition.name).joined(separator: ","))", "queue": "\(queue)"])
            let directory = selection.projectionsDir
            // After a migration swaps in another version, the worker reloads the projection files to find it.
            let resolve: @Sendable (String, Int, String) throws -> RunnableProjection? = { name, version, hash in
                try ProjectionCatalog.load(directory: directory).all.first {
                    $0.definition.name == name && $0.definition.version == version && $0.definition.definitionHash == hash
                }
            }
            let service: WorkerService
            if let partitions {
                let group = PartitionedLiveWorker(
                    configuration, partitions: partitions, maxPartitions: maxPartitions, owner: worker ?? RebuildCommand.defaultWorkerName(),
                    leaseSeconds: leaseSeconds, projections: selected, resolve: resolve)
                service = WorkerService(name: "live", logger: logger) { stop in
                    try await group.run(stop: stop, metrics: metrics) { $0.log(to: logger, partitions: partitions) }
                }
            } else {
                let live = LiveWorker(configuration, projections: selected, resolve: resolve)
                service = WorkerService(name: "live", logger: logger) { stop in
                    try await live.run(stop: stop, metrics: metrics) { $0.log(to: logger) }
                }
            }
            try await Observability.run("live", worker: service, endpoint: endpoint, logger: logger)
        }
    }
}
