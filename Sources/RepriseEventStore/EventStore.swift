import ReprisePostgres

/// An event to append. `payload` and `metadata` are JSON texts; the store keeps them as `jsonb`.
public struct NewEvent: Sendable, Equatable {
    /// A UUID in text form. Callers that need determinism (demo data) pass their own.
    public var eventID: String
    public var type: String
    public var payload: String
    public var metadata: String?

    public init(eventID: String, type: String, payload: String, metadata: String? = nil) {
        self.eventID = eventID
        self.type = type
        self.payload = payload
        self.metadata = metadata
    }
}

/// Events for one stream, with the version the writer expects the stream to be at.
public struct StreamAppend: Sendable, Equatable {
    public var streamID: String
    public var expectedVersion: ExpectedVersion
    public var events: [NewEvent]

    public init(streamID: String, expectedVersion: ExpectedVersion, events: [NewEvent]) {
        self.streamID = streamID
        self.expectedVersion = expectedVersion
        self.events = events
    }
}

/// Where one stream's appended events landed.
public struct AppendResult: Sendable, Equatable {
    public var streamID: String
    /// The stream version of each appended event, in order.
    public var versions: [Int64]
    /// The global position of each appended event, in order.
    public var positions: [Int64]
}

/// What `initialize` found and did.
public struct EventStoreInitReport: Sendable, Equatable {
    public var createdTables: [String]
    public var existingTables: [String]
    /// Indexes added to tables that already existed (built without blocking writers).
    public var createdIndexes: [String] = []
    /// Statements not run: a lock was not free within the lock timeout (the store is in use), or
    /// index creation was not asked for. `reprise init` prints them.
    public var deferred: [String] = []
}

/// The default PostgreSQL event store and outbox of Reprise.
///
/// Appends write the events and their outbox rows in one transaction (the transactional
/// outbox), with optimistic concurrency per stream:
///
/// ```swift
/// let store = EventStore()
/// try await store.initialize(on: db)
/// try await store.append([StreamAppend(streamID: "order-1", expectedVersion: .noStream, events: [created])], on: db)
/// ```
public struct EventStore: Sendable {
    public let schema: EventStoreSchema
    /// Events per INSERT statement: keeps one statement's arrays to a few megabytes.
    static let eventsPerStatement = 5_000

    public init(schema: EventStoreSchema = .standard) {
        self.schema = schema
    }

    /// Creates what is missing of the events and outbox tables, and nothing else: the catalog is
    /// read first, so on a complete store no DDL runs at all. Leaves tables with the expected shape
    /// alone; refuses (`incompatibleTable`) when a table of that name has another shape.
    ///
    /// Never blocks writers: every statement on an existing table runs under `lock_timeout`, so
    /// one that would wait behind an open transaction (and make every later writer queue behind
    /// it) gives up at once and is reported in `deferred`. A new schema, a new table and its
    /// indexes wait as long as they need: nobody writes a table that does not exist yet, and a
    /// short timeout there only left stores half made when other sessions ran DDL at the same time. An index missing from an existing table is built
    /// `CONCURRENTLY` (writers go on while it builds), only when `addMissingIndexes`.
    @discardableResult
    public func initialize(
        on connection: PostgresConnection, addMissingIndexes: Bool = true, lockTimeoutMilliseconds: Int = 200
    ) async throws(EventStoreError) -> EventStoreInitReport {
        var report = EventStoreInitReport(createdTables: [], existingTables: [])
        // `guarded`: touches an existing table, so it runs under the lock timeout.
        var plan: [(sql: String, creates: String?, index: String?, guarded: Bool)] = []
        let namespace = try await catalog("SELECT count(*)::text FROM pg_namespace WHERE nspname = $1", [.text(schema.schema)], on: connection)
        if namespace.first == "0" { plan.append((schema.createSchemaStatement, nil, nil, false)) }
        // Indexes by name: "t" valid, "f" left invalid by a CREATE INDEX CONCURRENTLY that gave up.
        var indexes: [String: Bool] = [:]
        for row in try await catalog(
            """
            SELECT c.relname || ':' || i.indisvalid::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
            """, [.text(schema.schema)], on: connection)
        {
            guard let colon = row.lastIndex(of: ":") else { continue }
            indexes[String(row[..<colon])] = row[row.index(after: colon)...] == "true"
        }
        for (table, columns) in [(schema.tables[0], EventStoreSchema.eventColumns), (schema.tables[1], EventStoreSchema.outboxColumns)] {
            let found = try await columnsOf(table.name, on: connection)
            let name = "\(schema.schema).\(table.name)"
            if found.isEmpty {
                // A new table: nobody writes it yet, so its indexes are built the plain way.
                plan.append((table.create, name, nil, false))
                for index in table.indexes {
                    plan.append(("CREATE INDEX IF NOT EXISTS \(PostgresIdentifier.quote(index.name)) ON \(index.definition)", nil, nil, false))
                }
                continue
            }
            var problems: [String] = []
            for (column, type) in columns {
                if let actual = found[column] {
                    if actual != type { problems.append("column \(column) is \(actual), expected \(type)") }
                } else {
                    problems.append("column \(column) is missing")
                }
            }
            guard problems.isEmpty else { throw .incompatibleTable(table: name, problems: problems) }
            report.existingTables.append(name)
            for index in table.indexes where indexes[index.name] != true {
                let quoted = "\(PostgresIdentifier.quote(schema.schema)).\(PostgresIdentifier.quote(index.name))"
                var statements: [String] = []
                if indexes[index.name] == false { statements.append("DROP INDEX CONCURRENTLY IF EXISTS \(quoted)") }
                statements.append("CREATE INDEX CONCURRENTLY IF NOT EXISTS \(PostgresIdentifier.quote(index.name)) ON \(index.definition)")
                guard addMissingIndexes else {
                    report.deferred += statements
                    continue
                }
                plan += statements.map { ($0, nil, $0.hasPrefix("CREATE") ? "\(schema.schema).\(index.name)" : nil, true) }
            }
        }
        guard !plan.isEmpty else { return report }
        do {
            var timeoutSet = false
            for (number, step) in plan.enumerated() {
                if step.guarded != timeoutSet {
                    let timeout = step.guarded ? "\(max(1, lockTimeoutMilliseconds))ms" : "0"
                    try await connection.execute("SELECT set_config('lock_timeout', $1, false)", [.text(timeout)])
                    timeoutSet = step.guarded
                }
                do {
                    try await connection.execute(step.sql)
                } catch let error where error.sqlState?.rawValue == "55P03" {
                    // lock_not_available: a writer holds the table. Waiting would queue every
                    // later writer behind this statement; the rest is reported instead.
                    report.deferred += plan[number...].map(\.sql)
                    break
                }
                if let table = step.creates { report.createdTables.append(table) }
                if let index = step.index { report.createdIndexes.append(index) }
            }
            try await connection.execute("RESET lock_timeout")
        } catch {
            throw .database(error)
        }
        return report
    }

    /// The first column of every row of a catalog query, as text.
    private func catalog(_ sql: String, _ parameters: [PostgresValue], on connection: PostgresConnection) async throws(EventStoreError) -> [String] {
        do {
            let result = try await connection.query(sql, parameters)
            return (0..<result.rowCount).compactMap { result.string($0, 0) }
        } catch {
            throw .database(error)
        }
    }

    private func columnsOf(_ table: String, on connection: PostgresConnection) async throws(EventStoreError) -> [String: String] {
        let sql = """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod)
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped
            """
        do {
            let result = try await connection.query(sql, [.text(schema.schema), .text(table)])
            var columns: [String: String] = [:]
            for row in 0..<result.rowCount {
                columns[result.string(row, 0) ?? ""] = result.string(row, 1) ?? ""
            }
            return columns
        } catch {
            throw .database(error)
        }
    }

    /// Appends in a transaction of its own.
    @discardableResult
    public func append(_ appends: [StreamAppend], writeOutbox: Bool = true, on connection: PostgresConnection) async throws -> [AppendResult] {
        try await connection.withTransaction { connection in
            try await appendInTransaction(appends, writeOutbox: writeOutbox, on: connection)
        }
    }

    /// Appends inside the caller's open transaction, so that the caller's own writes, the events
    /// and the outbox rows commit or roll back together.
    public func appendInTransaction(
        _ appends: [StreamAppend], writeOutbox: Bool = true, on connection: PostgresConnection
    ) async throws(EventStoreError) -> [AppendResult] {
        guard !appends.isEmpty else { return [] }
        for append in appends {
            guard !append.streamID.isEmpty else { throw .invalidAppend(streamID: append.streamID, reason: "the stream id is empty") }
            guard !append.events.isEmpty else { throw .invalidAppend(streamID: append.streamID, reason: "no events") }
            if let bad = append.events.first(where: { $0.type.isEmpty }) {
                throw .invalidAppend(streamID: append.streamID, reason: "event \(bad.eventID) has an empty type")
            }
        }
        let current = try await currentVersions(of: appends.map(\.streamID), on: connection)

        // Plan versions, checking each expectation; the same stream may appear more than once.
        var running = current
        var planned: [(streamIndex: Int, version: Int64, event: NewEvent)] = []
        var results: [AppendResult] = []
        for (index, append) in appends.enumerated() {
            let actual = running[append.streamID] ?? 0
            switch append.expectedVersion {
            case .any: break
            case .noStream where actual != 0:
                throw .wrongExpectedVersion(streamID: append.streamID, expected: append.expectedVersion, actual: actual)
            case .exact(let expected) where expected != actual:
                throw .wrongExpectedVersion(streamID: append.streamID, expected: append.expectedVersion, actual: actual)
            default: break
            }
            var versions: [Int64] = []
            for (offset, event) in append.events.enumerated() {
                let version = actual + Int64(offset) + 1
                versions.append(version)
                planned.append((index, version, event))
            }
            running[append.streamID] = actual + Int64(append.events.count)
            results.append(AppendResult(streamID: append.streamID, versions: versions, positions: []))
        }

        var start = 0
        while start < planned.count {
            let slice = planned[start..<min(start + Self.eventsPerStatement, planned.count)]
            let positions = try await insert(slice.map { (appends[$0.streamIndex].streamID, $0.version, $0.event) }, writeOutbox: writeOutbox, on: connection)
            for (entry, position) in zip(slice, positions) {
                results[entry.streamIndex].positions.append(position)
            }
            start += slice.count
        }
        return results
    }

    private func currentVersions(of streams: [String], on connection: PostgresConnection) async throws(EventStoreError) -> [String: Int64] {
        let unique = Array(Set(streams))
        let sql = "SELECT stream_id, max(stream_version) FROM \(schema.qualifiedEvents) WHERE stream_id = ANY($1::text[]) GROUP BY stream_id"
        do {
            let result = try await connection.query(sql, [.text(PostgresArrayLiteral.text(unique))])
            var versions: [String: Int64] = [:]
            for row in 0..<result.rowCount {
                versions[result.string(row, 0) ?? ""] = result.int64(row, 1) ?? 0
            }
            return versions
        } catch {
            throw .database(error)
        }
    }

    private func insert(_ rows: [(String, Int64, NewEvent)], writeOutbox: Bool, on connection: PostgresConnection) async throws(EventStoreError) -> [Int64] {
        // Six array parameters whatever the row count: parse and bind stay cheap, where a
        // VALUES list of thousands of placeholders costs more to plan than to insert.
        let parameters: [PostgresValue] = [
            .text(PostgresArrayLiteral.text(rows.map { $0.2.eventID })),
            .text(PostgresArrayLiteral.text(rows.map { $0.0 })),
            .text(PostgresArrayLiteral.integers(rows.map { $0.1 })),
            .text(PostgresArrayLiteral.text(rows.map { $0.2.type })),
            .text(PostgresArrayLiteral.text(rows.map { $0.2.payload })),
            .text(PostgresArrayLiteral.optionalText(rows.map { $0.2.metadata })),
        ]
        // WITH ORDINALITY + ORDER BY: positions are assigned in the order of the append.
        let insertEvents = """
            INSERT INTO \(schema.qualifiedEvents) (event_id, stream_id, stream_version, event_type, payload, metadata)
            SELECT id, stream, version, type, payload::jsonb, metadata::jsonb
            FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
                WITH ORDINALITY AS appended(id, stream, version, type, payload, metadata, ordinal)
            ORDER BY ordinal
            RETURNING global_position
            """
        let sql: String
        if writeOutbox {
            sql = """
                WITH inserted AS (\(insertEvents)),
                outboxed AS (
                    INSERT INTO \(schema.qualifiedOutbox) (global_position) SELECT global_position FROM inserted ORDER BY global_position
                )
                SELECT global_position, pg_notify('reprise_outbox', '') FROM inserted ORDER BY global_position
                """
            // pg_notify: the relay wakes at commit (PostgreSQL folds identical notifications of a
            // transaction into one).
        } else {
            sql = "WITH inserted AS (\(insertEvents)) SELECT global_position FROM inserted ORDER BY global_position"
        }
        do {
            let result = try await connection.query(sql, parameters)
            return (0..<result.rowCount).map { result.int64($0, 0) ?? 0 }
        } catch let error where error.sqlState ~= .uniqueViolation {
            // Another writer appended to one of these streams after our version check.
            let stream = rows.first.map { $0.0 } ?? ""
            throw .wrongExpectedVersion(streamID: stream, expected: .any, actual: -1)
        } catch {
            throw .database(error)
        }
    }

    /// The highest global position in the store (0 when empty).
    public func headPosition(on connection: PostgresConnection) async throws(EventStoreError) -> Int64 {
        do {
            return try await connection.query("SELECT coalesce(max(global_position), 0) FROM \(schema.qualifiedEvents)").int64(0, 0) ?? 0
        } catch {
            throw .database(error)
        }
    }

    /// The version of a stream's last event (0 when the stream does not exist).
    public func streamVersion(_ streamID: String, on connection: PostgresConnection) async throws(EventStoreError) -> Int64 {
        try await currentVersions(of: [streamID], on: connection)[streamID] ?? 0
    }
}
