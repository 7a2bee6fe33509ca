import RepriseEventStore
import ReprisePostgres
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `reprise init` and `reprise demo seed` on a store in use: a write transaction stays open on
/// `events` while they run (the real binary), and no writer ever waits behind them.
@Suite struct InitNonBlockingTests {
    struct Store {
        let schema: EventStoreSchema
        /// The database the store lives in.
        let url: String
        let admin: PostgresConnection
        let holder: PostgresConnection
        var holderPID: Int64 = 0

        static func make(url: String = TestServers.postgresURL) async throws -> Store {
            let admin = try await PostgresConnection.connect(url: url)
            let schema = try EventStoreSchema(schema: TestServers.uniqueName("init"))
            try await EventStore(schema: schema).initialize(on: admin)
            var store = Store(schema: schema, url: url, admin: admin, holder: try await PostgresConnection.connect(url: url))
            store.holderPID = try await store.holder.query("SELECT pg_backend_pid()").int64(0, 0) ?? 0
            return store
        }

        /// Opens a write transaction on `events` and leaves it open.
        func holdWriteTransaction() async throws {
            try await holder.execute("BEGIN")
            try await insert(on: holder, stream: "held-1")
        }

        func insert(on connection: PostgresConnection, stream: String) async throws {
            try await connection.execute(
                "INSERT INTO \(schema.qualifiedEvents) (event_id, stream_id, stream_version, event_type, payload) VALUES (gen_random_uuid(), $1, 1, 'Held', '{}')",
                [.text(stream)])
        }

        /// Runs `arguments` (the real binary) while watching for sessions that wait on a lock of
        /// the store's tables, or behind the held transaction; returns the outcome and what waited.
        func runWatching(_ arguments: [String]) async throws -> (ProcessOutcome, [String]) {
            let process = try BackgroundProcess(arguments + ["--store-schema", schema.schema, "--postgres-url", url])
            var waiters: [String] = []
            while process.process.isRunning {
                let result = try await admin.query(
                    """
                    SELECT a.pid::text || ' ' || coalesce(a.query, '') FROM pg_stat_activity a
                    WHERE a.pid <> pg_backend_pid() AND (
                        $1::int = ANY(pg_blocking_pids(a.pid))
                        OR EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted AND l.locktype = 'relation'
                                   AND l.relation IN (to_regclass($2), to_regclass($3))))
                    """, [.int(holderPID), .text(schema.qualifiedEvents), .text(schema.qualifiedOutbox)])
                for row in 0..<result.rowCount { waiters.append(result.string(row, 0) ?? "") }
                try await Task.sleep(for: .milliseconds(20))
            }
            return (try await process.finish(limit: .seconds(60)), waiters)
        }

        func close() async {
            _ = try? await holder.execute("ROLLBACK")
            await holder.close()
            _ = try? await admin.execute("DROP SCHEMA \(schema.schema) CASCADE")
            await admin.close()
        }
    }

    @Test func initAndDemoSeedFinishBesideAnOpenWriteTransactionAndBlockNoWriter() async throws {
        let store = try await Store.make()
        try await store.holdWriteTransaction()

        let (initialized, initWaiters) = try await store.runWatching(["init"])
        #expect(initialized.status == 0, "\(initialized.standardError)")
        #expect(initialized.standardOutput.contains("kept \(store.schema.schema).events"), "\(initialized.standardOutput)")
        #expect(initWaiters.isEmpty, "sessions waited while init ran: \(initWaiters)")

        let (seeded, seedWaiters) = try await store.runWatching(["demo", "seed", "--events", "300", "--batch-size", "100", "--quiet"])
        #expect(seeded.status == 0, "\(seeded.standardError)")
        #expect(seedWaiters.isEmpty, "sessions waited while demo seed ran: \(seedWaiters)")
        #expect(try await store.admin.query("SELECT count(*) FROM \(store.schema.qualifiedEvents)").int64(0, 0) == 300)

        // The open transaction's writer was never blocked: it writes on and commits.
        try await store.holder.execute("SET LOCAL statement_timeout = '10s'")
        try await store.insert(on: store.holder, stream: "held-2")
        try await store.holder.execute("COMMIT")
        #expect(try await store.admin.query("SELECT count(*) FROM \(store.schema.qualifiedEvents) WHERE stream_id LIKE 'held-%'").int64(0, 0) == 2)
        await store.close()
    }

    /// A missing index on a table in use: init gives up at once, says what it would have run, and
    /// builds it on the next run once the table is quiet.
    @Test func initDefersAMissingIndexWhileTheTableIsInUse() async throws {
        // CREATE INDEX CONCURRENTLY waits for every older transaction of its database: a database
        // of its own keeps the suite's other tests (run in parallel) out of what it waits for.
        let server = try await TestServers.postgres()
        let database = TestServers.uniqueName("init_db")
        try await server.execute("CREATE DATABASE \(database)")
        do {
            try await initDefersAMissingIndex(url: TestServers.postgresURL(database: database))
        } catch {
            _ = try? await server.execute("DROP DATABASE \(database) WITH (FORCE)")
            await server.close()
            throw error
        }
        try await server.execute("DROP DATABASE \(database) WITH (FORCE)")
        await server.close()
    }

    private func initDefersAMissingIndex(url: String) async throws {
        let store = try await Store.make(url: url)
        let index = "\(store.schema.schema).\(store.schema.eventsTable)_transaction_position_idx"
        try await store.admin.execute("DROP INDEX \(index)")
        try await store.holdWriteTransaction()

        let (busy, waiters) = try await store.runWatching(["init", "--lock-timeout-ms", "100"])
        #expect(busy.status == 75, "not done: a script must not go on as if it were (\(busy.standardError))")
        #expect(busy.standardOutput.contains("not done"), "\(busy.standardOutput)")
        #expect(busy.standardOutput.contains("CREATE INDEX CONCURRENTLY IF NOT EXISTS"), "\(busy.standardOutput)")
        // Only init itself may have waited (for the open transaction, within its lock timeout): no writer.
        let initPID = waiters.compactMap { $0.split(separator: " ").first }.first
        #expect(waiters.allSatisfy { $0.contains("CREATE INDEX CONCURRENTLY") || $0.split(separator: " ").first == initPID }, "\(waiters)")
        try await store.holder.execute("SET LOCAL statement_timeout = '10s'")
        try await store.insert(on: store.holder, stream: "held-2")
        try await store.holder.execute("COMMIT")

        // CONCURRENTLY also waits for transactions elsewhere in the database: a longer lock
        // timeout lets it, and writers go on meanwhile.
        let quiet = try runReprise(["init", "--lock-timeout-ms", "60000", "--store-schema", store.schema.schema, "--postgres-url", url])
        #expect(quiet.status == 0, "\(quiet.standardError)")
        #expect(quiet.standardOutput.contains("created index \(index)"), "\(quiet.standardOutput)")
        #expect(!quiet.standardOutput.contains("not done"), "\(quiet.standardOutput)")
        let valid = try await store.admin.query("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)", [.text(index)])
        #expect(valid.bool(0, 0) == true)
        await store.close()
    }
}
