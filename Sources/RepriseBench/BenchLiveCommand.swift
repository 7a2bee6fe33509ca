import ArgumentParser
import RepriseCommandLine
import Foundation
import RepriseAMQP
import RepriseEngine
import RepriseEventStore
import RepriseLive
import RepriseMySQL
import RepriseProjection
import ReprisePostgres

/// Live benchmark: end-to-end latency from an append's commit to its effect being visible in
/// MySQL, at fixed offered rates, with the relay and the live worker running in this process;
/// then the rate at which a backlog of outbox rows drains.
struct BenchLiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-live",
        abstract: "Benchmark: live latency at offered rates and backlog drain rate (uses its own store schema and database).")

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var mysql: MySQLOptions
    @OptionGroup var amqp: AMQPOptions

    @Option(help: "Offered rates, events per second.")
    var rates: [Int] = [500, 2_000, 10_000]

    @Option(help: "Seconds per rate.")
    var seconds = 5

    @Option(help: "Outbox rows in the backlog drain test.")
    var backlog = 100_000

    @Option(help: "Relay batch size.")
    var relayBatch = 500

    @Flag(help: "Publish transient messages (see `reprise relay --transient-messages`).")
    var transientMessages = false

    @Option(help: "Relays that drain the backlog together (each drain is measured: 1, 2, … up to this, as --shares N with one share each).")
    var relays = 1

    /// One row that follows the highest position applied: cheap to poll.
    static let probeYAML = """
        name: probe
        version: 1
        tables:
          probe:
            columns:
              id: varchar(8) not null
              position: bigint not null default 0
            primary_key: [id]
        handlers:
          OrderCreated:
            - upsert: { table: probe, set: { id: "'last'", position: "greatest(position, event.position)" } }
        """

    func run() async throws {
        try await reportingFailures {
            let pgURL = try postgres.resolvedURL(), myURL = try mysql.resolvedURL(), amqpURL = try amqp.resolvedURL()
            let schema = try EventStoreSchema(schema: "bench_live")
            let admin = try await PostgresConnection.connect(url: pgURL)
            try await admin.execute("DROP SCHEMA IF EXISTS bench_live CASCADE")
            let store = EventStore(schema: schema)
            try await store.initialize(on: admin)
            let myAdmin = try await MySQLConnection.connect(url: myURL)
            try await myAdmin.execute("DROP DATABASE IF EXISTS reprise_bench_live")
            try await myAdmin.execute("CREATE DATABASE reprise_bench_live COLLATE utf8mb4_bin")
            guard let slash = myURL.lastIndex(of: "/") else { throw ValidationError("the MySQL URL needs a database") }
            let benchURL = String(myURL[...slash]) + "reprise_bench_live"
            // Messages left by an earlier run (the worker stops as soon as the store is applied)
            // would make the broker slow publishers down: start from empty queues.
            let broker = try await AMQPConnection.connect(url: amqpURL)
            for queue in ["reprise.bench.live", "reprise.bench.live.parked"] { try await broker.deleteQueue(queue) }
            let probe = try ProjectionFileParser.parse(yaml: Self.probeYAML, file: "probe.yml")
            try await append(store, count: 1, on: admin)
            _ = try await RebuildEngine(postgresURL: pgURL, mysqlURL: benchURL, storeSchema: schema).rebuild([.file(probe)])

            let stop = StopSignal()
            var relayConfiguration = OutboxRelay.Configuration(postgresURL: pgURL, amqpURL: amqpURL)
            relayConfiguration.storeSchema = schema
            relayConfiguration.exchange = "reprise.bench"
            relayConfiguration.batchSize = relayBatch
            relayConfiguration.persistentMessages = !transientMessages
            var workerConfiguration = LiveWorker.Configuration(postgresURL: pgURL, mysqlURL: benchURL, amqpURL: amqpURL)
            workerConfiguration.storeSchema = schema
            workerConfiguration.exchange = "reprise.bench"
            workerConfiguration.queue = "reprise.bench.live"
            workerConfiguration.batchWindow = .milliseconds(2)
            let relay = Task { try await OutboxRelay(relayConfiguration).run(stop: stop) }
            let worker = Task { try await LiveWorker(workerConfiguration, projections: [.file(probe)]).run(stop: stop) }
            let reader = try await MySQLConnection.connect(url: benchURL)
            try await Task.sleep(for: .seconds(2))

            Terminal.output("offered/s  appended  p50 ms  p95 ms  p99 ms  max ms  achieved/s")
            for rate in rates {
                let result = try await measure(rate: rate, store: store, on: admin, reader: reader)
                Terminal.output(result)
            }

            // Backlog: stop the relay, append rows, start relays again and time the drain.
            stop.stop()
            try await relay.value
            try await worker.value
            for count in 1...max(1, relays) {
                try await broker.purgeQueue("reprise.bench.live")
                // Every drain starts from the same outbox: no published rows left by the previous one.
                try await admin.execute("DELETE FROM bench_live.outbox")
                try await admin.execute("VACUUM ANALYZE bench_live.outbox")
                try await append(store, count: backlog, on: admin)
                let target = try await store.headPosition(on: admin)
                let drainStop = StopSignal()
                let started = ContinuousClock.now
                var sharing = relayConfiguration
                sharing.shares = count
                sharing.maxShares = 1
                let drainers = (0..<count).map { _ in Task { [sharing] in try await OutboxRelay(sharing).run(stop: drainStop) } }
                let worker2 = Task { try await LiveWorker(workerConfiguration, projections: [.file(probe)]).run(stop: drainStop) }
                while true {
                    let applied = try await reader.query("SELECT position FROM probe WHERE id = 'last'").int64(0, 0) ?? 0
                    let unpublished = try await admin.query("SELECT count(*) FROM bench_live.outbox WHERE published_at IS NULL").int64(0, 0) ?? 1
                    if applied >= target && unpublished == 0 { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                let elapsed = Self.seconds(ContinuousClock.now - started)
                drainStop.stop()
                for drainer in drainers { try await drainer.value }
                try await worker2.value
                let who = count == 1 ? "1 relay" : "\(count) relays (--shares \(count))"
                Terminal.output("backlog of \(backlog) outbox rows drained and applied by \(who) in \(String(format: "%.1f", elapsed)) s: \(Int(Double(backlog) / elapsed)) events/s")
            }
            await reader.close()
            await admin.close()
            await myAdmin.close()
            await broker.close()
        }
    }

    private func append(_ store: EventStore, count: Int, on connection: PostgresConnection) async throws {
        var remaining = count
        while remaining > 0 {
            let batch = min(remaining, 2_000)
            try await store.append((0..<batch).map { _ in Self.orderCreated() }, on: connection)
            remaining -= batch
        }
    }

    private static func orderCreated() -> StreamAppend {
        let id = UUID().uuidString.lowercased()
        return StreamAppend(streamID: "order-\(id)", expectedVersion: .noStream, events: [
            NewEvent(eventID: UUID().uuidString.lowercased(), type: "OrderCreated", payload: #"{"orderId":"\#(id)","totalCents":100}"#),
        ])
    }

    /// Appends at `rate` for `seconds`, in small transactions every millisecond or so, and polls
    /// the probe row to see when each position became visible.
    private func measure(rate: Int, store: EventStore, on connection: PostgresConnection, reader: MySQLConnection) async throws -> String {
        let clock = ContinuousClock()
        let start = clock.now
        let duration = Duration.seconds(seconds)
        var commits: [(position: Int64, at: ContinuousClock.Instant)] = []
        let poller = Task { () -> [(position: Int64, at: ContinuousClock.Instant)] in
            var samples: [(Int64, ContinuousClock.Instant)] = []
            while !Task.isCancelled {
                let position: Int64
                do {
                    position = try await reader.query("SELECT position FROM probe WHERE id = 'last'").int64(0, 0) ?? 0
                } catch where Task.isCancelled {
                    // Cancelled between the loop's check and the query's own: the sampling is over.
                    break
                }
                samples.append((position, clock.now))
                try? await Task.sleep(for: .milliseconds(1))
            }
            return samples
        }
        var appended = 0
        while clock.now - start < duration {
            let due = Int(Double(rate) * Self.seconds(clock.now - start)) - appended
            if due > 0 {
                let batch = min(due, 500)
                let results = try await store.append((0..<batch).map { _ in Self.orderCreated() }, on: connection)
                let now = clock.now
                for result in results { commits.append((result.positions[0], now)) }
                appended += batch
            } else {
                try await Task.sleep(for: .microseconds(500))
            }
        }
        let sendEnd = clock.now
        let last = commits.last?.position ?? 0
        while (try await reader.query("SELECT position FROM probe WHERE id = 'last'").int64(0, 0) ?? 0) < last {
            try await Task.sleep(for: .milliseconds(5))
        }
        try await Task.sleep(for: .milliseconds(10))
        poller.cancel()
        let samples = try await poller.value
        var latencies: [Double] = []
        var index = 0
        for commit in commits {
            while index < samples.count && (samples[index].position < commit.position || samples[index].at < commit.at) { index += 1 }
            guard index < samples.count else { break }
            latencies.append(max(0, Self.seconds(samples[index].at - commit.at)) * 1_000)
        }
        latencies.sort()
        func percentile(_ p: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        let achieved = Double(appended) / Self.seconds(sendEnd - start)
        return String(format: "%9d  %8d  %6.1f  %6.1f  %6.1f  %6.1f  %10.0f", rate, appended, percentile(0.5), percentile(0.95), percentile(0.99), latencies.last ?? 0, achieved)
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
