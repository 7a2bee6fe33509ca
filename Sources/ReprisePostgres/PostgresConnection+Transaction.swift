import Synchronization

/// Isolation levels for `withTransaction`.
public enum PostgresIsolationLevel: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

extension PostgresConnection {
    /// Runs `body` inside `BEGIN … COMMIT`; rolls back when `body` throws.
    ///
    /// When the body throws and the rollback succeeds, the body's own error is rethrown unchanged.
    /// A failing BEGIN, COMMIT or ROLLBACK throws `PostgresTransactionError`, which keeps the steps apart.
    /// `body` runs on the caller's isolation; statements hop to the connection's executor.
    @discardableResult
    public func withTransaction<Result>(
        isolation level: PostgresIsolationLevel = .readCommitted,
        readOnly: Bool = false,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> sending Result
    ) async throws -> sending Result {
        let begin = "BEGIN ISOLATION LEVEL \(level.rawValue)" + (readOnly ? " READ ONLY" : "")
        do {
            try await execute(begin)
        } catch {
            throw PostgresTransactionError(beginError: error)
        }
        let result: Result
        do {
            result = try await body(self)
        } catch {
            do {
                try await run("ROLLBACK")  // cleanup: runs in a cancelled task too
            } catch let rollbackError {
                throw PostgresTransactionError(bodyError: error, rollbackError: rollbackError)
            }
            throw error
        }
        do {
            try await run("COMMIT")  // never cut short: its outcome would be unknown
        } catch {
            throw PostgresTransactionError(commitError: error)
        }
        return result
    }

    /// Streams the rows of `sql` through a server-side cursor in batches of `fetchSize` rows.
    ///
    /// Runs inside a read-only REPEATABLE READ transaction: every batch sees the same snapshot.
    /// Memory is that of the batches `body` keeps, never the whole result. The transaction
    /// holds back the server's xmin horizon (vacuum) while it is open, as every cursor does.
    ///
    /// ```swift
    /// try await db.withCursor("SELECT * FROM events ORDER BY position", fetchSize: 5_000) { cursor in
    ///     for try await batch in cursor { handle(batch) }
    /// }
    /// ```
    public func withCursor<Result>(
        _ sql: String,
        _ parameters: [PostgresValue] = [],
        fetchSize: Int = 5_000,
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresCursor) async throws -> sending Result
    ) async throws -> sending Result {
        try await withTransaction(isolation: .repeatableRead, readOnly: true) { connection in
            let cursor = try await connection.declareCursor(sql, parameters, fetchSize: fetchSize)
            // The batch fetched ahead belongs to this scope: when the reader stops (done,
            // failed or cancelled), the fetch in flight is cancelled and awaited before the
            // transaction ends.
            do {
                let result = try await body(cursor)
                await cursor.readAhead.stop()
                return result
            } catch {
                await cursor.readAhead.stop()
                throw error
            }
        }
    }

    /// Declares a `NO SCROLL` cursor in the open transaction. It lives until the transaction ends.
    public func declareCursor(_ sql: String, _ parameters: [PostgresValue] = [], fetchSize: Int = 5_000) async throws(PostgresError) -> PostgresCursor {
        guard isInTransaction else {
            throw PostgresError(code: .notInTransaction, message: "a cursor needs an open transaction (use withCursor)", query: sql, server: server)
        }
        precondition(fetchSize > 0, "fetchSize must be positive")
        let name = nextCursorName()
        try await execute("DECLARE \(name) NO SCROLL CURSOR FOR \(sql)", parameters)
        return PostgresCursor(connection: self, name: name, fetchSize: fetchSize)
    }

    /// One `FETCH FORWARD` from a declared cursor.
    func fetch(cursor name: String, count: Int) async throws(PostgresError) -> PostgresResult {
        try await query("FETCH FORWARD \(count) FROM \(name)")
    }
}

/// The batches of a server-side cursor, as an `AsyncSequence` of `PostgresResult`.
/// An empty batch is never yielded: the sequence ends when the cursor is exhausted.
public struct PostgresCursor: AsyncSequence, Sendable {
    public typealias Element = PostgresResult
    public typealias Failure = PostgresError
    let connection: PostgresConnection
    let name: String
    public let fetchSize: Int
    /// The fetch running ahead of the reader, cancelled when the cursor's scope ends.
    let readAhead = ReadAhead()

    init(connection: PostgresConnection, name: String, fetchSize: Int) {
        self.connection = connection
        self.name = name
        self.fetchSize = fetchSize
    }

    public func makeAsyncIterator() -> Iterator {
        Iterator(connection: connection, name: name, fetchSize: fetchSize, readAhead: readAhead)
    }

    /// The one fetch in flight ahead of the reader.
    final class ReadAhead: Sendable {
        private let task = Mutex<Task<PostgresResult, any Error>?>(nil)

        func start(_ fetch: @escaping @Sendable () async throws -> PostgresResult) -> Task<PostgresResult, any Error> {
            let started = Task { try await fetch() }
            task.withLock { $0 = started }
            return started
        }

        func take() -> Task<PostgresResult, any Error>? {
            task.withLock { task in
                defer { task = nil }
                return task
            }
        }

        /// Cancels the fetch in flight (`PQcancel` reaches the server) and waits for it to end.
        func stop() async {
            guard let pending = take() else { return }
            pending.cancel()
            _ = try? await pending.value
        }
    }

    /// Fetches one batch ahead: while the caller works on a batch, the next one is already on
    /// its way from the server (at most two batches are in memory).
    public struct Iterator: AsyncIteratorProtocol {
        let connection: PostgresConnection
        let name: String
        let fetchSize: Int
        var finished = false
        let readAhead: ReadAhead

        init(connection: PostgresConnection, name: String, fetchSize: Int, readAhead: ReadAhead) {
            self.connection = connection
            self.name = name
            self.fetchSize = fetchSize
            self.readAhead = readAhead
        }

        private var fetch: @Sendable () async throws -> PostgresResult {
            let connection = connection, name = name, fetchSize = fetchSize
            return { try await connection.fetch(cursor: name, count: fetchSize) }
        }

        public mutating func next() async throws(PostgresError) -> PostgresResult? {
            guard !finished else { return nil }
            let fetch = fetch
            let pending = readAhead.take() ?? Task { try await fetch() }
            let batch: PostgresResult
            do {
                // The reader waits for it now: cancelling the reader cancels the fetch.
                batch = try await withTaskCancellationHandler { try await pending.value } onCancel: { pending.cancel() }
            } catch let error as PostgresError {
                finished = true
                throw error
            } catch {
                finished = true
                throw PostgresError(code: error is CancellationError ? .cancelled : .connectionLost, message: "\(error)", server: connection.server)
            }
            if batch.rowCount < fetchSize {
                finished = true
            } else {
                _ = readAhead.start(fetch)
            }
            return batch.rowCount == 0 ? nil : batch
        }
    }
}
