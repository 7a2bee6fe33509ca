import RepriseSupport

extension MySQLConnection {
    /// Runs `body` inside `START TRANSACTION … COMMIT`; rolls back when `body` throws.
    ///
    /// When the body throws and the rollback succeeds, the body's own error is rethrown unchanged;
    /// a failing begin, commit or rollback throws `MySQLTransactionError`. A connection lost
    /// mid-transaction surfaces as `MySQLError.Code.connectionLost` from the statement that saw it.
    @discardableResult
    public func withTransaction<Result>(
        isolationLevel: MySQLIsolationLevel? = nil,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (MySQLConnection) async throws -> sending Result
    ) async throws -> sending Result {
        do {
            try await begin(isolationLevel: isolationLevel)
        } catch {
            throw MySQLTransactionError(beginError: error)
        }
        let result: Result
        do {
            result = try await body(self)
        } catch {
            do {
                try await rollback()
            } catch let rollbackError {
                throw MySQLTransactionError(bodyError: error, rollbackError: rollbackError)
            }
            throw error
        }
        do {
            try await commit()
        } catch {
            throw MySQLTransactionError(commitError: error)
        }
        return result
    }
}

extension MySQLConnection {
    /// Takes a named lock (`GET_LOCK`), waiting up to `timeoutSeconds` (0: do not wait).
    /// Returns false when another session holds it. Locks belong to the session, not to a
    /// transaction: a lost session loses them (`reopen()` lists them). Cancelling the task ends
    /// the wait (`.cancelled`). Prefer `withNamedLock`, which releases the lock it took.
    public func getLock(_ name: String, timeoutSeconds: Int = 0) async throws(MySQLError) -> Bool {
        // The wait runs in slices shorter than the client's read timeout: a long wait is never
        // taken for a dead server (which would drop the session and its other locks), and a
        // cancelled task stops at the next slice even if its KILL QUERY did not reach the server.
        var remaining = max(0, timeoutSeconds)
        while true {
            let slice = min(remaining, lockWaitSliceSeconds)
            let answer = try await query("SELECT GET_LOCK(?, ?)", [.string(name), .int(Int64(slice))]).int(0, 0)
            if answer == 1 {
                noteLock(name, held: true)
                return true
            }
            // A wait ended by KILL QUERY answers NULL, not an error.
            if Task.isCancelled {
                throw MySQLError(code: .cancelled, message: "the task was cancelled while waiting for the lock \(name)", server: server)
            }
            remaining -= slice
            if answer == nil || remaining <= 0 { return false }
        }
    }

    /// Releases a named lock; returns false when this session did not hold it. Runs in a
    /// cancelled task too (cleanup).
    @discardableResult
    public func releaseLock(_ name: String) throws(MySQLError) -> Bool {
        let text = try render("SELECT RELEASE_LOCK(?)", [.string(name)])
        let released = try runRaw(text, sql: "SELECT RELEASE_LOCK(?)").int(0, 0) == 1
        noteLock(name, held: false)
        return released
    }

    /// Whether a named lock is free (no session holds it).
    public func isFreeLock(_ name: String) async throws(MySQLError) -> Bool {
        try await query("SELECT IS_FREE_LOCK(?)", [.string(name)]).int(0, 0) == 1
    }

    /// Runs `body` holding the named lock `name`, waiting up to `timeoutSeconds` for it (a
    /// cancelled task stops waiting); returns nil without running `body` when another session
    /// holds it. The lock is released when `body` returns or throws, before this returns. A
    /// failing release is thrown when `body` succeeded; when `body` threw, its error wins (the
    /// release failed because the session broke, and the server released the lock with it;
    /// `reopen()` lists it as lost).
    public func withNamedLock<Result>(
        _ name: String, timeoutSeconds: Int = 0, isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> sending Result
    ) async throws -> sending Result? {
        guard try await getLock(name, timeoutSeconds: timeoutSeconds) else { return nil }
        return try await withCleanup(body, cleanup: { try await self.releaseLock(name) })
    }

    /// Runs `body` holding every named lock of `names`, taken in order and released in the
    /// reverse order before this returns. When one is held by another session (past
    /// `timeoutSeconds`), those taken are released and `busy(name)` is thrown.
    public func withNamedLocks<Result>(
        _ names: [String], timeoutSeconds: Int = 0, busy: (String) -> any Error, isolation: isolated (any Actor)? = #isolation,
        _ body: () async throws -> sending Result
    ) async throws -> sending Result {
        guard let first = names.first else { return try await body() }
        let rest = Array(names.dropFirst())
        guard let result = try await withNamedLock(first, timeoutSeconds: timeoutSeconds, {
            try await self.withNamedLocks(rest, timeoutSeconds: timeoutSeconds, busy: busy, body)
        }) else {
            throw busy(first)
        }
        return result
    }
}

extension MySQLConnection {
    /// Inserts `rows` with as few multi-row statements as fit under `maxStatementBytes`.
    ///
    /// `prefix` is the statement head up to `VALUES` (`INSERT INTO t (a, b) VALUES`), `suffix`
    /// what follows the tuples (`ON DUPLICATE KEY UPDATE …`). Every value is escaped like a
    /// parameter. Returns the total of affected rows.
    @discardableResult
    public func executeBatch(
        prefix: String, rows: [[MySQLValue]], suffix: String = "", maxStatementBytes: Int = 4 << 20
    ) async throws(MySQLError) -> Int {
        try await executeBatch(prefix: prefix, rows: rows, suffix: suffix, maxStatementBytes: maxStatementBytes, render: Self.renderValues)
    }

    /// `executeBatch` of the caller's own rows: `render` appends each row's values, one per
    /// column, straight into the statement's text as escaped literals (no `[MySQLValue]` per row).
    @discardableResult
    public func executeBatch<Rows: Sequence & Sendable>(
        prefix: String, rows: Rows, suffix: String = "", maxStatementBytes: Int = 4 << 20,
        render: @Sendable (Rows.Element, inout MySQLRowWriter) throws(MySQLError) -> Void
    ) async throws(MySQLError) -> Int {
        try await interruptible(prefix) { () throws(MySQLError) in
            try runBatch(prefix: prefix, rows: rows, suffix: suffix, maxStatementBytes: maxStatementBytes, render: render)
        }
    }

    private func runBatch<Rows: Sequence>(
        prefix: String, rows: Rows, suffix: String, maxStatementBytes: Int,
        render: (Rows.Element, inout MySQLRowWriter) throws(MySQLError) -> Void
    ) throws(MySQLError) -> Int {
        var iterator = rows.makeIterator()
        guard var row = iterator.next() else { return 0 }
        let shown = prefix + " (…) " + suffix
        var writer = MySQLRowWriter(format: .literal(try liveHandle()), context: nil, query: prefix, server: server)
        var affected = 0
        while true {
            // One statement: the prefix, then tuples until the text reaches the bound.
            writer.bytes.append(contentsOf: prefix.utf8)
            writer.bytes.append(UInt8(ascii: " "))
            var more = true
            var first = true
            while more && writer.bytes.count < maxStatementBytes {
                if !first { writer.bytes.append(UInt8(ascii: ",")) }
                first = false
                writer.beginRow()
                try render(row, &writer)
                writer.endRow()
                if let next = iterator.next() { row = next } else { more = false }
            }
            if !suffix.isEmpty {
                writer.bytes.append(UInt8(ascii: " "))
                writer.bytes.append(contentsOf: suffix.utf8)
            }
            affected += try runRaw(bytes: writer.bytes, sql: shown).affectedRows
            guard more else { return affected }
            writer.bytes.removeAll(keepingCapacity: true)
        }
    }
}
