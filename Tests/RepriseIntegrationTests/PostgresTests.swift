import ReprisePostgres
import Testing

@Suite("PostgreSQL wrapper (real server)")
struct PostgresTests {
    @Test func parameterizedQueryRoundTripsTrickyValues() async throws {
        let db = try await TestServers.postgres()
        let tricky = "quote ' double \" backslash \\ semicolon; -- comment\nnewline, ünïcødé 🎉"
        let result = try await db.query(
            "SELECT $1::text, $2::bigint, $3::double precision, $4::boolean, $5::text IS NULL, octet_length($6::bytea)",
            [.text(tricky), .int(-9_007_199_254_740_993), .double(2.5), .bool(true), .null, .bytes([0, 1, 2, 0, 255])])
        #expect(result.string(0, 0) == tricky)
        #expect(result.int64(0, 1) == -9_007_199_254_740_993)
        #expect(result.double(0, 2) == 2.5)
        #expect(result.bool(0, 3) == true)
        #expect(result.bool(0, 4) == true)
        #expect(result.int(0, 5) == 5)
        #expect(result.columnNames.count == 6)
        await db.close()
    }

    /// `withValueBytes` asks libpq whether a value is NULL only when it is empty: NULL and the empty
    /// string must still differ, in every accessor.
    @Test func nullAndEmptyValuesStayApart() async throws {
        let db = try await TestServers.postgres()
        let result = try await db.query("SELECT NULL::text, ''::text, 'x'::text, NULL::bigint, '{}'::jsonb::text")
        #expect(result.string(0, 0) == nil && result.isNull(0, 0))
        #expect(result.string(0, 1) == "" && !result.isNull(0, 1))
        #expect(result.string(0, 2) == "x")
        #expect(result.int64(0, 3) == nil && result.int64(0, 1) == nil)
        #expect(result.withValueBytes(0, 0) { $0 == nil })
        #expect(result.withValueBytes(0, 1) { $0?.count == 0 })
        #expect(result.withValueBytes(0, 4) { $0.map { Array($0) } == Array("{}".utf8) })
        #expect(result.withValueBytes(1, 0) { $0 == nil } && result.withValueBytes(0, 5) { $0 == nil })
        await db.close()
    }

    @Test func badStatementGivesTypedErrorWithSQLState() async throws {
        let db = try await TestServers.postgres()
        await #expect {
            try await db.query("SELECT * FROM no_such_table_here")
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.code == .server && error.sqlState == .undefinedTable && error.message.contains("no_such_table_here")
                && error.query == "SELECT * FROM no_such_table_here"
        }
        await #expect {
            try await db.query("SELEC 1")
        } throws: { error in
            (error as? PostgresError)?.sqlState == .syntaxError
        }
        // The connection stays usable after a failed statement.
        #expect(try await db.query("SELECT 1").int(0, 0) == 1)
        await db.close()
    }

    @Test func sqlStateClassesMatchInPatterns() {
        #expect(SQLState.integrityConstraintViolationClass ~= SQLState.uniqueViolation)
        #expect(!(SQLState.integrityConstraintViolationClass ~= SQLState.syntaxError))
        #expect(SQLState.uniqueViolation ~= SQLState(rawValue: "23505"))
    }

    @Test func wrongPasswordIsAClearErrorWithoutThePassword() async throws {
        let password = "definitely-wrong-pw-4711"
        let url = TestServers.withPassword(TestServers.postgresURL, password)
        do {
            _ = try await PostgresConnection.connect(url: url)
            Issue.record("login with a wrong password succeeded")
        } catch {
            #expect(error.code == .connectionFailed)
            #expect(error.message.contains("password authentication failed"))
            #expect(!"\(error)".contains(password))
            #expect("\(error)".contains("***"))
        }
    }

    @Test func unreachableServerFailsWithinTheTimeout() async throws {
        let silent = try SilentServer()
        let url = TestServers.withPort(TestServers.postgresURL, silent.port)
        do {
            _ = try await PostgresConnection.connect(url: url, connectTimeoutSeconds: 2)
            Issue.record("connected to a silent server")
        } catch {
            #expect(error.code == .connectionTimedOut)
            #expect("\(error)".contains("127.0.0.1:\(silent.port)"))
        }
        let refused = TestServers.withPort(TestServers.postgresURL, try closedPort())
        await #expect {
            try await PostgresConnection.connect(url: refused, connectTimeoutSeconds: 2)
        } throws: { error in
            (error as? PostgresError)?.code == .connectionFailed
        }
    }

    @Test func transactionCommitsAndRollsBack() async throws {
        let db = try await TestServers.postgres()
        let table = TestServers.uniqueName("tx")
        try await db.execute("CREATE TABLE \(table) (id int PRIMARY KEY)")
        try await db.withTransaction { db in
            try await db.execute("INSERT INTO \(table) VALUES (1)")
        }
        struct Abort: Error {}
        await #expect(throws: Abort.self) {
            try await db.withTransaction { db in
                try await db.execute("INSERT INTO \(table) VALUES (2)")
                throw Abort()
            }
        }
        #expect(try await db.query("SELECT count(*) FROM \(table)").int(0, 0) == 1)
        #expect(await db.isInTransaction == false)
        try await db.execute("DROP TABLE \(table)")
        await db.close()
    }

    @Test func cursorStreamsAMillionRowsInBoundedMemory() async throws {
        let db = try await TestServers.postgres()
        let fetchSize = 10_000
        let baseline = residentMemoryBytes()
        var peak = baseline
        var rows = 0
        var batches = 0
        var largestBatch = 0
        var checksum: Int64 = 0
        // 1,000,000 rows of ~800 bytes: about 800 MB if the result were ever held at once.
        try await db.withCursor("SELECT g, repeat('x', 800) FROM generate_series(1, $1) AS g", [.int(1_000_000)], fetchSize: fetchSize) { cursor in
            for try await batch in cursor {
                batches += 1
                rows += batch.rowCount
                largestBatch = max(largestBatch, batch.rowCount)
                checksum += batch.int64(batch.rowCount - 1, 0) ?? 0
                peak = max(peak, residentMemoryBytes())
            }
        }
        #expect(rows == 1_000_000)
        #expect(batches == 100)
        #expect(largestBatch == fetchSize)
        #expect(checksum == (1...100).reduce(Int64(0)) { $0 + Int64($1 * fetchSize) })
        // Two batches (one being read ahead) are ~16 MB. The resident memory is the whole test
        // process's, and the other tests run beside this one (rebuilds now hold up to 64 MiB of
        // changed rows per chunk, a 16 MiB payload test): the bound, half of the 800 MB the result
        // would take at once, still tells streaming from holding it.
        #expect(peak - baseline < 400 << 20, "resident memory grew by \((peak - baseline) >> 20) MiB")
        #expect(await db.isInTransaction == false)
        await db.close()
    }

    @Test func cursorRunsInAReadOnlySnapshot() async throws {
        let db = try await TestServers.postgres()
        let other = try await TestServers.postgres()
        let table = TestServers.uniqueName("snap")
        try await db.execute("CREATE TABLE \(table) (id int)")
        try await db.execute("INSERT INTO \(table) SELECT generate_series(1, 10)")
        var seen = 0
        try await db.withCursor("SELECT id FROM \(table)", fetchSize: 3) { cursor in
            // Rows committed after the snapshot was taken stay invisible to the cursor.
            try await other.execute("INSERT INTO \(table) SELECT generate_series(11, 20)")
            for try await batch in cursor { seen += batch.rowCount }
        }
        #expect(seen == 10)
        await #expect {
            try await db.withCursor("SELECT 1", fetchSize: 1) { _ in
                try await db.execute("INSERT INTO \(table) VALUES (99)")
            }
        } throws: { error in
            (error as? PostgresError)?.sqlState == SQLState(rawValue: "25006")  // read_only_sql_transaction
        }
        try await db.execute("DROP TABLE \(table)")
        await db.close()
        await other.close()
    }

    @Test func listenReceivesNotifications() async throws {
        let listener = try await TestServers.postgres()
        let sender = try await TestServers.postgres()
        let channel = TestServers.uniqueName("chan")
        try await listener.listen(channel)
        #expect(try await listener.waitForNotifications(timeoutMilliseconds: 50).isEmpty)
        try await sender.notify(channel, payload: "position 42")
        var received: [PostgresNotification] = []
        for _ in 0..<50 where received.isEmpty {
            received = try await listener.waitForNotifications(timeoutMilliseconds: 200)
        }
        #expect(received.map(\.payload) == ["position 42"])
        #expect(received.first?.channel == channel)
        #expect(received.first?.senderPID == (await sender.backendPID))
        await listener.close()
        await sender.close()
    }

    @Test func advisoryLockAdmitsOneHolder() async throws {
        let first = try await TestServers.postgres()
        let second = try await TestServers.postgres()
        let key = PostgresAdvisoryLockKey(TestServers.uniqueName("lock"))
        #expect(try await first.tryAdvisoryLock(key))
        // The server shows the lock under the key's two 32-bit halves (what status pages search for).
        let shown = try await second.query(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND classid = $1::bigint::oid AND objid = $2::bigint::oid",
            [.int(key.classID), .int(key.objectID)]).int(0, 0)
        #expect(shown == 1)
        #expect(try await second.tryAdvisoryLock(key) == false)
        #expect(try await first.advisoryUnlock(key))
        #expect(try await second.tryAdvisoryLock(key))
        // A session's locks end with the session: the holder leaving frees the lock. The server
        // ends the backend asynchronously, so wait for the lock (bounded by lock_timeout).
        await second.close()
        try await first.execute("SET lock_timeout = '20s'")
        try await first.advisoryLock(key)
        await first.close()
        // The key is FNV-1a 64 of the name, the same in every process and release: the literal was
        // computed outside Swift (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
        #expect(PostgresAdvisoryLockKey("rebuild:orders").value == -3_702_429_814_414_007_809)
        #expect(PostgresAdvisoryLockKey("rebuild:orders").value != PostgresAdvisoryLockKey("rebuild:order").value)
    }

    @Test func terminatedBackendIsAConnectionError() async throws {
        let victim = try await TestServers.postgres()
        let admin = try await TestServers.postgres()
        let pid = await victim.backendPID
        try await admin.query("SELECT pg_terminate_backend($1)", [.int(Int64(pid))])
        await #expect {
            try await victim.query("SELECT 1")
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.isConnectionLoss && (error.code == .connectionLost || error.sqlState == .adminShutdown)
        }
        await admin.close()
    }
}
