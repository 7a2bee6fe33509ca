import RepriseAMQP
import RepriseEventSource
import RepriseEventStore
import ReprisePostgres

/// `reprise replay`: publishes a range of history from the event store to an exchange the
/// operator chooses, so a new subscriber can backfill (RabbitMQ keeps no history).
///
/// Events go out in position order, in batches with publisher confirms, at most `rate` per
/// second. After each confirmed batch the position reached is saved in PostgreSQL
/// (`reprise_replays`, keyed by exchange), so a replay that crashed resumes after the last
/// confirmed batch: no gaps; the batch in flight at the crash may be delivered twice (consumers
/// deduplicate by message id, the event id, as they must for the relay). The outbox and its
/// published marks are never read or written.
public struct HistoryReplay: Sendable {
    public struct Configuration: Sendable {
        public var postgresURL: String
        public var amqpURL: String
        public var storeSchema: EventStoreSchema = .standard
        public var exchange: String
        /// First and last global positions (inclusive); nil `to`: the head when the replay starts.
        public var from: Int64 = 1
        public var to: Int64?
        /// Only these event types (empty: all).
        public var types: [String] = []
        public var batchSize = 500
        /// Events per second at most (nil: as fast as confirms come back).
        public var rate: Double?
        /// Start over even if a replay to this exchange was recorded.
        public var restart = false
        /// Test hook: runs after a batch is confirmed, before its progress is saved.
        public var afterConfirm: @Sendable (_ batch: Int) async throws -> Void = { _ in }

        public init(postgresURL: String, amqpURL: String, exchange: String) {
            self.postgresURL = postgresURL
            self.amqpURL = amqpURL
            self.exchange = exchange
        }
    }

    public struct Progress: Sendable {
        public var published: Int64
        public var total: Int64
        public var lastPosition: Int64
        public var resumed: Bool
        public var finished: Bool
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    var table: String { PostgresIdentifier.quote(configuration.storeSchema.schema) + ".reprise_replays" }

    public func run(progress: (Progress) -> Void = { _ in }) async throws -> Progress {
        let postgres = try await PostgresConnection.connect(url: configuration.postgresURL)
        do {
            let result = try await run(postgres, progress: progress)
            await postgres.close()
            return result
        } catch {
            await postgres.close()
            throw error
        }
    }

    private func run(_ postgres: PostgresConnection, progress: (Progress) -> Void) async throws -> Progress {
        let events = configuration.storeSchema.qualifiedEvents
        try await postgres.execute("""
            CREATE TABLE IF NOT EXISTS \(table) (
                exchange text PRIMARY KEY,
                from_position bigint NOT NULL,
                to_position bigint NOT NULL,
                event_types text NOT NULL,
                last_position bigint NOT NULL,
                published bigint NOT NULL DEFAULT 0,
                started_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                finished_at timestamptz
            )
            """)
        let types = configuration.types.sorted().joined(separator: ",")
        var (last, published, to, resumed) = (configuration.from - 1, Int64(0), configuration.to, false)
        let recorded = try await postgres.query(
            "SELECT from_position, to_position, event_types, last_position, published, finished_at IS NOT NULL FROM \(table) WHERE exchange = $1",
            [.text(configuration.exchange)])
        if recorded.rowCount == 1, !configuration.restart {
            let same = recorded.int64(0, 0) == configuration.from && (configuration.to == nil || recorded.int64(0, 1) == configuration.to) && recorded.string(0, 2) == types
            guard same else {
                throw ReplayError("a replay to \(configuration.exchange) with other bounds is recorded (positions \(recorded.int64(0, 0) ?? 0)...\(recorded.int64(0, 1) ?? 0), types '\(recorded.string(0, 2) ?? "")'): run it with the same options to resume it, or pass --restart")
            }
            if recorded.string(0, 5) == "t" {
                throw ReplayError("the replay to \(configuration.exchange) of positions \(recorded.int64(0, 0) ?? 0)...\(recorded.int64(0, 1) ?? 0) already finished; pass --restart to publish it again")
            }
            (last, published, to, resumed) = (recorded.int64(0, 3) ?? last, recorded.int64(0, 4) ?? 0, recorded.int64(0, 1), true)
        }
        // The end is fixed when the replay starts, so a resumed replay publishes the same range.
        let end: Int64
        if let to { end = to } else { end = try await postgres.query("SELECT coalesce(max(global_position), 0) FROM \(events)").int64(0, 0) ?? 0 }
        if !resumed {
            try await postgres.execute(
                """
                INSERT INTO \(table) (exchange, from_position, to_position, event_types, last_position) VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (exchange) DO UPDATE SET from_position = $2, to_position = $3, event_types = $4, last_position = $5, published = 0,
                    started_at = now(), updated_at = now(), finished_at = NULL
                """, [.text(configuration.exchange), .int(configuration.from), .int(end), .text(types), .int(last)])
        }
        var typeFilter = ""
        var filterParameters: [PostgresValue] = []
        if !configuration.types.isEmpty {
            typeFilter = " AND event_type = ANY($3::text[])"
            filterParameters = [.text(PostgresArrayLiteral.text(configuration.types))]
        }
        let total = try await postgres.query(
            "SELECT count(*) FROM \(events) WHERE global_position >= $1 AND global_position <= $2\(typeFilter)",
            [.int(configuration.from), .int(end)] + filterParameters).int64(0, 0) ?? 0

        let amqp = try await AMQPConnection.connect(url: configuration.amqpURL)
        do {
            try await amqp.declareExchange(configuration.exchange, type: .topic)
            try await amqp.enablePublisherConfirms()
            let started = ContinuousClock.now
            var sentThisRun = 0.0
            var batchNumber = 0
            progress(Progress(published: published, total: total, lastPosition: last, resumed: resumed, finished: false))
            while last < end {
                let limit = configuration.rate.map { max(1, min(configuration.batchSize, Int($0))) } ?? configuration.batchSize
                let result = try await postgres.query(
                    """
                    SELECT \(EventMessage.envelopeColumns("e"))
                    FROM \(events) e WHERE global_position > $1 AND global_position <= $2\(typeFilter)
                    ORDER BY global_position LIMIT \(limit)
                    """, [.int(last), .int(end)] + filterParameters)
                guard result.rowCount > 0 else { break }
                let batch = EventMessage.envelopes(result)
                let outcome = try await amqp.publishConfirmed(batch.map { EventMessage.message($0, exchange: configuration.exchange) })
                guard outcome.nacked.isEmpty else {
                    throw ReplayError("the broker nacked \(outcome.nacked.count) messages of the batch after position \(last); run the replay again to resume")
                }
                batchNumber += 1
                try await configuration.afterConfirm(batchNumber)
                last = batch.last?.position ?? last
                published += Int64(batch.count)
                try await postgres.execute(
                    "UPDATE \(table) SET last_position = $2, published = $3, updated_at = now() WHERE exchange = $1",
                    [.text(configuration.exchange), .int(last), .int(published)])
                progress(Progress(published: published, total: total, lastPosition: last, resumed: resumed, finished: false))
                sentThisRun += Double(batch.count)
                if let rate = configuration.rate {
                    let due = Duration.seconds(sentThisRun / rate) - (ContinuousClock.now - started)
                    if due > .zero { try await Task.sleep(for: due) }
                }
            }
            try await postgres.execute("UPDATE \(table) SET last_position = $2, finished_at = now(), updated_at = now() WHERE exchange = $1",
                                       [.text(configuration.exchange), .int(end)])
            await amqp.close()
        } catch {
            await amqp.close()
            throw error
        }
        let done = Progress(published: published, total: total, lastPosition: end, resumed: resumed, finished: true)
        progress(done)
        return done
    }
}

public struct ReplayError: Error, Sendable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
