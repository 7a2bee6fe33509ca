import RepriseAMQP
import RepriseEventSource
import RepriseEngine
import RepriseEventStore
import RepriseSupport

/// The live projection worker: RabbitMQ messages published by the relay say "events were
/// committed"; the worker applies them to the active builds and acknowledges the messages after
/// the MySQL commit.
///
/// Messages are triggers, the event store is the truth. On each batch of messages (by count or a
/// short time window) the worker applies every event committed since its checkpoint, by snapshot
/// round, through the same handlers and chunk transactions as a rebuild. So:
/// - a redelivered or duplicate message finds its event already applied and changes nothing;
/// - a message that arrives ahead of others (out of order, or with a gap) makes the worker read
///   the gap from the store: nothing is skipped;
/// - a crash between the MySQL commit and the ack only causes redeliveries (see above).
/// On start it catches up from its checkpoint to the head before consuming.
///
/// Poison events: retried with backoff, then, per policy, the stream is parked (its events wait,
/// other streams flow; the event is published to the parked queue with the error) or the worker
/// stops with the error.
public struct LiveWorker: Sendable {
    public enum PoisonPolicy: String, Sendable, CaseIterable {
        case parkStream = "park-stream"
        case stop
    }

    public struct Configuration: Sendable {
        public var postgresURL: String
        public var mysqlURL: String
        public var amqpURL: String
        public var storeSchema: EventStoreSchema = .standard
        /// Where rounds read events; nil: Reprise's own store in `storeSchema`.
        public var source: EventSource?
        public var exchange = "reprise.events"
        /// The work queue; its parked queue is `<queue>.parked`.
        public var queue = "reprise.live"
        public var chunkSize = 1_000
        /// How long to gather more messages after the first of a batch.
        public var batchWindow: Duration = .milliseconds(20)
        /// How often to look at the store when no message comes (the relay may be down).
        public var pollInterval: Duration = .seconds(1)
        public var poisonPolicy: PoisonPolicy = .parkStream
        public var attempts = 3
        public var retryBackoff: Duration = .milliseconds(200)
        /// Set when this worker applies one live partition (see `PartitionedLiveWorker`): it then
        /// consumes that partition's queue, and its runner reads only that partition's events.
        public var partition: LiveProjectionRunner.Partition?
        /// Called with the batch number after a batch's MySQL commit, before its ack (fault tests).
        public var beforeAck: @Sendable (Int) async -> Void = { _ in }

        public init(postgresURL: String, mysqlURL: String, amqpURL: String) {
            self.postgresURL = postgresURL
            self.mysqlURL = mysqlURL
            self.amqpURL = amqpURL
        }
    }

    /// What the worker reports, for logs and metrics.
    public enum Event: Sendable {
        case caughtUp(events: Int64)
        case applied(projection: String, events: Int64, messages: Int, redelivered: Int, seconds: Double)
        case followedNewBuild(projection: String, from: Int64, to: Int64)
        case parked(projection: String, streamID: String, position: Int64, error: String)
        case released(projection: String, streamID: String)
        case retrying(String, attempt: Int)
        case brokerUnavailable(String)
        /// PostgreSQL or MySQL went away; the worker reconnects and resumes from its checkpoints.
        case storeUnavailable(String, attempt: Int)
    }

    public let configuration: Configuration
    public let projections: [RunnableProjection]
    /// Finds the definition of a version a migration made active (name, version, definition hash):
    /// the worker then continues with it, without a restart.
    public let resolve: @Sendable (String, Int, String) throws -> RunnableProjection?

    public init(
        _ configuration: Configuration, projections: [RunnableProjection],
        resolve: @escaping @Sendable (String, Int, String) throws -> RunnableProjection? = { _, _, _ in nil }
    ) {
        self.configuration = configuration
        self.projections = projections
        self.resolve = resolve
    }

    public var parkedQueue: String { configuration.queue + ".parked" }
    public var parkedExchange: String { configuration.queue + ".parked" }
    /// The headers exchange live partition queues are bound to by slot.
    public var slotsExchange: String { configuration.exchange + ".slots" }

    /// The queue this worker consumes: the work queue, or its live partition's queue.
    public var consumedQueue: String {
        guard let partition = configuration.partition else { return configuration.queue }
        return Self.partitionQueue(configuration.queue, number: partition.number, count: partition.count)
    }

    /// The queue of live partition `number` of `count`. The count is in the name: another
    /// number of partitions binds other slots, so it gets queues of its own.
    public static func partitionQueue(_ queue: String, number: Int, count: Int) -> String {
        "\(queue).p\(number)-of-\(count)"
    }

    /// Unused partition queues (after a change of partition count) go away after an hour.
    /// Their messages are only triggers: the event store holds every event.
    static let partitionQueueExpiry: Int64 = 3_600_000

    /// Declares the exchange, the work queue (bound to every handled event type, dead-lettering
    /// to the parked exchange) and the parked queue.
    public func declareTopology(_ amqp: AMQPConnection, eventTypes: [String]) async throws {
        try await amqp.declareExchange(configuration.exchange, type: .topic)
        try await amqp.declareExchange(parkedExchange, type: .fanout)
        try await amqp.declareQueue(parkedQueue)
        try await amqp.bindQueue(parkedQueue, exchange: parkedExchange, routingKey: "")
        if let partition = configuration.partition {
            // Every message also goes to the slots exchange; the partition's queue takes its slots.
            // Single active consumer: even a consumer that lost its partition (a paused process)
            // cannot take deliveries while the new owner consumes.
            try await amqp.declareExchange(slotsExchange, type: .headers)
            try await amqp.bindExchange(slotsExchange, to: configuration.exchange, routingKey: "#")
            try await amqp.declareQueue(consumedQueue, arguments: [
                "x-dead-letter-exchange": .string(parkedExchange), "x-single-active-consumer": .bool(true),
                "x-expires": .int(Self.partitionQueueExpiry),
            ])
            for slot in PartitionSlots.range(partition: partition.number, of: partition.count) {
                try await amqp.bindQueue(consumedQueue, exchange: slotsExchange, routingKey: "", arguments: [
                    "x-match": .string("all"), EventMessage.slotHeader: .int(Int64(slot)),
                ])
            }
            return
        }
        try await amqp.declareQueue(configuration.queue, arguments: ["x-dead-letter-exchange": .string(parkedExchange)])
        for type in eventTypes {
            try await amqp.bindQueue(configuration.queue, exchange: configuration.exchange, routingKey: type)
        }
    }

    /// Runs until `stop` is set: the current batch finishes, commits and is acknowledged first.
    /// `metrics`, when given, receives counters, gauges and a heartbeat per loop.
    public func run(stop: StopSignal, metrics: MetricsRegistry? = nil, report: @escaping @Sendable (Event) -> Void = { _ in }) async throws {
        let report: @Sendable (Event) -> Void = { event in
            if let metrics { Self.record(event, in: metrics) }
            report(event)
        }
        var runnerOptions = LiveProjectionRunner.Options()
        runnerOptions.chunkSize = configuration.chunkSize
        runnerOptions.fetchSize = configuration.chunkSize
        // SIGTERM during a long catch-up: stop after the chunk in flight commits.
        runnerOptions.shouldStop = { stop.isStopped }
        var amqp: AMQPConnection?
        var outage = 0
        // A lost PostgreSQL or MySQL (restart, failover, terminated session) is waited out: the
        // runner is opened again and continues from the committed checkpoints. Unacked messages
        // stay with the broker meanwhile.
        while !stop.isStopped {
            var runner: LiveProjectionRunner?
            do {
                let opened = try await LiveProjectionRunner.open(
                    projections: projections, postgresURL: configuration.postgresURL, mysqlURL: configuration.mysqlURL,
                    source: configuration.source ?? .reprise(configuration.storeSchema), partition: configuration.partition,
                    options: runnerOptions, resolve: resolve)
                runner = opened
                try await consumeLoop(opened, amqp: &amqp, stop: stop, metrics: metrics, report: report, connected: { outage = 0 })
                await opened.close()
                break
            } catch where TransientFailure.isTransient(error) {
                await runner?.close()
                outage += 1
                report(.storeUnavailable("\(error)", attempt: outage))
                await stop.sleep(TransientFailure.backoff(attempt: outage))
            } catch {
                await runner?.close()
                await amqp?.close()
                throw error
            }
        }
        await amqp?.close()
    }

    private func consumeLoop(
        _ runner: LiveProjectionRunner, amqp: inout AMQPConnection?, stop: StopSignal, metrics: MetricsRegistry?,
        report: @escaping @Sendable (Event) -> Void, connected: () -> Void
    ) async throws {
        var lastLagCheck = ContinuousClock.now - .seconds(10)
        var boundTypes: [String] = []
        var batchNumber = 0
        // Catch up from the checkpoint to the head before consuming.
        let initial = try await applyWithPolicy(runner, stop: stop, report: report)
        report(.caughtUp(events: initial.reduce(0) { $0 + $1.eventsApplied }))
        connected()

        while !stop.isStopped {
            metrics?.heartbeat()
            if let metrics, ContinuousClock.now - lastLagCheck >= .seconds(1) {
                lastLagCheck = ContinuousClock.now
                let labels = configuration.partition.map { ["partition": String($0.number)] } ?? [:]
                if let lag = try? await runner.lag() {
                    metrics.set("reprise_live_lag_events", Double(lag.events), labels: labels, help: "Events committed in the store and not yet applied.")
                    metrics.set("reprise_live_lag_seconds", lag.seconds, labels: labels, help: "Age of the oldest committed event not yet applied.")
                }
                metrics.set("reprise_live_parked_streams", Double(runner.parkedStreamCount), labels: labels, help: "Streams parked after a poison event.")
            }
            do {
                if amqp == nil {
                    let connection = try await AMQPConnection.connect(url: configuration.amqpURL)
                    try await declareTopology(connection, eventTypes: runner.eventTypes)
                    try await connection.setPrefetch(UInt16(min(configuration.chunkSize * 2, 65_535)))
                    try await connection.consume(queue: consumedQueue)
                    amqp = connection
                    boundTypes = runner.eventTypes
                }
                guard let consumer = amqp else { continue }
                var deliveries: [AMQPDelivery] = []
                let first = try await consumer.nextDelivery(timeoutMilliseconds: Self.milliseconds(configuration.pollInterval))
                if let first {
                    deliveries.append(first)
                    let windowEnd = ContinuousClock.now + configuration.batchWindow
                    while deliveries.count < configuration.chunkSize, ContinuousClock.now < windowEnd,
                        let next = try await consumer.nextDelivery(timeoutMilliseconds: max(1, Self.milliseconds(windowEnd - ContinuousClock.now)))
                    {
                        deliveries.append(next)
                    }
                }
                let started = ContinuousClock.now
                let outcomes = try await applyWithPolicy(runner, stop: stop, report: report)
                if let last = deliveries.last {
                    batchNumber += 1
                    await configuration.beforeAck(batchNumber)
                    // Acknowledged only now: the events they announce are committed in MySQL.
                    try await consumer.ack(last.deliveryTag, multiple: true)
                }
                // A migrated version may handle new event types: bind them too (partition
                // queues take every type by slot).
                for type in runner.eventTypes where !boundTypes.contains(type) && configuration.partition == nil {
                    try await consumer.bindQueue(configuration.queue, exchange: configuration.exchange, routingKey: type)
                    boundTypes.append(type)
                }
                let elapsed = ContinuousClock.now - started
                let seconds = elapsed.seconds
                for outcome in outcomes where outcome.eventsApplied > 0 || !deliveries.isEmpty {
                    report(.applied(
                        projection: outcome.projection, events: outcome.eventsApplied, messages: deliveries.count,
                        redelivered: deliveries.filter(\.redelivered).count, seconds: seconds))
                }
            } catch let error as AMQPError {
                // The broker went away: unacked messages will be redelivered; the store still has every event.
                report(.brokerUnavailable("\(error)"))
                await amqp?.close()
                amqp = nil
                await stop.sleep(configuration.retryBackoff * 5)
            }
        }
    }

    /// One catch-up over all projections, with retries and the poison policy.
    private func applyWithPolicy(_ runner: LiveProjectionRunner, stop: StopSignal, report: @escaping @Sendable (Event) -> Void) async throws -> [LiveProjectionRunner.Outcome] {
        var attempt = 0
        while true {
            do {
                let outcomes = try await runner.catchUp()
                for outcome in outcomes {
                    if let from = outcome.switchedFromBuild { report(.followedNewBuild(projection: outcome.projection, from: from, to: outcome.buildID)) }
                    for stream in outcome.releasedStreams { report(.released(projection: outcome.projection, streamID: stream)) }
                }
                return outcomes
            } catch let failure as LiveProjectionRunner.Failure {
                attempt += 1
                if attempt < configuration.attempts {
                    report(.retrying(failure.description, attempt: attempt))
                    await stop.sleep(configuration.retryBackoff * (1 << min(attempt, 6)))
                    continue
                }
                guard configuration.poisonPolicy == .parkStream, let stream = failure.streamID, let projection = failure.error.projection else {
                    throw failure.error
                }
                try await runner.park(projection: projection, streamID: stream, failure: failure)
                try await publishParked(runner, failure: failure)
                report(.parked(projection: projection, streamID: stream, position: failure.error.position ?? 0, error: failure.error.message))
                attempt = 0
            }
        }
    }

    /// Puts the failing event in the parked queue with the error, projection and position.
    private func publishParked(_ runner: LiveProjectionRunner, failure: LiveProjectionRunner.Failure) async throws {
        guard let position = failure.error.position, let event = try await runner.event(at: position) else { return }
        let envelope = EventMessage.Envelope(
            position: position, eventID: event.eventID, streamID: event.streamID, streamVersion: event.streamVersion, type: event.type,
            recordedAt: event.recordedAt, payload: event.payload, metadata: nil)
        do {
            let publisher = try await AMQPConnection.connect(url: configuration.amqpURL)
            // The poison may come during the first catch-up, before the consumer declared anything.
            try await publisher.declareExchange(parkedExchange, type: .fanout)
            try await publisher.declareQueue(parkedQueue)
            try await publisher.bindQueue(parkedQueue, exchange: parkedExchange, routingKey: "")
            _ = try await publisher.publishConfirmed([EventMessage.message(
                envelope, exchange: parkedExchange,
                extraHeaders: [EventMessage.errorHeader: .string(failure.error.message), EventMessage.projectionHeader: .string(failure.error.projection ?? "")])])
            await publisher.close()
        } catch {
            // The parked stream is recorded in MySQL either way; the queue copy is for operators.
        }
    }

    static func record(_ event: Event, in metrics: MetricsRegistry) {
        switch event {
        case .applied(let projection, let events, let messages, let redelivered, let seconds):
            metrics.add("reprise_live_events_applied_total", Double(events), labels: ["projection": projection], help: "Events applied to the live tables.")
            metrics.add("reprise_live_messages_total", Double(messages), labels: ["projection": projection], help: "Messages consumed (each batch counts once per projection).")
            metrics.add("reprise_live_redeliveries_total", Double(redelivered), labels: ["projection": projection], help: "Messages the broker delivered again.")
            metrics.add("reprise_live_batch_seconds_sum", seconds, labels: ["projection": projection], help: "Time spent applying batches (sum).")
            metrics.add("reprise_live_batch_seconds_count", 1, labels: ["projection": projection], help: "Batches applied (count).")
        case .caughtUp(let events):
            metrics.add("reprise_live_catch_up_events_total", Double(events), help: "Events applied by the catch-up at start.")
        case .parked(let projection, _, _, _):
            metrics.add("reprise_live_parked_total", 1, labels: ["projection": projection], help: "Streams parked after a poison event.")
        case .followedNewBuild(let projection, _, _):
            metrics.add("reprise_live_build_switches_total", 1, labels: ["projection": projection], help: "Switches to a newly active build.")
        case .brokerUnavailable:
            metrics.add("reprise_live_broker_errors_total", 1, help: "Times the broker connection was lost.")
        case .storeUnavailable:
            metrics.add("reprise_live_store_errors_total", 1, help: "Times PostgreSQL or MySQL was lost (the worker reconnects).")
        case .released, .retrying:
            break
        }
    }

    static func milliseconds(_ duration: Duration) -> Int {
        Int(duration.components.seconds * 1_000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }
}
