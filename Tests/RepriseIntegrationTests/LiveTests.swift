import RepriseAMQP
import RepriseEngine
import RepriseEventStore
import Prometheus
import RepriseHTTP
import RepriseLive
import RepriseMySQL
import RepriseProjection
import Testing

/// A relay and a live worker on an isolated environment, with their own exchange and queue.
struct LiveHarness {
    let environment: RebuildEnvironment
    let exchange = TestServers.uniqueName("reprise.test.events")
    let queue = TestServers.uniqueName("reprise.test.live")

    func relayConfiguration() -> OutboxRelay.Configuration {
        var configuration = OutboxRelay.Configuration(postgresURL: TestServers.postgresURL, amqpURL: TestServers.amqpURL)
        configuration.storeSchema = environment.storeSchema
        configuration.exchange = exchange
        configuration.batchSize = 100
        configuration.pollInterval = .milliseconds(200)
        return configuration
    }

    func configuration(policy: LiveWorker.PoisonPolicy = .parkStream) -> LiveWorker.Configuration {
        var configuration = LiveWorker.Configuration(postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL, amqpURL: TestServers.amqpURL)
        configuration.storeSchema = environment.storeSchema
        configuration.exchange = exchange
        configuration.queue = queue
        configuration.chunkSize = 200
        configuration.pollInterval = .milliseconds(300)
        configuration.poisonPolicy = policy
        configuration.attempts = 2
        configuration.retryBackoff = .milliseconds(20)
        return configuration
    }

    func worker(_ projection: RunnableProjection, policy: LiveWorker.PoisonPolicy = .parkStream) -> LiveWorker {
        LiveWorker(configuration(policy: policy), projections: [projection])
    }

    /// Declares the exchange and the harness queue bound to every routing key (to read what the
    /// relay publishes).
    func declareCatchAllQueue() async throws {
        let amqp = try await TestServers.amqp()
        try await amqp.declareExchange(exchange, type: .topic)
        try await amqp.declareQueue(queue)
        try await amqp.bindQueue(queue, exchange: exchange, routingKey: "#")
        await amqp.close()
    }

    /// Deletes the queues and exchanges, including those of `partitions` live partitions.
    func cleanUp(partitions: Int? = nil) async {
        guard let amqp = try? await TestServers.amqp() else { return }
        let partitionQueues = partitions.map { count in (0..<count).map { LiveWorker.partitionQueue(queue, number: $0, count: count) } } ?? []
        for name in [queue, queue + ".parked"] + partitionQueues { try? await amqp.deleteQueue(name) }
        for name in [exchange, queue + ".parked", exchange + ".slots"] { try? await amqp.deleteExchange(name) }
        await amqp.close()
    }
}

extension BrokerSuites {
@Suite("Relay and live worker (real servers)")
struct LiveTests {
    @Test func appendRelayRabbitLiveMySQLEndToEnd() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            try await environment.seed(events: 300, seed: 60)
            _ = try await environment.engine().rebuild([.file(try streamCounts())])

            let stop = StopSignal()
            let prometheus = PrometheusCollectorRegistry()
            let relayMetrics = MetricsRegistry(), workerMetrics = MetricsRegistry(factory: PrometheusMetricsFactory(registry: prometheus))
            let relay = Task { try await OutboxRelay(harness.relayConfiguration()).run(stop: stop, metrics: relayMetrics) }
            let worker = Task { try await harness.worker(.file(try streamCounts())).run(stop: stop, metrics: workerMetrics) }
            // Events appended while both run reach MySQL through RabbitMQ.
            try await environment.seed(events: 1_500, seed: 61)
            try await waitUntil("the live read model to match the store") {
                try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment))
            }
            // Every outbox row was published and marked.
            try await waitUntil("the outbox to drain") {
                try await environment.unpublishedCount() == 0
            }
            // The metrics endpoint answers, read-only, on 127.0.0.1.
            // Depending on timing the events were applied by the start-up catch-up or by batches.
            try await waitUntil("the applied events to show in the metrics") {
                (workerMetrics.value("reprise_live_events_applied_total", labels: ["projection": "stream_counts"]) ?? 0)
                    + (workerMetrics.value("reprise_live_catch_up_events_total") ?? 0) >= 1_500
                    && workerMetrics.value("reprise_live_lag_events") != nil
            }
            try await withStatusEndpoint(StatusEndpoint(port: 0, prometheus: prometheus, metrics: workerMetrics)) { port in
                let metricsPage = try httpRequest(port: port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                #expect(metricsPage.hasPrefix("HTTP/1.1 200 OK") || metricsPage.hasPrefix("HTTP/1.0 200 OK"))
                #expect(metricsPage.contains("reprise_live_catch_up_events_total"))
                #expect(metricsPage.contains("reprise_live_lag_events"))
                let health = try httpRequest(port: port, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                let post = try httpRequest(port: port, "POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                #expect(health.contains("\"status\":\"ok\""))
                #expect(post.contains(" 405 "))
            }
            #expect((relayMetrics.value("reprise_relay_published_total") ?? 0) >= 1_500)
            stop.stop()
            try await relay.value
            try await worker.value
            // The live result equals a full rebuild of the same events.
            let live = try await environment.rows("stream_counts")
            _ = try await environment.engine().rebuild([.file(try streamCounts())])
            #expect(try await environment.rows("stream_counts") == live)
            await harness.cleanUp()
        }
    }

    @Test func duplicateAndOutOfOrderMessagesChangeNothing() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            try await environment.seed(events: 400, seed: 62)
            _ = try await environment.engine().rebuild([.file(try streamCounts())])
            let stop = StopSignal()
            let worker = Task { try await harness.worker(.file(try streamCounts())).run(stop: stop) }
            try await environment.seed(events: 300, seed: 63)

            // Inject duplicates of old events and messages far ahead of and behind the checkpoint.
            let amqp = try await TestServers.amqp()
            try await amqp.declareExchange(harness.exchange, type: .topic)
            try await waitUntil("the worker's queue") { (try? await amqp.queueInfo(harness.queue)) != nil }
            let relay = OutboxRelay(harness.relayConfiguration())
            let old = try await relay.unpublished(environment.postgres)
            let injected = (old.prefix(50) + old.prefix(50) + old.suffix(20).reversed()).map { EventMessage.message($0, exchange: harness.exchange) }
            _ = try await amqp.publishConfirmed(Array(injected))
            await amqp.close()

            try await waitUntil("the worker to apply everything") {
                try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment))
            }
            try await waitUntil("the queue to drain") { try await queueMessageCount(harness.queue) == 0 }
            #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            stop.stop()
            try await worker.value
            await harness.cleanUp()
        }
    }

    @Test func relayCrashBetweenPublishAndMarkRepublishesHarmlessly() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            try await environment.seed(events: 200, seed: 64)
            _ = try await environment.engine().rebuild([.file(try streamCounts())])
            // A second queue on the exchange counts every message the relays publish.
            let spy = harness.queue + ".spy"
            let amqp = try await TestServers.amqp()
            try await amqp.declareExchange(harness.exchange, type: .topic)
            try await amqp.declareQueue(spy)
            try await amqp.bindQueue(spy, exchange: harness.exchange, routingKey: "#")
            let stop = StopSignal()
            let worker = Task { try await harness.worker(.file(try streamCounts())).run(stop: stop) }
            try await environment.seed(events: 500, seed: 65)
            let outboxRows = 700

            struct Crash: Error {}
            var crashing = harness.relayConfiguration()
            crashing.afterPublish = { batch in if batch == 3 { throw Crash() } }
            await #expect(throws: Crash.self) { try await OutboxRelay(crashing).run(stop: StopSignal()) }
            // Simulated: the relay stops with an error thrown after batch 3 was confirmed by the broker.
            FaultLedger.record(.simulated, "relay stopped between publish and mark")
            // Batches 1 and 2 are marked; batch 3 was published but is not marked.
            try #require(try await environment.unpublishedCount() == outboxRows - 200, "only the two first batches marked")
            try await waitUntil("the crashed relay's three batches to reach the spy queue") { try await amqp.queueInfo(spy).messageCount == 300 }
            // The next relay publishes batch 3 again, then the rest.
            let restarted = Task { try await OutboxRelay(harness.relayConfiguration()).run(stop: stop) }
            try await waitUntil("the outbox to drain") {
                try await environment.unpublishedCount() == 0
            }
            try await waitUntil("batch 3 published twice, every other row once") { try await amqp.queueInfo(spy).messageCount == outboxRows + 100 }
            // Applied once: the per-stream event counts equal the store's despite the 100 duplicates.
            try await waitUntil("the read model to match") {
                try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment))
            }
            try await waitUntil("the worker's queue to drain") { try await amqp.queueInfo(harness.queue).messageCount == 0 }
            try #require(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            FaultLedger.record(.recovered, "relay stopped between publish and mark")
            stop.stop()
            try await restarted.value
            try await worker.value
            try? await amqp.deleteQueue(spy)
            await amqp.close()
            await harness.cleanUp()
        }
    }

    /// Store polling is set far beyond the test's length: only RabbitMQ's deliveries can wake the
    /// worker after its start-up catch-up, so applied events prove the broker path works.
    @Test func theWorkerIsWokenByRabbitMQNotByItsStorePoll() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            try await environment.seed(events: 200, seed: 67)
            _ = try await environment.engine().rebuild([.file(try streamCounts())])
            var configuration = harness.configuration()
            configuration.pollInterval = .seconds(3_600)
            // The queue exists before anything is published, so no message is dropped by the exchange.
            let amqp = try await TestServers.amqp()
            try await LiveWorker(configuration, projections: [.file(try streamCounts())]).declareTopology(amqp, eventTypes: try streamCounts().eventTypes.sorted())
            await amqp.close()
            let relayStop = StopSignal(), workerStop = StopSignal()
            let reports = Reports<LiveWorker.Event>()
            let relay = Task { try await OutboxRelay(harness.relayConfiguration()).run(stop: relayStop) }
            let worker = Task {
                try await LiveWorker(configuration, projections: [.file(try streamCounts())]).run(stop: workerStop) { event in Task { await reports.add(event) } }
            }
            try await waitUntil("the start-up catch-up") { await reports.events.contains { if case .caughtUp = $0 { true } else { false } } }
            try await waitUntil("the outbox to drain") { try await environment.unpublishedCount() == 0 }
            try await environment.seed(events: 300, seed: 68)
            try await waitUntil("the events to arrive through RabbitMQ", limit: .seconds(60)) {
                try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment))
            }
            // The reports travel through their own tasks and may land after the rows: wait for them.
            let applied: @Sendable () async -> Int64 = {
                await reports.events.reduce(Int64(0)) { total, event in
                    if case .applied(_, let events, let messages, _, _) = event, messages > 0 { total + events } else { total }
                }
            }
            try await waitUntil("the reports of batches woken by deliveries to count the 300 events") { await applied() >= 300 }
            // The worker waits for a delivery (its poll is an hour): one more event wakes it to see the stop.
            workerStop.stop()
            try await environment.seed(events: 1, seed: 69)
            try await worker.value
            relayStop.stop()
            try await relay.value
            await harness.cleanUp()
        }
    }

    @Test func theBacklogGaugeCountsEveryUnpublishedRowBehindAFullBatch() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            try await harness.declareCatchAllQueue()
            try await environment.seed(events: 450, seed: 66)
            let metrics = MetricsRegistry()
            struct Seen: Error { var backlog: Double? }
            var relay = harness.relayConfiguration()
            // After the first (full) batch of 100 is confirmed: the gauge was set before it was sent.
            relay.afterPublish = { batch in if batch == 1 { throw Seen(backlog: metrics.value("reprise_relay_backlog")) } }
            do {
                try await OutboxRelay(relay).run(stop: StopSignal(), metrics: metrics)
                Issue.record("the hook should have stopped the relay")
            } catch let seen as Seen {
                #expect(seen.backlog == 450, "all unpublished rows, not one batch")
            }
            await harness.cleanUp()
        }
    }

    @Test func twoRelaysOnePublishesTheOtherTakesOver() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            let firstReports = Reports<OutboxRelay.Event>(), secondReports = Reports<OutboxRelay.Event>()
            let firstStop = StopSignal(), secondStop = StopSignal()
            let first = Task { try await OutboxRelay(harness.relayConfiguration()).run(stop: firstStop) { event in Task { await firstReports.add(event) } } }
            try await waitUntil("the first relay to be active") { await firstReports.events.contains { if case .active = $0 { true } else { false } } }
            let second = Task { try await OutboxRelay(harness.relayConfiguration()).run(stop: secondStop) { event in Task { await secondReports.add(event) } } }
            try await waitUntil("the second relay to stand by") { await secondReports.events.contains { if case .standingBy = $0 { true } else { false } } }
            #expect(await !secondReports.events.contains { if case .active = $0 { true } else { false } })

            firstStop.stop()
            try await first.value
            try await waitUntil("the second relay to take over") { await secondReports.events.contains { if case .active = $0 { true } else { false } } }
            try await environment.seed(events: 50, seed: 66)
            try await waitUntil("the second relay to publish") {
                try await environment.unpublishedCount() == 0
            }
            secondStop.stop()
            try await second.value
            await harness.cleanUp()
        }
    }

    @Test func aPoisonEventParksItsStreamWhileOthersFlow() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            // Totals per order; an OrderCreated whose totalCents is not a number is poison.
            let projection = try ProjectionFileParser.parse(yaml: """
                name: order_totals
                version: 1
                tables:
                  order_totals:
                    columns:
                      order_id: varchar(64) not null
                      total_cents: bigint not null default 0
                      events: int not null default 0
                    primary_key: [order_id]
                handlers:
                  OrderCreated:
                    - upsert: { table: order_totals, set: { order_id: payload.orderId, total_cents: payload.totalCents, events: events + 1 } }
                  PaymentReceived:
                    - update: { table: order_totals, key: { order_id: payload.orderId }, set: { events: events + 1 } }
                """, file: "order_totals.yml")
            try await environment.seed(events: 300, seed: 67)
            _ = try await environment.engine().rebuild([.file(projection)])
            let reports = Reports<LiveWorker.Event>()
            let stop = StopSignal()
            let worker = Task { try await harness.worker(.file(projection)).run(stop: stop) { event in Task { await reports.add(event) } } }

            func append(_ stream: String, _ expected: ExpectedVersion, _ type: String, _ payload: String) async throws {
                var random = RandomEventID()
                try await environment.store.append(
                    [StreamAppend(streamID: stream, expectedVersion: expected, events: [NewEvent(eventID: random.next(), type: type, payload: payload)])],
                    on: environment.postgres)
            }
            try await append("order-POISON", .noStream, "OrderCreated", #"{"orderId":"POISON","totalCents":"lots"}"#)
            try await append("order-POISON", .exact(1), "PaymentReceived", #"{"orderId":"POISON"}"#)
            try await append("order-FINE", .noStream, "OrderCreated", #"{"orderId":"FINE","totalCents":500}"#)

            let parkedStore = ParkedStreamStore(connection: environment.mysql)
            try await parkedStore.ensureTable()
            try await waitUntil("the poison stream to be parked") { try await !parkedStore.list(projection: "order_totals").isEmpty }
            try await waitUntil("the other stream to flow") {
                try await environment.mysql.query("SELECT total_cents FROM order_totals WHERE order_id = 'FINE'").int(0, 0) == 500
            }
            let parked = try await parkedStore.list(projection: "order_totals")
            #expect(parked.map(\.streamID) == ["order-POISON"])
            let entry = try #require(parked.first)
            #expect(entry.eventType == "OrderCreated")
            #expect(entry.error.contains("order_totals") && entry.error.contains("not a whole number"), "\(entry.error)")
            #expect(try await environment.mysql.query("SELECT COUNT(*) FROM order_totals WHERE order_id = 'POISON'").int(0, 0) == 0)

            // The failing event is in the parked queue with the reason.
            let amqp = try await TestServers.amqp()
            var dead: AMQPDelivery?
            try await waitUntil("the parked message") {
                dead = try await amqp.get(queue: harness.queue + ".parked")
                return dead != nil
            }
            #expect(dead?.properties.headers[EventMessage.projectionHeader] == .string("order_totals"))
            if case .string(let reason)? = dead?.properties.headers[EventMessage.errorHeader] { #expect(reason.contains("not a whole number")) } else {
                Issue.record("no error header on the parked message")
            }
            await amqp.close()

            // Skip the poison event: the stream's later events are applied, in order.
            #expect(try await parkedStore.request(.skip, projection: "order_totals", streamID: "order-POISON"))
            try await append("order-FINE", .exact(1), "PaymentReceived", #"{"orderId":"FINE"}"#)
            try await waitUntil("the stream to be released") { try await parkedStore.list(projection: "order_totals").isEmpty }
            // The payment of POISON was an update of a row that never existed: skipped, as a rebuild would.
            #expect(try await environment.mysql.query("SELECT COUNT(*) FROM order_totals WHERE order_id = 'POISON'").int(0, 0) == 0)
            try await waitUntil("FINE's payment") {
                try await environment.mysql.query("SELECT events FROM order_totals WHERE order_id = 'FINE'").int(0, 0) == 2
            }
            stop.stop()
            try await worker.value
            await harness.cleanUp()
        }
    }

    @Test func theWorkerFollowsARebuildSwapWithoutRestartOrDoubleApply() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            try await environment.seed(events: 300, seed: 68)
            let first = try await environment.engine().rebuild([.file(try streamCounts())])
            let reports = Reports<LiveWorker.Event>()
            let stop = StopSignal()
            let relay = Task { try await OutboxRelay(harness.relayConfiguration()).run(stop: stop) }
            let worker = Task { try await harness.worker(.file(try streamCounts())).run(stop: stop) { event in Task { await reports.add(event) } } }
            try await environment.seed(events: 400, seed: 69)
            // A scheduled full rebuild swaps new tables in while the worker runs and events keep coming.
            let appending = Task { try await environment.seed(events: 600, seed: 70) }
            let second = try await environment.engine { $0.chunkSize = 100 }.rebuild([.file(try streamCounts())])
            try await appending.value
            #expect(second[0].previousBuildID == first[0].buildID)
            try await environment.seed(events: 300, seed: 71)
            try await waitUntil("the worker to follow the new build") {
                await reports.events.contains { if case .followedNewBuild(_, let from, let to) = $0 { from == first[0].buildID && to == second[0].buildID } else { false } }
            }
            try await waitUntil("the read model to match the store") {
                try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment))
            }
            stop.stop()
            try await relay.value
            try await worker.value
            await harness.cleanUp()
        }
    }

    @Test func migrationWithLiveTrafficLosesNothingOnEitherSide() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            let v1 = try streamCounts()
            // Version 2 adds a column: the first position of each stream.
            let v2 = try ProjectionFileParser.parse(
                yaml: streamCountsYAML.replacing("version: 1", with: "version: 2")
                    .replacing("last_version: bigint\n", with: "last_version: bigint\n      first_position: bigint\n")
                    .replacing("last_position: event.position }", with: "last_position: event.position, first_position: \"coalesce(first_position, event.position)\" }"),
                file: "stream_counts.yml")
            try await environment.seed(events: 300, seed: 90)
            let first = try await environment.engine().rebuild([.file(v1)])

            let stop = StopSignal()
            let reports = Reports<LiveWorker.Event>()
            let relay = Task { try await OutboxRelay(harness.relayConfiguration()).run(stop: stop) }
            let resolve: @Sendable (String, Int, String) throws -> RunnableProjection? = { _, version, _ in version == 2 ? .file(v2) : nil }
            var configuration = harness.worker(.file(v1)).configuration
            configuration.chunkSize = 100
            let worker = Task {
                try await LiveWorker(configuration, projections: [.file(v1)], resolve: resolve).run(stop: stop) { event in Task { await reports.add(event) } }
            }
            // Traffic throughout the migration.
            let traffic = Task {
                for seed in UInt64(91)...UInt64(95) { try await environment.seed(events: 200, seed: seed) }
            }
            let migrated = try await environment.engine { $0.chunkSize = 150 }.rebuild([.file(v2)])
            try await traffic.value
            #expect(migrated[0].previousBuildID == first[0].buildID)
            try await waitUntil("the worker to move to version 2") {
                await reports.events.contains { if case .followedNewBuild(_, _, let to) = $0 { to == migrated[0].buildID } else { false } }
            }
            try await environment.seed(events: 200, seed: 96)

            // v2 equals a clean computation over every event.
            let expectedV2 = { () async throws -> [[String]] in
                let result = try await environment.postgres.query(
                    "SELECT stream_id, count(*)::text, max(stream_version)::text, min(global_position)::text, max(global_position)::text FROM \(environment.storeSchema.qualifiedEvents) GROUP BY stream_id")
                return (0..<result.rowCount).map { row in [0, 1, 2, 4, 3].map { result.string(row, $0) ?? "NULL" } }.sorted { $0.lexicographicallyPrecedes($1) }
            }
            try await waitUntil("version 2 to match the store") {
                let rows = try await environment.mysql.query("SELECT stream_id, events, last_version, last_position, first_position FROM stream_counts")
                let live = rows.rows.map { $0.map { $0 ?? "NULL" } }.sorted { $0.lexicographicallyPrecedes($1) }
                return live == (try await expectedV2())
            }
            // v1 saw every event up to the swap: its retired tables equal the events its final snapshot shows.
            let retired = try await environment.mysql.query("SELECT base_snapshot FROM reprise_builds WHERE build_id = ?", [.int(first[0].buildID)]).string(0, 0) ?? ""
            let expectedV1 = try await environment.postgres.query(
                "SELECT stream_id, count(*)::text, max(stream_version)::text, max(global_position)::text FROM \(environment.storeSchema.qualifiedEvents) WHERE pg_visible_in_snapshot(transaction_id, $1::pg_snapshot) GROUP BY stream_id",
                [.text(retired)])
            let v1Rows = (0..<expectedV1.rowCount).map { row in (0..<4).map { expectedV1.string(row, $0) ?? "NULL" } }.sorted { $0.lexicographicallyPrecedes($1) }
            #expect(try await environment.rows("stream_counts__\(first[0].buildID)") == v1Rows)
            #expect(v1Rows.count > 100)
            stop.stop()
            try await relay.value
            try await worker.value
            await harness.cleanUp()
        }
    }

    @Test func theWorkerAndTheRelaySurviveABrokerRestart() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            try await environment.seed(events: 200, seed: 72)
            _ = try await environment.engine().rebuild([.file(try streamCounts())])
            let stop = StopSignal()
            let workerReports = Reports<LiveWorker.Event>()
            let relay = Task { try await OutboxRelay(harness.relayConfiguration()).run(stop: stop) }
            let worker = Task { try await harness.worker(.file(try streamCounts())).run(stop: stop) { event in Task { await workerReports.add(event) } } }
            try await environment.seed(events: 300, seed: 73)
            try await waitUntil("the first events to arrive") {
                try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment))
            }

            // Stop the broker's application (connections drop, durable queues and persistent
            // messages stay), append while it is down, then start it again.
            let stopped = try runServicesCommand(["rabbitmqctl", "stop_app"])
            try #require(stopped.status == 0, "stop_app failed: \(stopped.standardError)")
            FaultLedger.record(.injected, "rabbitmq restart during live mode and relay publishing")
            try await environment.seed(events: 300, seed: 74)
            try await waitUntil("the worker to notice the broker is gone") {
                await workerReports.events.contains { if case .brokerUnavailable = $0 { true } else { false } }
            }
            let started = try runServicesCommand(["rabbitmqctl", "start_app"])
            try #require(started.status == 0, "start_app failed: \(started.standardError)")
            try await environment.seed(events: 300, seed: 75)

            try await waitUntil("the read model to match after the restart", limit: .seconds(90)) {
                try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment))
            }
            try await waitUntil("the outbox to drain after the restart", limit: .seconds(90)) {
                try await environment.unpublishedCount() == 0
            }
            FaultLedger.record(.recovered, "rabbitmq restart during live mode and relay publishing")
            stop.stop()
            try await relay.value
            try await worker.value
            await harness.cleanUp()
        }
    }
}
}

/// Random UUIDs for hand-written test events.
struct RandomEventID {
    mutating func next() -> String {
        func hex(_ count: Int) -> String { (0..<count).map { _ in String(Int.random(in: 0..<16), radix: 16) }.joined() }
        return "\(hex(8))-\(hex(4))-4\(hex(3))-8\(hex(3))-\(hex(12))"
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Sends one raw HTTP request to 127.0.0.1:port and returns the whole response.
func httpRequest(port: UInt16, _ request: String) throws -> String {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw TestSetupError("socket() failed") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else { throw TestSetupError("cannot connect to 127.0.0.1:\(port)") }
    // A server that keeps the connection open after answering (HTTP keep-alive) must not hang
    // the test: reads give up after 30 s of silence.
    var timeout = timeval(tv_sec: 30, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var bytes = Array(request.utf8)
    _ = bytes.withUnsafeMutableBytes { send(descriptor, $0.baseAddress, $0.count, 0) }
    var response: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let count = recv(descriptor, &buffer, buffer.count, 0)
        if count <= 0 { break }
        response.append(contentsOf: buffer[0..<count])
    }
    return String(decoding: response, as: UTF8.self)
}
