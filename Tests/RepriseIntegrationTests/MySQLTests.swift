import RepriseMySQL
import Testing

@Suite("MySQL wrapper (real server)")
struct MySQLTests {
    @Test func parametersRoundTripHostileText() async throws {
        let db = try await TestServers.mysql()
        let table = TestServers.uniqueName("vals")
        try await db.execute("CREATE TABLE \(table) (id INT PRIMARY KEY, s TEXT, b BLOB, d DOUBLE, n DECIMAL(12,2))")
        let hostile = [
            "plain", "quote ' and '' doubled", "back\\slash \\' escaped", "nul\u{0}byte", "ünïcødé 🎉 𝄞", "'; DROP TABLE \(table); --",
            "?", "question ? mark", "\"double\"", "`tick`", "\n\r\t\u{1A}",
        ]
        for (index, text) in hostile.enumerated() {
            try await db.execute(
                "INSERT INTO \(table) (id, s, b, d, n) VALUES (?, ?, ?, ?, ?)",
                [.int(Int64(index)), .string(text), .bytes(Array(text.utf8)), .double(0.1), .decimal("-12.34")])
        }
        let result = try await db.query("SELECT id, s, b, d, n FROM \(table) ORDER BY id")
        #expect(result.rowCount == hostile.count)
        for (index, text) in hostile.enumerated() {
            #expect(result.string(index, 1) == text)
            #expect(result.string(index, 2) == text)
            #expect(result.double(index, 3) == 0.1)
            #expect(result.string(index, 4) == "-12.34")
        }
        // A placeholder inside a literal or comment is not a placeholder.
        let literal = try await db.query("SELECT '?', ? /* ? */ -- ?\n", [.int(7)])
        #expect(literal.string(0, 0) == "?")
        #expect(literal.int(0, 1) == 7)
        try await db.execute("DROP TABLE \(table)")
        await db.close()
    }

    @Test func parameterCountMismatchIsRefusedBeforeSending() async throws {
        let db = try await TestServers.mysql()
        await #expect {
            try await db.query("SELECT ?, ?", [.int(1)])
        } throws: { error in
            (error as? MySQLError)?.code == .parameterMismatch
        }
        await #expect {
            try await db.query("SELECT ?", [.decimal("1; DROP")])
        } throws: { error in
            (error as? MySQLError)?.code == .invalidValue
        }
        await db.close()
    }

    @Test func badStatementGivesTypedErrorWithErrorNumber() async throws {
        let db = try await TestServers.mysql()
        await #expect {
            try await db.query("SELECT * FROM no_such_table_here")
        } throws: { error in
            guard let error = error as? MySQLError else { return false }
            return error.code == .server && error.errorNumber == MySQLError.noSuchTable && error.sqlState == "42S02"
                && error.message.contains("no_such_table_here")
        }
        let table = TestServers.uniqueName("dup")
        try await db.execute("CREATE TABLE \(table) (id INT PRIMARY KEY)")
        try await db.execute("INSERT INTO \(table) VALUES (?)", [1])
        await #expect {
            try await db.execute("INSERT INTO \(table) VALUES (?)", [1])
        } throws: { error in
            (error as? MySQLError)?.errorNumber == MySQLError.duplicateEntry
        }
        try await db.execute("DROP TABLE \(table)")
        await db.close()
    }

    @Test func wrongPasswordIsAClearErrorWithoutThePassword() async throws {
        let password = "definitely-wrong-pw-4712"
        do {
            _ = try await MySQLConnection.connect(url: TestServers.withPassword(TestServers.mysqlURL, password))
            Issue.record("login with a wrong password succeeded")
        } catch {
            #expect(error.code == .connectionFailed)
            #expect(error.errorNumber == MySQLError.accessDenied)
            #expect(error.message.contains("Access denied"))
            #expect(!"\(error)".contains(password))
        }
    }

    @Test func unreachableServerFailsWithinTheTimeout() async throws {
        let silent = try SilentServer()
        do {
            _ = try await MySQLConnection.connect(url: TestServers.withPort(TestServers.mysqlURL, silent.port), connectTimeoutSeconds: 2)
            Issue.record("connected to a silent server")
        } catch {
            #expect(error.code == .connectionTimedOut)
            #expect("\(error)".contains("127.0.0.1:\(silent.port)"))
        }
        await #expect {
            try await MySQLConnection.connect(url: TestServers.withPort(TestServers.mysqlURL, try closedPort()), connectTimeoutSeconds: 2)
        } throws: { error in
            (error as? MySQLError)?.code == .connectionFailed
        }
    }

    @Test func transactionsCommitAndRollBack() async throws {
        let db = try await TestServers.mysql()
        let table = TestServers.uniqueName("tx")
        try await db.execute("CREATE TABLE \(table) (id INT PRIMARY KEY) ENGINE=InnoDB")
        try await db.withTransaction { db in
            try await db.execute("INSERT INTO \(table) VALUES (?)", [1])
        }
        struct Abort: Error {}
        await #expect(throws: Abort.self) {
            try await db.withTransaction { db in
                try await db.execute("INSERT INTO \(table) VALUES (?)", [2])
                throw Abort()
            }
        }
        #expect(try await db.query("SELECT COUNT(*) FROM \(table)").int(0, 0) == 1)
        try await db.execute("DROP TABLE \(table)")
        await db.close()
    }

    @Test func batchInsertWritesManyRowsInFewStatements() async throws {
        let db = try await TestServers.mysql()
        let table = TestServers.uniqueName("batch")
        try await db.execute("CREATE TABLE \(table) (id INT PRIMARY KEY, name VARCHAR(64), total BIGINT) ENGINE=InnoDB")
        let rows: [[MySQLValue]] = (1...5_000).map { [.int(Int64($0)), .string("row '\($0)'"), .int(Int64($0 * 10))] }
        // A small statement limit forces several statements.
        let affected = try await db.executeBatch(
            prefix: "INSERT INTO \(table) (id, name, total) VALUES", rows: rows, maxStatementBytes: 16 << 10)
        #expect(affected == 5_000)
        // Upsert through the suffix: every row exists, so every row is updated (2 affected each).
        let updated = try await db.executeBatch(
            prefix: "INSERT INTO \(table) (id, name, total) VALUES", rows: Array(rows.prefix(10)),
            suffix: "ON DUPLICATE KEY UPDATE total = total + VALUES(total)")
        #expect(updated == 20)
        let check = try await db.query("SELECT COUNT(*), SUM(total), MAX(name) FROM \(table)")
        #expect(check.int(0, 0) == 5_000)
        let inserted: Int64 = (1...5_000).reduce(0) { $0 + Int64($1 * 10) }
        let added: Int64 = (1...10).reduce(0) { $0 + Int64($1 * 10) }
        #expect(check.int64(0, 1) == inserted + added)
        try await db.execute("DROP TABLE \(table)")
        await db.close()
    }

    @Test func namedLockAdmitsOneHolder() async throws {
        let first = try await TestServers.mysql()
        let second = try await TestServers.mysql()
        let name = TestServers.uniqueName("lock")
        #expect(try await first.getLock(name))
        #expect(try await second.getLock(name, timeoutSeconds: 0) == false)
        #expect(try await second.isFreeLock(name) == false)
        #expect(try await first.releaseLock(name))
        #expect(try await second.getLock(name))
        await second.close()
        #expect(try await first.getLock(name, timeoutSeconds: 1))
        await first.close()
    }

    /// A read waits at most the connect timeout unless the URL or the caller gives a read timeout:
    /// a statement that runs longer (an index build of a big table) needs a connection opened with one.
    @Test func aStatementLongerThanTheConnectTimeoutNeedsAReadTimeout() async throws {
        let short = try await MySQLConnection.connect(url: TestServers.mysqlURL, connectTimeoutSeconds: 1)
        await #expect(throws: MySQLError.self) { _ = try await short.query("SELECT SLEEP(3)") }
        await short.close()
        let long = try await MySQLConnection.connect(url: TestServers.mysqlURL, connectTimeoutSeconds: 1, readTimeoutSeconds: 30)
        #expect(try await long.query("SELECT SLEEP(3)").int(0, 0) == 0)
        await long.close()
        // The URL's read-timeout wins over the caller's.
        let pinned = try await MySQLConnection.connect(
            url: TestServers.mysqlURL + (TestServers.mysqlURL.contains("?") ? "&" : "?") + "read-timeout=1", readTimeoutSeconds: 30)
        await #expect(throws: MySQLError.self) { _ = try await pinned.query("SELECT SLEEP(3)") }
        await pinned.close()
    }

    /// A session the client stopped waiting for (its read timed out) is still on the server,
    /// running its statement inside its transaction: `reopen()` kills it and returns once the
    /// server has ended it, so the new session takes its rows (a chunk redone) and its named
    /// locks at once instead of waiting behind its own lost attempt.
    @Test func reopenEndsTheSessionTheClientGaveUpOn() async throws {
        let blocker = try await TestServers.mysql()
        let table = TestServers.uniqueName("abandoned")
        let lock = TestServers.uniqueName("lock")
        try await blocker.execute("CREATE TABLE \(table) (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB")
        try await blocker.execute("INSERT INTO \(table) VALUES (1, 0), (2, 0)")
        let db = try await MySQLConnection.connect(url: TestServers.mysqlURL + (TestServers.mysqlURL.contains("?") ? "&" : "?") + "read-timeout=1")
        #expect(try await db.getLock(lock))
        try await db.begin()
        try await db.execute("UPDATE \(table) SET n = 1 WHERE id = 2")
        try await blocker.begin()
        _ = try await blocker.query("SELECT n FROM \(table) WHERE id = 1 FOR UPDATE")
        // Row 1 stays locked longer than the read timeout: the client gives up, the server waits on.
        await #expect {
            try await db.execute("UPDATE \(table) SET n = 1 WHERE id = 1")
        } throws: { error in
            (error as? MySQLError)?.code == .connectionLost
        }
        let abandoned = Int64(await db.connectionID)
        let sessions = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?"
        try #require(try await blocker.query(sessions, [.int(abandoned)]).int(0, 0) == 1, "the abandoned session is still on the server")
        try await db.rollback()

        let reopened = try await db.reopen()
        #expect(reopened.endedOnServer)
        #expect(reopened.description.contains("still running on the server: killed"), "\(reopened)")
        #expect(try await blocker.query(sessions, [.int(abandoned)]).int(0, 0) == 0)
        // Its row lock and its named lock are free: the new session takes both without waiting.
        try await db.execute("SET SESSION innodb_lock_wait_timeout = 1")
        #expect(try await db.execute("UPDATE \(table) SET n = 2 WHERE id = 2") == 1)
        #expect(try await db.getLock(lock, timeoutSeconds: 0))
        try await blocker.rollback()
        // A session the server ended itself needs no KILL.
        try await blocker.execute("KILL CONNECTION ?", [.int(Int64(await db.connectionID))])
        await #expect(throws: MySQLError.self) { try await db.query("SELECT 1") }
        try await waitUntil("the killed session has ended") { try await blocker.query(sessions, [.int(Int64(await db.connectionID))]).int(0, 0) == 0 }
        #expect(try await db.reopen().endedOnServer == false)
        try await blocker.execute("DROP TABLE \(table)")
        await db.close()
        await blocker.close()
    }

    @Test func droppedConnectionIsAnErrorUntilReopened() async throws {
        let db = try await TestServers.mysql()
        let admin = try await TestServers.mysql()
        let table = TestServers.uniqueName("reconnect")
        let lock = TestServers.uniqueName("lock")
        try await db.execute("CREATE TABLE \(table) (id INT PRIMARY KEY) ENGINE=InnoDB")
        #expect(try await db.getLock(lock))
        try await db.execute("SET SESSION group_concat_max_len = 4096")

        // Outside a transaction too: no silent reconnect (it would run without the lock).
        try await admin.execute("KILL CONNECTION ?", [.int(Int64(await db.connectionID))])
        await #expect {
            try await db.query("SELECT 1")
        } throws: { error in
            (error as? MySQLError)?.isConnectionLoss == true
        }
        await #expect {
            try await db.query("SELECT 1")
        } throws: { error in
            (error as? MySQLError)?.code == .connectionLost
        }
        #expect(await db.reopenCount == 0)
        // The server frees a killed session's locks when its thread ends, which may be just
        // after the client saw the socket close (seen under a loaded CI machine).
        try await waitUntil("the killed session's named lock is free") {
            try await admin.isFreeLock(lock)
        }
        let reopened = try await db.reopen()
        #expect(reopened.wasLost)
        #expect(reopened.lostNamedLocks == [lock])
        #expect(reopened.lostSessionSettings == ["SET SESSION group_concat_max_len = 4096"])
        #expect(try await db.query("SELECT 1").int(0, 0) == 1)
        #expect(try await db.query("SELECT @@SESSION.time_zone").string(0, 0) == "+00:00")

        // Inside a transaction: the loss is an error, never a silent reconnect that would
        // commit half a unit of work.
        try await db.begin()
        try await db.execute("INSERT INTO \(table) VALUES (?)", [1])
        try await admin.execute("KILL CONNECTION ?", [.int(Int64(await db.connectionID))])
        await #expect {
            try await db.execute("INSERT INTO \(table) VALUES (?)", [2])
        } throws: { error in
            (error as? MySQLError)?.code == .connectionLost
        }
        // Until the owner reopens, every statement is refused: none may run in autocommit.
        await #expect {
            try await db.query("SELECT 1")
        } throws: { error in
            (error as? MySQLError)?.code == .connectionLost
        }
        try await db.rollback()
        #expect(await db.isInTransaction == false)
        #expect(try await db.reopen().lostNothing)
        #expect(try await db.query("SELECT COUNT(*) FROM \(table)").int(0, 0) == 0)
        try await db.execute("DROP TABLE \(table)")
        await db.close()
        await admin.close()
    }
}
