import ArgumentParser
import Logging
import RepriseEventSource
import RepriseLive

struct RelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Publish outbox rows to RabbitMQ with publisher confirms, then mark them published.",
        discussion: """
            Exactly one relay is active per outbox (a PostgreSQL advisory lock); start several for \
            failover: the others stand by and take over when the active one dies. With --shares N the \
            outbox is split by hash of the stream id and several relays publish at once, one per share \
            (each stream's events still go out in order); a relay takes up to --max-shares of them and \
            takes over the shares of a relay that died. Wakes on \
            NOTIFY reprise_outbox (sent by appends) with a polling fallback. While RabbitMQ is down it \
            retries with backoff; rows are marked published only after the broker confirmed them, so a \
            crash republishes (the live worker ignores duplicates). SIGTERM/SIGINT finish the batch and exit 0 \
            (the HTTP endpoint stops last). With --outbox the relay publishes an application's own outbox \
            table instead (presets outbox_events, outbox_delete, debezium, or a mapping file): the body is \
            the payload column, the routing key the event type column, the message id the row's id \
            (delivery is at least once: consumers deduplicate by message id). Logs go to standard error: \
            text on a terminal, JSON lines otherwise (--log-format). The endpoint (--metrics-port, default \
            9465, 127.0.0.1) serves /metrics and /health.
            """)

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var amqp: AMQPOptions

    @Option(help: ArgumentHelp(
        "The outbox table to publish: a preset (reprise, outbox_events, outbox_delete, debezium) or a mapping file (see docs/outbox-mappings.md). Default: Reprise's own outbox.",
        valueName: "preset|file"))
    var outbox: String?

    @Option(name: .customLong("outbox-yaml"), help: .hidden)
    var outboxYAML: String?

    @Option(help: "Topic exchange to publish to (routing key: the event type).")
    var exchange = "reprise.events"

    @Option(help: "Outbox rows per publish batch.")
    var batchSize = 500

    @Option(help: "Shares the outbox is split into by hash of the stream id (every relay of the outbox must use the same number).")
    var shares = 1

    @Option(help: "Shares this relay publishes at most (default: all it can get).")
    var maxShares: Int?

    @Flag(help: "Publish transient messages: no broker disk writes (about 25% faster drains here), lost if RabbitMQ restarts. Enough when only `reprise live` consumes them (it reads the events from the store); keep the default when other services consume the exchange.")
    var transientMessages = false

    @Option(help: "Seconds between outbox polls when no notification arrives.")
    var pollSeconds = 1.0

    @Option(help: "Hours to keep published outbox rows before deleting them.")
    var retentionHours = 168.0

    @OptionGroup var status: StatusEndpointOptions
    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard batchSize > 0, pollSeconds > 0, retentionHours >= 0 else { throw ValidationError("--batch-size, --poll-seconds must be positive") }
        guard (1...1024).contains(shares), (maxShares ?? 1) >= 1 else { throw ValidationError("--shares is 1 to 1024 and --max-shares at least 1") }
        if outbox != nil && outboxYAML != nil { throw ValidationError("give --outbox or a job's outbox:, not both") }
        _ = try outboxMapping()
    }

    /// The mapping of --outbox (nil: Reprise's own outbox, under --store-schema and --outbox-table).
    func outboxMapping() throws -> OutboxMapping? {
        do {
            if let outboxYAML { return try OutboxMappingFile.parse(outboxYAML, path: "job outbox") }
            guard let outbox, outbox != "reprise" else { return nil }
            return try OutboxMappingFile.resolve(outbox, schema: postgres.schema)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func run() async throws {
        try await reportingFailures {
            var configuration = OutboxRelay.Configuration(postgresURL: try postgres.resolvedURL(), amqpURL: try amqp.resolvedURL())
            configuration.storeSchema = try postgres.eventStoreSchema()
            configuration.outbox = try outboxMapping()
            configuration.exchange = exchange
            configuration.batchSize = batchSize
            configuration.shares = shares
            configuration.maxShares = maxShares
            configuration.persistentMessages = !transientMessages
            configuration.owner = RebuildCommand.defaultWorkerName()
            configuration.pollInterval = .milliseconds(Int64(pollSeconds * 1000))
            configuration.retention = .seconds(Int64(retentionHours * 3600))
            let logger = logging.bootstrap("reprise.relay", hidingPasswordsOf: [configuration.postgresURL, configuration.amqpURL])
            let metrics = Observability.workerMetrics()
            let endpoint = try status.service(defaultPort: 9465, metrics: metrics, logger: logger)
            let relay = OutboxRelay(configuration)
            logger.info("relay.starting", metadata: [
                "exchange": "\(exchange)", "outbox": "\(relay.outboxName)", "mapping": "\(configuration.outbox?.name ?? "reprise")",
                "lock": "\(relay.lockKey.description)",
            ])
            let shares = self.shares
            let worker = WorkerService(name: "relay", logger: logger) { stop in
                try await relay.run(stop: stop, metrics: metrics) { $0.log(to: logger, shares: shares) }
            }
            try await Observability.run("relay", worker: worker, endpoint: endpoint, logger: logger)
        }
    }
}
