import Foundation
import RepriseEngine
import RepriseMySQL
import ReprisePostgres
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Cancellation reaches the servers, and a lost session is reopened only explicitly.
@Suite("Cancellation and explicit reopen (real servers)")
struct CancellationTests {
    @Test func cancellingATaskKillsItsRunningMySQLStatement() async throws {
        let db = try await TestServers.mysql()
        let holder = try await TestServers.mysql()
        let lock = TestServers.uniqueName("lock")
        #expect(try await holder.getLock(lock))
        let waiter = Task { try await db.getLock(lock, timeoutSeconds: 3600) }
        // Cancelled only once the server shows the wait.
        let id = Int64(await db.connectionID)
        try await waitUntil("the GET_LOCK wait to show") {
            try await holder.query(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'SELECT GET_LOCK%'", [.int(id)]).int(0, 0) == 1
        }
        waiter.cancel()
        await #expect {
            try await waiter.value
        } throws: { error in
            (error as? MySQLError)?.code == .cancelled
        }
        // The holder still holds the lock: the wait ended by KILL QUERY, not by a timeout.
        #expect(try await holder.query("SELECT IS_USED_LOCK(?) = CONNECTION_ID()", [.string(lock)]).int(0, 0) == 1)
        // KILL QUERY leaves the session alive: the next statement runs.
        #expect(try await db.query("SELECT 1").int(0, 0) == 1)
        #expect(await db.isLost == false)
        await db.close()
        await holder.close()
    }

    @Test func cancellingATaskCancelsItsRunningPostgresStatement() async throws {
        let db = try await TestServers.postgres()
        let holder = try await TestServers.postgres()
        let key = PostgresAdvisoryLockKey(TestServers.uniqueName("cancel"))
        #expect(try await holder.tryAdvisoryLock(key))
        let waiter = Task { try await db.advisoryLock(key) }
        let pid = Int64(await db.backendPID)
        try await waitUntil("the advisory lock wait to show") {
            try await holder.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", [.int(pid)]).int(0, 0) == 1
        }
        waiter.cancel()
        await #expect {
            try await waiter.value
        } throws: { error in
            (error as? PostgresError)?.code == .cancelled
        }
        #expect(try await holder.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted").int(0, 0) == 1)
        #expect(try await db.query("SELECT 1").int(0, 0) == 1)
        await db.close()
        await holder.close()
    }

    /// SIGTERM while `reprise rebuild` waits in a MySQL statement (GET_LOCK of the swap, held by
    /// this test): the statement is killed on the server, the process unwinds and exits 143
    /// while the blocker still holds the lock, and a rerun finishes the same build.
    @Test func sigtermEndsARebuildInsideALongMySQLStatementAndTheBuildResumes() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 1_500, seed: 61)
        let folder = try streamCountsFolder()
        let lock = RebuildEngine.projectionLockName("stream_counts", database: environment.database)
        let holder = try await MySQLConnectionForLock.hold(lock, url: environment.mysqlURL)
        let arguments = [
            "rebuild", "stream_counts", "--projections-dir", folder, "--store-schema", environment.storeSchema.schema,
            "--chunk-size", "250", "--fetch-size", "100", "--quiet",
        ]
        let stopped = try await Self.stoppedBySIGTERM(arguments, whileWaitingFor: lock, heldBy: holder, environment)
        #expect(!stopped.standardError.contains("could not take"), "the wait must end by the signal, not by its timeout")
        // It ended while the blocker still held the lock.
        #expect(try await holder.query("SELECT IS_USED_LOCK(?) = CONNECTION_ID()", [.string(lock)]).int(0, 0) == 1)
        #expect(try await environment.mysql.query("SHOW TABLES LIKE 'stream_counts'").rowCount == 0)
        await holder.close()

        let resumed = try runReprise(arguments, environment: environment.processVariables)
        #expect(resumed.status == 0, "rerun failed: \(resumed.standardError)")
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        // The rerun finished the interrupted build instead of starting another.
        let builds = try await environment.mysql.query("SELECT state FROM reprise_builds ORDER BY build_id")
        #expect(builds.rows.map { $0[0] } == ["active"])
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    /// Runs `reprise` with `arguments` until it waits for `lock` (held by `holder`) in a MySQL
    /// statement, sends SIGTERM, and checks it unwound: exit 143, "stopped by SIGTERM".
    private static func stoppedBySIGTERM(
        _ arguments: [String], whileWaitingFor lock: String, heldBy holder: MySQLConnection, _ environment: RebuildEnvironment
    ) async throws -> ProcessOutcome {
        let process = try BackgroundProcess(arguments, environment: environment.processVariables)
        try await waitUntil("`reprise \(arguments[0])` to wait for \(lock)") {
            try await holder.query(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND INFO LIKE ?",
                [.string("SELECT GET_LOCK('\(lock)'%")]).int(0, 0) == 1
        }
        return try await process.stoppedBySIGTERM()
    }

    /// The same for `reprise migrate`: SIGTERM while the new version waits for the swap's lock
    /// (held by this test) unwinds the process with 143, and a rerun finishes that build of the
    /// new version. The build's settings are rebuild's (`--flush-mib`, `--index-builds`, ...).
    @Test func sigtermEndsAMigrationInsideALongMySQLStatementAndTheMigrationResumes() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 1_500, seed: 63)
        let folder = try streamCountsFolder()
        let common = ["--projections-dir", folder, "--store-schema", environment.storeSchema.schema, "--quiet"]
        let first = try runReprise(["rebuild", "stream_counts"] + common, environment: environment.processVariables)
        try #require(first.status == 0, "\(first.standardError)")
        try streamCountsYAML.replacing("version: 1", with: "version: 2").write(toFile: folder + "/stream_counts.yml", atomically: true, encoding: .utf8)
        let lock = RebuildEngine.projectionLockName("stream_counts", database: environment.database)
        let holder = try await MySQLConnectionForLock.hold(lock, url: environment.mysqlURL)
        let arguments = ["migrate", "stream_counts", "--flush-mib", "1", "--row-cache-mib", "1", "--index-builds", "1", "--fetch-size", "100"] + common
        let stopped = try await Self.stoppedBySIGTERM(arguments, whileWaitingFor: lock, heldBy: holder, environment)
        #expect(stopped.standardError.contains("run the same command again to resume"), "\(stopped.standardError)")
        // It ended while the blocker still held the lock, and version 1 is still the live one.
        #expect(try await holder.query("SELECT IS_USED_LOCK(?) = CONNECTION_ID()", [.string(lock)]).int(0, 0) == 1)
        await holder.close()
        #expect(try await environment.mysql.query("SELECT version FROM reprise_builds WHERE state = 'active'").rows.map { $0[0] } == ["1"])

        let resumed = try runReprise(arguments, environment: environment.processVariables)
        #expect(resumed.status == 0, "rerun failed: \(resumed.standardError)")
        #expect(resumed.standardOutput.contains("migrated from v1"), "\(resumed.standardOutput)")
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        // The rerun finished the interrupted build of version 2 instead of starting another.
        let builds = try await environment.mysql.query("SELECT version, state FROM reprise_builds ORDER BY build_id")
        #expect(builds.rows.map { "\($0[0] ?? "") \($0[1] ?? "")" } == ["1 retired", "2 active"])
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    /// And for `reprise rollback`: SIGTERM while the retired build waits for the swap's lock
    /// leaves the live build live, and a rerun rolls back.
    @Test func sigtermEndsARollbackInsideALongMySQLStatementAndARerunRollsBack() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 1_000, seed: 64)
        let folder = try streamCountsFolder()
        let common = ["--projections-dir", folder, "--store-schema", environment.storeSchema.schema]
        for _ in 0..<2 {
            let rebuilt = try runReprise(["rebuild", "stream_counts", "--quiet"] + common, environment: environment.processVariables)
            try #require(rebuilt.status == 0, "\(rebuilt.standardError)")
        }
        let active = "SELECT build_id FROM reprise_builds WHERE state = 'active'"
        let second = try #require(try await environment.mysql.query(active).rows.first?.first ?? nil)
        let lock = RebuildEngine.projectionLockName("stream_counts", database: environment.database)
        let holder = try await MySQLConnectionForLock.hold(lock, url: environment.mysqlURL)
        let arguments = ["rollback", "stream_counts"] + common
        let stopped = try await Self.stoppedBySIGTERM(arguments, whileWaitingFor: lock, heldBy: holder, environment)
        #expect(stopped.standardError.contains("run the same command again to roll back"), "\(stopped.standardError)")
        #expect(try await environment.mysql.query(active).rows.map { $0[0] } == [second], "the live build stays live")
        await holder.close()

        let rolledBack = try runReprise(arguments, environment: environment.processVariables)
        #expect(rolledBack.status == 0, "rerun failed: \(rolledBack.standardError)")
        #expect(try await environment.mysql.query(active).rows.map { $0[0] } != [second], "the retired build is live again")
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    /// The same for `reprise repair`: SIGTERM while it waits for the projection lock (held by
    /// this test, as a live worker's catch-up would) unwinds it with 143 and the damaged row
    /// stays as it was; the same command then repairs it.
    @Test func sigtermEndsARepairWaitingForTheProjectionLockAndARerunRepairs() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 1_000, seed: 65)
        let folder = try streamCountsFolder()
        let common = ["--projections-dir", folder, "--store-schema", environment.storeSchema.schema]
        let rebuilt = try runReprise(["rebuild", "stream_counts", "--quiet"] + common, environment: environment.processVariables)
        try #require(rebuilt.status == 0, "\(rebuilt.standardError)")
        let stream = try #require(try await environment.mysql.query("SELECT stream_id FROM stream_counts ORDER BY stream_id LIMIT 1").rows.first?.first ?? nil)
        try await environment.mysql.execute("UPDATE stream_counts SET events = 0 WHERE stream_id = ?", [.string(stream)])
        let lock = RebuildEngine.projectionLockName("stream_counts", database: environment.database)
        let holder = try await MySQLConnectionForLock.hold(lock, url: environment.mysqlURL)
        let arguments = ["repair", "stream_counts", "--stream", stream] + common
        let stopped = try await Self.stoppedBySIGTERM(arguments, whileWaitingFor: lock, heldBy: holder, environment)
        #expect(stopped.standardError.contains("run the same command again to repair"), "\(stopped.standardError)")
        #expect(try await environment.mysql.query("SELECT events FROM stream_counts WHERE stream_id = ?", [.string(stream)]).int(0, 0) == 0)
        await holder.close()

        let repaired = try runReprise(arguments, environment: environment.processVariables)
        #expect(repaired.status == 0, "rerun failed: \(repaired.standardError)")
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    /// `reprise trace` reads only, but a trace of a payload key scans the store: SIGTERM while
    /// its read waits (here for a lock this test holds on the events table) cancels the read on
    /// PostgreSQL and exits 143, leaving no session behind.
    @Test func sigtermEndsATraceWaitingForTheEventStoreAndCancelsItsRead() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 300, seed: 66)
        let folder = try streamCountsFolder()
        let events = environment.storeSchema.qualifiedEvents
        let stream = try #require(try await environment.postgres.query("SELECT stream_id FROM \(events) ORDER BY global_position LIMIT 1").string(0, 0))
        try await environment.postgres.execute("BEGIN")
        try await environment.postgres.execute("LOCK TABLE \(events) IN ACCESS EXCLUSIVE MODE")
        // Sessions waiting for the lock this test holds (not any lock: tests running beside this
        // one wait for their own advisory locks in the same database). Inside this test's
        // transaction, pg_stat_activity keeps what it showed at its first read unless the
        // snapshot is cleared.
        let waitingSessions = {
            try await environment.postgres.execute("SELECT pg_stat_clear_snapshot()")
            return try await environment.postgres.query(
                "SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY (pg_blocking_pids(pid))"
            ).int64(0, 0)
        }
        let process = try BackgroundProcess(
            ["trace", "stream_counts", "--stream", stream, "--projections-dir", folder, "--store-schema", environment.storeSchema.schema],
            environment: environment.processVariables)
        try await waitUntil("`reprise trace` to wait for the events table") { try await waitingSessions() == 1 }
        _ = try await process.stoppedBySIGTERM()
        #expect(try await waitingSessions() == 0, "the trace's read was cancelled, not left waiting")
        try await environment.postgres.execute("ROLLBACK")

        let traced = try runReprise(
            ["trace", "stream_counts", "--stream", stream, "--projections-dir", folder, "--store-schema", environment.storeSchema.schema],
            environment: environment.processVariables)
        #expect(traced.status == 0, "\(traced.standardError)")
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    /// A chunk whose statement waits on a row lock longer than the connect timeout (1 s here)
    /// is not a lost session: the writer reads for longer (`RebuildEngine.writerReadTimeoutSeconds`),
    /// and the chunk commits once the lock is free, with no reopen and no redo.
    @Test func aChunkWaitingOnARowLockLongerThanTheConnectTimeoutIsNotALostSession() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 1_000, seed: 67)
        let holder = try await TestServers.mysql()
        let once = FireOnce()
        let reopens = ReopenLog()
        var hooks = RebuildHooks()
        // After chunk 1, the test locks the build's row for 3 s: chunk 2's checkpoint update waits on it.
        hooks.afterChunkCommit = { chunk in
            guard chunk == 1, await once.fire() else { return }
            try await holder.begin()
            _ = try await holder.query("SELECT build_id FROM \(environment.database).reprise_builds WHERE state = 'building' FOR UPDATE")
            Task {
                try await Task.sleep(for: .seconds(3))
                try await holder.rollback()
            }
        }
        hooks.connectionReopened = { chunk, reopened in await reopens.add(chunk, reopened) }
        let url = environment.mysqlURL + (environment.mysqlURL.contains("?") ? "&" : "?") + "connect-timeout=1"
        var options = RebuildOptions()
        options.chunkSize = 200
        options.fetchSize = 200
        let engine = RebuildEngine(postgresURL: TestServers.postgresURL, mysqlURL: url, storeSchema: environment.storeSchema, options: options)
        let results = try await engine.rebuild([.file(try streamCounts())], hooks: hooks)
        #expect(await !once.fire(), "the lock was taken")
        let reopened = await reopens.entries.map { "\($0.reopened)" }
        #expect(reopened.isEmpty, "no session was lost: \(reopened)")
        #expect(results[0].swapped)
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        await holder.close()
        await environment.tearDown()
    }

    /// KILL CONNECTION of the rebuild's MySQL session inside a chunk's transaction: the loss is
    /// reported, the session is reopened explicitly (losing nothing the chunk needs), the chunk is
    /// redone, and every event counts once.
    @Test func aLostMySQLSessionInsideAChunkIsReopenedExplicitlyAndNothingIsAppliedTwice() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 2_000, seed: 62)
        let admin = try await TestServers.mysql()
        let once = FireOnce()
        let reopens = ReopenLog()
        var hooks = RebuildHooks()
        let database = environment.database
        hooks.beforeChunkCommit = { number in
            guard number == 3, await once.fire() else { return }
            // The rebuild's writer: the one session of this database inside a transaction.
            let writer = try await admin.query(
                """
                SELECT t.trx_mysql_thread_id FROM information_schema.INNODB_TRX t
                JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id WHERE p.DB = ?
                """, [.string(database)])
            #expect(writer.rowCount == 1)
            if let id = writer.int64(0, 0) { try await admin.execute("KILL CONNECTION ?", [.int(id)]) }
        }
        hooks.connectionReopened = { chunk, reopened in await reopens.add(chunk, reopened) }
        let definition = try streamCounts()
        let results = try await environment.engine { $0.chunkSize = 200; $0.fetchSize = 200 }.rebuild([.file(definition)], hooks: hooks)
        #expect(await !once.fire(), "the fault fired")

        let reported = await reopens.entries
        #expect(reported.count == 1)
        #expect(reported.first?.chunk == 3)
        #expect(reported.first?.reopened.wasLost == true)
        #expect(reported.first?.reopened.lostNamedLocks == [])
        #expect(reported.first?.reopened.lostSessionSettings == [])

        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        let handled = try await environment.handledEventCount(definition)
        #expect(results.first?.eventsApplied == handled)
        let recorded = try await environment.mysql.query("SELECT events_applied FROM reprise_builds WHERE state = 'active'").int64(0, 0)
        #expect(recorded == handled, "each event counted once in the checkpoint")
        await admin.close()
        await environment.tearDown()
    }
}

/// The reopens a rebuild reported.
actor ReopenLog {
    private(set) var entries: [(chunk: Int?, reopened: MySQLReopened)] = []
    func add(_ chunk: Int?, _ reopened: MySQLReopened) { entries.append((chunk, reopened)) }
}
