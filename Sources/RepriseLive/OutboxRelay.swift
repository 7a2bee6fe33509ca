import RepriseAMQP
import RepriseEngine
import RepriseEventSource
import RepriseEventStore
import ReprisePostgres

/// Publishes outbox rows to RabbitMQ and marks them published.
///
/// - Exactly one relay is active per outbox share: a PostgreSQL advisory lock elects it; others
///   stand by, retrying the lock, and take over when the active one dies (its session ends, the
///   lock goes). With `shares` > 1 the outbox is split by hash of the stream id, so several relays
///   publish at once while each stream's events still go out in order, from one relay at a time.
/// - Rows are read in position order, published with publisher confirms, and marked published only
///   after the broker confirmed them. A crash between publish and mark republishes: consumers
///   deduplicate (the live worker reads the event store by snapshot, so a duplicate changes nothing).
/// - Wakes on `NOTIFY reprise_outbox` (sent by appends), with a polling fallback.
/// - RabbitMQ down: retries with exponential backoff; nothing is marked until confirmed.
/// - Published rows older than `retention` are deleted.
public struct OutboxRelay: Sendable {
    public struct Configuration: Sendable {
        public var postgresURL: String
        public var amqpURL: String
        public var storeSchema: EventStoreSchema = .standard
        /// Another outbox table than Reprise's own (nil): an application's, by preset or mapping.
        public var outbox: OutboxMapping?
        public var exchange = "reprise.events"
        public var batchSize = 500
        /// Persistent messages survive a broker restart (for other consumers of the exchange).
        /// Reprise's live workers only take them as triggers and read the store, so transient
        /// ones lose nothing for them and cost the broker no disk writes.
        public var persistentMessages = true
        /// Shares the outbox is split into, by hash of the stream id. Every relay of an outbox must
        /// use the same number.
        public var shares = 1
        /// How many shares this relay takes at most (nil: all it can get).
        public var maxShares: Int?
        /// This relay's name in `reprise status` (host:pid by default in the CLI).
        public var owner = "relay"
        public var pollInterval: Duration = .seconds(1)
        public var retention: Duration = .seconds(7 * 24 * 3600)
        public var cleanupInterval: Duration = .seconds(60)
        public var maxBackoff: Duration = .seconds(10)
        /// Test hook: runs after a batch is confirmed by the broker and before it is marked
        /// published; throwing there is a crash between publish and mark.
        public var afterPublish: @Sendable (_ batch: Int) async throws -> Void = { _ in }

        public init(postgresURL: String, amqpURL: String) {
            self.postgresURL = postgresURL
            self.amqpURL = amqpURL
        }
    }

    /// What the relay reports, for logs and metrics.
    public enum Event: Sendable {
        case standingBy
        case active
        /// The shares this relay holds now (reported when they change, with `shares` > 1).
        case sharesOwned([Int])
        case published(count: Int, lastPosition: Int64, returned: Int)
        case brokerUnavailable(String, retryIn: Duration)
        case cleanedUp(rows: Int)
    }

    public let configuration: Configuration

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    public static let notifyChannel = "reprise_outbox"

    public var lockKey: PostgresAdvisoryLockKey {
        LockNames.relay(outbox: outboxName)
    }

    /// `schema.table` of the outbox this relay publishes.
    public var outboxName: String {
        if let outbox = configuration.outbox, !outbox.isReprise { return "\(outbox.schema).\(outbox.table)" }
        return "\(configuration.storeSchema.schema).\(configuration.storeSchema.outboxTable)"
    }

    /// The lock of one share (the single relay lock when the outbox is not split).
    public func lockKey(share: Int) -> PostgresAdvisoryLockKey {
        guard configuration.shares > 1 else { return lockKey }
        return LockNames.relay(outbox: outboxName, share: share, of: configuration.shares)
    }

    /// Takes the free shares' locks, up to `maxShares`; returns the shares held now.
    private func claimShares(_ owned: [Int], on leader: PostgresConnection) async throws -> [Int] {
        var owned = owned
        let limit = min(configuration.maxShares ?? configuration.shares, configuration.shares)
        for share in 0..<configuration.shares where owned.count < limit && !owned.contains(share) {
            if try await leader.tryAdvisoryLock(lockKey(share: share)) { owned.append(share) }
        }
        return owned.sorted()
    }

    /// Runs until `stop` is set. Throws on PostgreSQL failures (a supervisor restarts the process).
    public func run(stop: StopSignal, metrics: MetricsRegistry? = nil, report: @escaping @Sendable (Event) -> Void = { _ in }) async throws {
        let report: @Sendable (Event) -> Void = { event in
            if let metrics { Self.record(event, in: metrics) }
            report(event)
        }
        let leader = try await PostgresConnection.connect(url: configuration.postgresURL)
        // Both sessions close before this returns, whatever happens (the leader's end releases
        // the share locks a failure left held).
        do {
            let work = try await PostgresConnection.connect(url: configuration.postgresURL)
            do {
                try await run(leader: leader, work: work, stop: stop, metrics: metrics, report: report)
            } catch {
                await work.close()
                throw error
            }
            await work.close()
        } catch {
            await leader.close()
            throw error
        }
        await leader.close()
    }

    private func run(
        leader: PostgresConnection, work: PostgresConnection, stop: StopSignal, metrics: MetricsRegistry?, report: @escaping @Sendable (Event) -> Void
    ) async throws {
        // A backlog grows faster than autovacuum's statistics: planning with "few unpublished
        // rows" picks a bitmap scan, joins every unpublished row and sorts them, once per batch
        // (seen at 85 ms per batch of 500 on 38,000 rows). Without bitmap scans and sorts the plan
        // is the ordered partial index, stopping at the batch size, whatever the statistics say.
        try await work.execute("SET enable_bitmapscan = off")
        try await work.execute("SET enable_sort = off")
        // A mapping is checked against the catalog before any row is read.
        let source = try await Source.prepare(configuration, on: work)
        // Relays of one outbox split into different share counts would publish rows twice.
        try await joinRelays(on: leader)

        var announcedStandby = false
        var owned: [Int] = []
        while !stop.isStopped {
            metrics?.heartbeat()
            owned = try await claimShares(owned, on: leader)
            if !owned.isEmpty { break }
            if !announcedStandby { report(.standingBy); announcedStandby = true }
            await stop.sleep(configuration.pollInterval)
        }
        guard !stop.isStopped else { return }
        report(.active)
        if configuration.shares > 1 { report(.sharesOwned(owned)) }
        try await announce(owned, on: leader)
        var lastClaim = ContinuousClock.now
        try await leader.listen(Self.notifyChannel)

        var amqp: AMQPConnection?
        var backoff: Duration = .milliseconds(200)
        var lastCleanup = ContinuousClock.now - configuration.cleanupInterval
        var batchNumber = 0
        var lastBacklogCount = ContinuousClock.now - .seconds(1)
        while !stop.isStopped {
            if source.cleansUp, ContinuousClock.now - lastCleanup >= configuration.cleanupInterval {
                let removed = try await cleanUp(work)
                if removed > 0 { report(.cleanedUp(rows: removed)) }
                lastCleanup = ContinuousClock.now
            }
            metrics?.heartbeat()
            // Shares whose relay died (its lock went with its session) are taken over here.
            if configuration.shares > 1, owned.count < min(configuration.maxShares ?? configuration.shares, configuration.shares),
                ContinuousClock.now - lastClaim >= configuration.pollInterval
            {
                lastClaim = ContinuousClock.now
                let claimed = try await claimShares(owned, on: leader)
                if claimed != owned {
                    owned = claimed
                    report(.sharesOwned(owned))
                    try await announce(owned, on: leader)
                }
            }
            let batch = try await source.next(self, work, shares: owned)
            if let metrics {
                // A short batch is the whole backlog; behind a full one, count (at most once a second).
                if batch.count < configuration.batchSize {
                    metrics.set("reprise_relay_backlog", Double(batch.count), help: Self.backlogHelp)
                } else if ContinuousClock.now - lastBacklogCount >= .seconds(1) {
                    lastBacklogCount = ContinuousClock.now
                    metrics.set("reprise_relay_backlog", Double(try await source.backlog(self, work, shares: owned)), help: Self.backlogHelp)
                }
            }
            if batch.isEmpty {
                _ = try await leader.waitForNotifications(timeoutMilliseconds: Int32(configuration.pollInterval.components.seconds * 1000 + configuration.pollInterval.components.attoseconds / 1_000_000_000_000_000))
                continue
            }
            do {
                let connection: AMQPConnection
                if let amqp { connection = amqp } else {
                    connection = try await AMQPConnection.connect(url: configuration.amqpURL)
                    try await connection.declareExchange(configuration.exchange, type: .topic)
                    amqp = connection
                }
                let outcome = try await connection.publishConfirmed(batch.messages)
                guard outcome.nacked.isEmpty else {
                    throw AMQPError(code: .publishRejected, message: "the broker nacked \(outcome.nacked.count) messages")
                }
                batchNumber += 1
                try await configuration.afterPublish(batchNumber)
                try await source.markPublished(batch, self, work)
                backoff = .milliseconds(200)
                report(.published(count: batch.count, lastPosition: batch.lastPosition, returned: outcome.returnedMessageIDs.count))
            } catch let error as AMQPError {
                await amqp?.close()
                amqp = nil
                report(.brokerUnavailable("\(error)", retryIn: backoff))
                await stop.sleep(backoff)
                backoff = min(backoff * 2, configuration.maxBackoff)
            }
        }
        await amqp?.close()
        for share in owned { _ = try? await leader.advisoryUnlock(lockKey(share: share)) }
    }

    // MARK: - What `reprise status` shows

    /// An active relay as PostgreSQL shows it: its session's `application_name`.
    public struct Announcement: Sendable, Equatable {
        public var owner: String
        public var outbox: String
        public var shares: [Int]
        public var of: Int
        /// Seconds since the relay's session started.
        public var sessionSeconds: Double
    }

    static let announcementPrefix = "reprise relay "

    /// Puts who publishes which shares into the session's `application_name`, which every role can
    /// read in `pg_stat_activity`: no table, no extra grant.
    func announce(_ shares: [Int], on leader: PostgresConnection) async throws {
        let tail = " \(outboxName) "
            + shares.map(String.init).joined(separator: ",") + "/\(configuration.shares)"
        // PostgreSQL keeps 63 bytes of it: the owner (a long host name) is what gets shortened.
        let room = max(1, 63 - Self.announcementPrefix.utf8.count - tail.utf8.count)
        let owner = String(configuration.owner.replacing(" ", with: "_").unicodeScalars.filter(\.isASCII).map(Character.init).prefix(room))
        _ = try await leader.query("SELECT set_config('application_name', $1, false)", [.text(Self.announcementPrefix + owner + tail)])
    }

    /// The active relays of every outbox of this database.
    public static func announcements(on connection: PostgresConnection) async throws -> [Announcement] {
        let result = try await connection.query(
            """
            SELECT application_name, extract(epoch FROM now() - backend_start)::float8 FROM pg_stat_activity
            WHERE application_name LIKE 'reprise relay %' AND datname = current_database() ORDER BY application_name
            """)
        return (0..<result.rowCount).compactMap { row in
            guard let text = result.string(row, 0) else { return nil }
            let parts = text.dropFirst(announcementPrefix.count).split(separator: " ")
            guard parts.count == 3, let slash = parts[2].lastIndex(of: "/"), let of = Int(parts[2][parts[2].index(after: slash)...]) else { return nil }
            let shares = parts[2][..<slash].split(separator: ",").compactMap { Int($0) }
            return Announcement(owner: String(parts[0]), outbox: String(parts[1]), shares: shares, of: of, sessionSeconds: result.double(row, 1) ?? 0)
        }
    }

    static func record(_ event: Event, in metrics: MetricsRegistry) {
        switch event {
        case .standingBy: metrics.set("reprise_relay_active", 0, help: "1 when this relay holds the outbox lock.")
        case .active: metrics.set("reprise_relay_active", 1, help: "1 when this relay holds the outbox lock.")
        case .sharesOwned(let shares): metrics.set("reprise_relay_shares_owned", Double(shares.count), help: "Outbox shares this relay publishes.")
        case .published(let count, let last, let returned):
            metrics.add("reprise_relay_published_total", Double(count), help: "Messages published and confirmed.")
            metrics.add("reprise_relay_unroutable_total", Double(returned), help: "Messages returned as unroutable.")
            metrics.set("reprise_relay_last_position", Double(last), help: "Global position of the last published event.")
        case .brokerUnavailable: metrics.add("reprise_relay_broker_errors_total", 1, help: "Failed publish attempts.")
        case .cleanedUp(let rows): metrics.add("reprise_relay_cleaned_rows_total", Double(rows), help: "Published rows deleted after retention.")
        }
    }

    static let backlogHelp = "Unpublished outbox rows of the shares this relay holds."

    /// Unpublished rows of `shares`.
    func backlog(_ connection: PostgresConnection, shares: [Int]) async throws -> Int64 {
        let (shareFilter, parameters) = shareFilter(shares, firstParameter: 1)
        let schema = configuration.storeSchema
        // The events table is only needed to tell shares apart.
        let events = shareFilter.isEmpty ? "" : " JOIN \(schema.qualifiedEvents) e USING (global_position)"
        return try await connection.query(
            "SELECT count(*) FROM \(schema.qualifiedOutbox) o\(events) WHERE o.published_at IS NULL\(shareFilter)",
            parameters).int64(0, 0) ?? 0
    }

    /// The condition on `e.stream_id` for `shares` (nothing when the outbox is not split).
    private func shareFilter(_ shares: [Int], firstParameter n: Int) -> (String, [PostgresValue]) {
        guard configuration.shares > 1 else { return ("", []) }
        // The share of a stream: a stable hash of its id, so a stream never changes share.
        return (" AND (hashtext(e.stream_id) & 2147483647) % $\(n) = ANY($\(n + 1)::int[])",
                [.int(Int64(configuration.shares)), .text(PostgresArrayLiteral.integers(shares.map { Int64($0) }))])
    }

    /// The next unpublished rows, in position order, with their events.
    public func unpublished(_ connection: PostgresConnection, shares: [Int] = [0]) async throws -> [EventMessage.Envelope] {
        let schema = configuration.storeSchema
        let (shareFilter, more) = shareFilter(shares, firstParameter: 2)
        let parameters: [PostgresValue] = [.int(Int64(configuration.batchSize))] + more
        let result = try await connection.query(
            """
            SELECT \(EventMessage.envelopeColumns("e"))
            FROM \(schema.qualifiedOutbox) o JOIN \(schema.qualifiedEvents) e USING (global_position)
            WHERE o.published_at IS NULL\(shareFilter) ORDER BY o.global_position LIMIT $1
            """, parameters)
        return EventMessage.envelopes(result)
    }

    func markPublished(_ positions: [Int64], _ connection: PostgresConnection) async throws {
        try await connection.execute(
            "UPDATE \(configuration.storeSchema.qualifiedOutbox) SET published_at = now(), publish_attempts = publish_attempts + 1 WHERE global_position = ANY($1::bigint[])",
            [.text(PostgresArrayLiteral.integers(positions))])
    }

    func cleanUp(_ connection: PostgresConnection) async throws -> Int {
        let seconds = configuration.retention.components.seconds
        return try await connection.execute(
            "DELETE FROM \(configuration.storeSchema.qualifiedOutbox) WHERE published_at < now() - make_interval(secs => $1)", [.int(seconds)])
    }
}
