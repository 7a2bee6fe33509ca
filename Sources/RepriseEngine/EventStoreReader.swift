import RepriseEventStore
import RepriseProjection
import ReprisePostgres

/// Reads events of one round from the PostgreSQL event store through a server-side cursor.
///
/// A round is "visible in `target`, not visible in `base`, after `afterPosition`", in position
/// order. Visibility is decided by `pg_visible_in_snapshot` on the writing transaction's id, so
/// the answer is the same on every run, whatever committed since.
struct EventStoreReader: Sendable {
    let connection: PostgresConnection
    let schema: EventStoreSchema

    /// The current snapshot (`xmin:xmax:xip,...`), taken in its own statement.
    func currentSnapshot() async throws -> String {
        guard let text = try await connection.query("SELECT pg_current_snapshot()::text").string(0, 0) else {
            throw EngineError(.database, message: "pg_current_snapshot() returned nothing")
        }
        return text
    }

    struct Round: Sendable {
        var eventTypes: [String]
        var baseSnapshot: String?
        var targetSnapshot: String
        var afterPosition: Int64
        var readMetadata: Bool
    }

    private func whereClause(_ round: Round) -> (String, [PostgresValue]) {
        var clause = "event_type = ANY($1::text[]) AND global_position > $2 AND pg_visible_in_snapshot(transaction_id, $3::pg_snapshot)"
        var parameters: [PostgresValue] = [
            .text(PostgresArrayLiteral.text(round.eventTypes)), .int(round.afterPosition), .text(round.targetSnapshot),
        ]
        if let base = round.baseSnapshot {
            // Transactions older than the base's xmin are all visible in it: the index on
            // (transaction_id, global_position) keeps a catch-up round from scanning history.
            clause += " AND transaction_id >= pg_snapshot_xmin($4::pg_snapshot) AND NOT pg_visible_in_snapshot(transaction_id, $4::pg_snapshot)"
            parameters.append(.text(base))
        }
        return (clause, parameters)
    }

    /// How many events the round holds (for progress).
    func count(_ round: Round) async throws -> Int64 {
        let (clause, parameters) = whereClause(round)
        return try await connection.query("SELECT count(*) FROM \(schema.qualifiedEvents) WHERE \(clause)", parameters).int64(0, 0) ?? 0
    }

    /// Streams the round in batches of `fetchSize` rows; `body` gets each batch decoded.
    func read(
        _ round: Round, fetchSize: Int, decoder: JSONFieldDecoder, metadataDecoder: JSONFieldDecoder, timings: EngineTimings,
        isolation: isolated (any Actor)? = #isolation,
        _ body: ([ProjectionEvent]) async throws -> Void
    ) async throws {
        let (clause, parameters) = whereClause(round)
        let metadata = round.readMetadata ? "metadata::text" : "NULL"
        let sql = """
            SELECT global_position, transaction_id::text, event_id::text, stream_id, stream_version, event_type,
                   to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), payload::text, \(metadata)
            FROM \(schema.qualifiedEvents) WHERE \(clause) ORDER BY global_position
            """
        try await connection.withCursor(sql, parameters, fetchSize: fetchSize) { cursor in
            var batches = cursor.makeAsyncIterator()
            while true {
                let started = ContinuousClock.now
                guard let batch = try await batches.next() else { break }
                timings.add(.read, ContinuousClock.now - started)
                let events = try timings.measure(.decode) { try Self.decode(batch, decoder: decoder, metadataDecoder: metadataDecoder) }
                try await body(events)
            }
        }
    }

    static func decode(_ batch: PostgresResult, decoder: JSONFieldDecoder, metadataDecoder: JSONFieldDecoder) throws -> [ProjectionEvent] {
        var events: [ProjectionEvent] = []
        events.reserveCapacity(batch.rowCount)
        for row in 0..<batch.rowCount {
            let position = batch.int64(row, 0) ?? 0
            let type = batch.string(row, 5) ?? ""
            let payload: JSONValue
            let metadata: JSONValue
            do {
                payload = try batch.withValueBytes(row, 7) { bytes throws(JSONDecodingError) in
                    guard let bytes else { return JSONValue.null }
                    return try decoder.decode(bytes)
                }
                metadata = try batch.withValueBytes(row, 8) { bytes throws(JSONDecodingError) in
                    guard let bytes else { return JSONValue.null }
                    return try metadataDecoder.decode(bytes)
                }
            } catch {
                throw EngineError(.badPayload, position: position, eventType: type, message: "column payload: \(error)")
            }
            events.append(ProjectionEvent(
                position: position, transactionID: batch.string(row, 1) ?? "", eventID: batch.string(row, 2) ?? "",
                streamID: batch.string(row, 3) ?? "", streamVersion: batch.int64(row, 4) ?? 0, type: type,
                recordedAt: batch.string(row, 6) ?? "", payload: payload, metadata: metadata))
        }
        return events
    }
}
