import RepriseEventSource
import RepriseMySQL
import RepriseProjection
import ReprisePostgres

/// `reprise repair`: recomputes the rows one stream decides from the events the live tables
/// already cover (the active build's checkpoint) and replaces them in one MySQL transaction,
/// under the projection lock the live worker takes for each catch-up. The checkpoint does not
/// move; the live worker drops its row cache at its next catch-up (`reprise_repairs`).
public enum StreamRepair {
    public struct Row: Sendable {
        public var table: String
        public var key: [String: TraceValue]
        /// The live row before the repair and the recomputed one (nil: none).
        public var before: [String: TraceValue]?
        public var after: [String: TraceValue]?
        public var changedColumns: [String] {
            guard let before, let after else { return before == nil && after == nil ? [] : ["(row)"] }
            return after.keys.sorted().filter { before[$0] != after[$0] }
        }
    }

    public struct Result: Sendable {
        public var projection: String
        public var streamID: String
        public var buildID: Int64
        /// What decides the rows: `event.stream_id`, or the partition key and its value.
        public var decidedBy: String
        public var eventsApplied: Int
        public var rows: [Row]
    }

    /// What decides the rows of a projection, one stream's worth at a time.
    enum Decider {
        /// Every row key comes from `event.stream_id`: the stream's events are all its rows' events.
        case stream
        /// Every row key is the event's partition key (a payload or metadata field): the rows of
        /// one value are decided by the events carrying it, found across the store.
        case partitionKey([String: FieldReference])
    }

    /// The alias of the first lookup among `operations` (nested ones included), if any.
    private static func firstLookup(in operations: [RowOperation]) -> String? {
        for operation in operations {
            switch operation {
            case .lookup(let lookup): return lookup.alias
            case .forEach(_, let nested): if let alias = firstLookup(in: nested) { return alias }
            default: continue
            }
        }
        return nil
    }

    /// Why one stream does not decide the projection's rows, or what does.
    static func decider(_ definition: ProjectionDefinition) -> Swift.Result<Decider, EngineError> {
        func refuse(_ reason: String) -> Swift.Result<Decider, EngineError> {
            .failure(EngineError(.invalidRequest, projection: definition.name, message: "repair refused: \(reason); rebuild it instead (`reprise rebuild \(definition.name)`)"))
        }
        // A lookup reads rows other streams may write: replaying one stream alone would read them
        // as they are now, not as they were when each event was applied.
        if let alias = definition.handlers.values.lazy.compactMap({ Self.firstLookup(in: $0) }).first {
            return refuse("its handlers look up rows other streams write (lookup '\(alias)')")
        }
        if let keys = definition.partitionKey, !keys.isEmpty, keys.values.allSatisfy({ $0 == .envelope(.streamID) }) { return .success(.stream) }
        var writes: [(type: String, table: String, key: [ColumnAssignment])] = []
        func collect(_ operations: [RowOperation], type: String) {
            for operation in operations {
                switch operation {
                case .insert(let table, let values, _), .upsert(let table, let values, _):
                    let keyColumns = Set(definition.table(named: table)?.primaryKey ?? [])
                    writes.append((type, table, values.filter { keyColumns.contains($0.column) }))
                case .update(let table, let key, _, _, _), .delete(let table, let key, _): writes.append((type, table, key))
                case .forEach(_, let nested): collect(nested, type: type)
                case .lookup: break
                }
            }
        }
        for (type, operations) in definition.handlers.sorted(by: { $0.key < $1.key }) { collect(operations, type: type) }
        if writes.allSatisfy({ $0.key.allSatisfy { readsOnlyStreamID($0.value) } }) { return .success(.stream) }
        guard let keys = definition.partitionKey else {
            let example = writes.first { !$0.key.allSatisfy { readsOnlyStreamID($0.value) } }
            let by = example.map { " (\($0.table) is keyed by \($0.key.map { "\($0.column) = \($0.value)" }.joined(separator: ", ")) in \($0.type))" } ?? ""
            return refuse("no partition_key and not every row key comes from event.stream_id\(by), so one stream does not decide its rows")
        }
        for write in writes {
            guard let field = keys[write.type], write.key.count == 1, write.key[0].value == .field(field) else {
                return refuse("\(write.table) is keyed by \(write.key.map { "\($0.column) = \($0.value)" }.joined(separator: ", ")) in \(write.type), not by the partition key alone, so one stream does not decide its rows")
            }
        }
        return .success(.partitionKey(keys))
    }

    /// A key computed from `event.stream_id` (and constants) only; a constant key alone is a row
    /// every stream shares.
    private static func readsOnlyStreamID(_ expression: Expression) -> Bool {
        var streamOnly = true, mentionsStream = false
        func walk(_ expression: Expression) {
            switch expression {
            case .literal: break
            case .field(let field):
                if field == .envelope(.streamID) { mentionsStream = true } else { streamOnly = false }
            case .column, .lookup: streamOnly = false
            case .unary(_, let operand): walk(operand)
            case .binary(_, let left, let right): walk(left); walk(right)
            case .call(_, let arguments): arguments.forEach(walk)
            }
        }
        walk(expression)
        return streamOnly && mentionsStream
    }

    /// The reason repair is refused for this projection, nil when it is allowed.
    public static func refusal(_ definition: ProjectionDefinition) -> String? {
        if case .failure(let error) = decider(definition) { return error.message }
        return nil
    }

    public static func repair(
        _ runnable: RunnableProjection, streamID: String, postgresURL: String, mysqlURL: String, source: EventSource, lockTimeoutSeconds: Int = 60
    ) async throws -> Result {
        let definition = runnable.definition
        let decider = try decider(definition).get()
        let connections = try await EngineConnections.open(postgresURL: postgresURL, mysqlURL: mysqlURL)
        do {
            // The lock every live catch-up and every swap takes: nothing writes the live tables or
            // moves the checkpoint while the repair reads it and writes. Closing the lock
            // connection releases it, whatever happened.
            let lock = RebuildEngine.projectionLockName(definition.name, database: connections.database)
            guard try await connections.locks.getLock(lock, timeoutSeconds: lockTimeoutSeconds) else {
                throw EngineError(.locked, projection: definition.name, message: "could not take \(lock) within \(lockTimeoutSeconds)s")
            }
            let result = try await repairLocked(runnable, decider: decider, streamID: streamID, connections: connections, source: source)
            await connections.close()
            return result
        } catch {
            await connections.close()
            throw error
        }
    }

    private static func repairLocked(
        _ runnable: RunnableProjection, decider: Decider, streamID: String, connections: EngineConnections, source: EventSource
    ) async throws -> Result {
        let definition = runnable.definition
        let store = connections.store
        func refuse(_ message: String) -> EngineError { EngineError(.invalidRequest, projection: definition.name, message: "repair refused: \(message)") }
        guard let active = try await store.registry.builds(of: definition.name, states: [.active]).last else {
            throw refuse("no active build: run `reprise rebuild \(definition.name)` first")
        }
        guard active.version == definition.version, active.definitionHash == definition.definitionHash else {
            throw refuse("the live tables are version \(active.version) (definition \(active.definitionHash)), the file says version \(definition.version) (definition \(definition.definitionHash))")
        }
        guard try await store.ledger.livePartitions(of: active.buildID).isEmpty else {
            throw refuse("build \(active.buildID) is split into live partitions (`reprise live --partitions`), each with its own checkpoint; stop the partitioned consumers and let an unpartitioned `reprise live` merge them first")
        }
        let parkedStore = ParkedStreamStore(connection: store.connection)
        try await parkedStore.ensureTable()
        let parked = Set(try await parkedStore.list(projection: definition.name).map(\.streamID))

        let resolved = try await RebuildEngine.resolve(source, on: connections.control)
        let reader = EventStoreReader(connection: connections.reader, source: resolved)
        // Exactly what the live tables cover: everything visible in the base snapshot, then the
        // round in progress up to its position, in the order the live worker applied them.
        var decidedBy = "event.stream_id"
        var events: [ProjectionEvent]
        switch decider {
        case .stream:
            events = try await coveredStreamEvents(streamID, active, reader)
        case .partitionKey(let keys):
            let value = try partitionValue(of: try await coveredStreamEvents(streamID, active, reader), keys: keys, definition: definition, streamID: streamID)
            decidedBy = Set(keys.values.map(\.description)).sorted().joined(separator: ", ") + " = " + value
            events = try await coveredEvents(withKey: value, keys: keys, definition: definition, active, reader)
        }
        guard !events.isEmpty else { throw refuse("the live tables cover no event of stream \(streamID)") }
        if let stuck = events.first(where: { parked.contains($0.streamID) }) {
            throw refuse("stream \(stuck.streamID) is parked: the live tables lack its events after the poison one; release or skip it first (`reprise parked`)")
        }

        let replay = try StreamReplay(runnable, load: nil)
        for event in events { _ = try await replay.apply(event, record: false) }
        var rows: [Row] = []
        try await store.connection.withTransaction { _ in
            for (layout, written) in replay.writtenRows {
                let live = try await store.tables.loadRows(layout, physical: layout.name, keys: written.map(\.0))
                func named(_ row: [ProjectionValue]?) -> [String: TraceValue]? {
                    row.map { Dictionary(uniqueKeysWithValues: zip(layout.columns.map(\.name), $0.map(TraceValue.init))) }
                }
                for (key, row) in written {
                    rows.append(Row(table: layout.name, key: StreamTracer.keyColumns(key, layout), before: named(live[key]), after: named(row)))
                }
                _ = try await store.tables.writeRows(layout, physical: layout.name, rows: Dictionary(uniqueKeysWithValues: written))
            }
            try await store.recordRepair(active.buildID)
        }
        return Result(projection: definition.name, streamID: streamID, buildID: active.buildID, decidedBy: decidedBy, eventsApplied: events.count, rows: rows)
    }

    /// The stream's events the active build has applied.
    private static func coveredStreamEvents(_ streamID: String, _ active: BuildRecord, _ reader: EventStoreReader) async throws -> [ProjectionEvent] {
        var base: [ProjectionEvent] = []
        if let snapshot = active.baseSnapshot { base = try await reader.streamEvents(streamID, from: 0, visibleIn: snapshot) }
        let seen = Set(base.map(\.position))
        let round = try await reader.streamEvents(streamID, from: 0, visibleIn: active.targetSnapshot)
            .filter { !seen.contains($0.position) && $0.position <= active.roundPosition }
        return base + round
    }

    /// The one partition key value the stream's handled events carry.
    private static func partitionValue(of events: [ProjectionEvent], keys: [String: FieldReference], definition: ProjectionDefinition, streamID: String) throws -> String {
        var values = Set<String>()
        for event in events {
            guard let field = keys[event.type] else { continue }
            let value = event.value(of: field, item: nil)
            guard value != .null else {
                throw EngineError(.invalidRequest, projection: definition.name, position: event.position, eventType: event.type,
                                  message: "repair refused: the event has no \(field) (the partition key)")
            }
            values.insert(value.description)
        }
        guard values.count == 1, let value = values.first else {
            throw EngineError(.invalidRequest, projection: definition.name, message: values.isEmpty
                ? "repair refused: the live tables cover no event of stream \(streamID) that the projection handles"
                : "repair refused: the events of stream \(streamID) carry several partition keys (\(values.sorted().joined(separator: ", "))), so the stream does not decide one set of rows")
        }
        return value
    }

    /// Every covered event whose partition key is `value`, whatever its stream: found by the
    /// key's hash in PostgreSQL (a scan of the events of the handled types), then compared exactly.
    private static func coveredEvents(
        withKey value: String, keys: [String: FieldReference], definition: ProjectionDefinition, _ active: BuildRecord, _ reader: EventStoreReader
    ) async throws -> [ProjectionEvent] {
        let modulus = Int(Int32.max)
        guard let hash = try await reader.connection.query("SELECT (hashtext($1) & 2147483647) % $2", [.text(value), .int(Int64(modulus))]).int64(0, 0) else {
            throw EngineError(.database, projection: definition.name, message: "PostgreSQL returned no hash for the partition key")
        }
        let spec = EventStoreReader.PartitionSpec(
            keys: RebuildEngine.partitionKeys(definition, source: reader.source.source), number: 0, count: 1, modulus: modulus, hashes: Int(hash)...Int(hash))
        func matching(_ round: EventStoreReader.Round) async throws -> [ProjectionEvent] {
            var found: [ProjectionEvent] = []
            let whole = JSONFieldDecoder(paths: [[]])
            try await reader.read(round, fetchSize: 1_000, decoder: whole, metadataDecoder: whole, timings: EngineTimings()) { batch in
                found += batch.filter { event in keys[event.type].map { event.value(of: $0, item: nil).description == value } ?? false }
            }
            return found
        }
        let types = definition.eventTypes.sorted()
        var events: [ProjectionEvent] = []
        if let base = active.baseSnapshot {
            events = try await matching(.init(eventTypes: types, baseSnapshot: nil, targetSnapshot: base, afterPosition: 0, readMetadata: true, partition: spec))
        }
        if active.roundPosition > 0 {
            events += try await matching(.init(eventTypes: types, baseSnapshot: active.baseSnapshot, targetSnapshot: active.targetSnapshot, afterPosition: 0, readMetadata: true, partition: spec))
                .filter { $0.position <= active.roundPosition }
        }
        return events
    }
}


extension ReadModelStore {
    static let repairsTable = "reprise_repairs"

    /// Repairs per build: a live worker that sees the count change drops its row cache, which
    /// may hold rows the repair replaced.
    func ensureRepairs() async throws {
        try await connection.execute("""
            CREATE TABLE IF NOT EXISTS \(Self.repairsTable) (
                build_id BIGINT NOT NULL PRIMARY KEY,
                repairs BIGINT NOT NULL DEFAULT 0,
                repaired_at DATETIME(6) NOT NULL
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
            """)
    }

    func recordRepair(_ buildID: Int64) async throws {
        try await connection.execute(
            "INSERT INTO \(Self.repairsTable) (build_id, repairs, repaired_at) VALUES (?, 1, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE repairs = repairs + 1, repaired_at = UTC_TIMESTAMP(6)",
            [.int(buildID)])
    }

    package func repairCount(_ buildID: Int64) async throws -> Int64 {
        try await connection.query("SELECT repairs FROM \(Self.repairsTable) WHERE build_id = ?", [.int(buildID)]).int64(0, 0) ?? 0
    }
}
