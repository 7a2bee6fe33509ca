import RepriseEventStore

/// Mappings for the tables of well-known event-sourcing libraries, as their migrations create them.
extension EventSource {
    public static let presetNames = ["reprise", "spatie", "marten", "eventsourcing"]

    /// A preset by name, in `schema`, with its table name or `table`.
    public static func preset(_ name: String, schema: String = "public", table: String? = nil) throws(EventSourceError) -> EventSource {
        switch name {
        case "reprise":
            // Reprise's own store (`reprise init`).
            return try EventSource(
                name: name, schema: schema, table: table ?? "events", positionColumn: "global_position", streamIDColumn: "stream_id",
                streamVersionColumn: "stream_version", eventTypeColumn: "event_type", payloadColumn: "payload", payloadEncoding: .jsonb,
                metadataColumn: "metadata", metadataEncoding: .jsonb, recordedAtColumn: "recorded_at", eventIDColumn: "event_id",
                safeHead: .transactionID(column: "transaction_id"))
        case "spatie":
            // spatie/laravel-event-sourcing `stored_events`: `event_class` holds the PHP class name
            // (or its alias from `event_class_map`); `event_properties` and `meta_data` are JSON.
            // Inserts are not serialized: a settle window bounds in-flight transactions.
            return try EventSource(
                name: name, schema: schema, table: table ?? "stored_events", positionColumn: "id", streamIDColumn: "aggregate_uuid",
                streamVersionColumn: "aggregate_version", eventTypeColumn: "event_class", payloadColumn: "event_properties",
                payloadEncoding: .jsonb, metadataColumn: "meta_data", metadataEncoding: .jsonb, recordedAtColumn: "created_at",
                safeHead: .settleWindow(milliseconds: 2_000))
        case "marten":
            // Marten `mt_events`: `type` is Marten's event type alias (`order_placed`), `data` jsonb.
            return try EventSource(
                name: name, schema: schema, table: table ?? "mt_events", positionColumn: "seq_id", streamIDColumn: "stream_id",
                streamVersionColumn: "version", eventTypeColumn: "type", payloadColumn: "data", payloadEncoding: .jsonb,
                recordedAtColumn: "timestamp", eventIDColumn: "id", safeHead: .settleWindow(milliseconds: 2_000))
        case "eventsourcing":
            // Python `eventsourcing` PostgreSQL application recorder: `topic` is `module:Class`,
            // `state` is UTF-8 JSON in bytea. Its inserts lock the table, so notification ids
            // become visible in order and no settle window is needed.
            return try EventSource(
                name: name, schema: schema, table: table ?? "stored_events", positionColumn: "notification_id",
                streamIDColumn: "originator_id", streamVersionColumn: "originator_version", eventTypeColumn: "topic",
                payloadColumn: "state", payloadEncoding: .bytea, safeHead: .settleWindow(milliseconds: 0))
        default:
            throw EventSourceError.invalid(field: "preset", message: "unknown preset '\(name)' (known: \(presetNames.joined(separator: ", ")))")
        }
    }

    /// Reprise's own store, under the names `reprise init` was given.
    public static func reprise(_ store: EventStoreSchema) -> EventSource {
        // The names were validated by EventStoreSchema; the preset cannot fail for them.
        guard let source = try? preset("reprise", schema: store.schema, table: store.eventsTable) else {
            preconditionFailure("the reprise preset is valid for a valid EventStoreSchema")
        }
        return source
    }
}
