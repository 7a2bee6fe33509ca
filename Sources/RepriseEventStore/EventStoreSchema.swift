import ReprisePostgres

/// Where the default event store lives: the PostgreSQL schema and the names of its tables.
///
/// Names are validated as plain SQL identifiers before any statement is built, and quoted
/// when used, so a configured name can never change the meaning of a statement.
public struct EventStoreSchema: Sendable, Equatable {
    public var schema: String
    public var eventsTable: String
    public var outboxTable: String

    public init(schema: String = "public", eventsTable: String = "events", outboxTable: String = "outbox") throws(EventStoreError) {
        for (what, name) in [("schema", schema), ("events table", eventsTable), ("outbox table", outboxTable)] {
            guard Self.isPlainIdentifier(name) else {
                throw EventStoreError.invalidIdentifier(what: what, name: name)
            }
        }
        self.schema = schema
        self.eventsTable = eventsTable
        self.outboxTable = outboxTable
    }

    /// The default: `public.events` and `public.outbox`.
    public static let standard: EventStoreSchema = {
        // The literals below are valid identifiers; this cannot fail.
        guard let schema = try? EventStoreSchema() else { preconditionFailure("default event store names are valid") }
        return schema
    }()

    /// `"schema"."events"`, quoted.
    public var qualifiedEvents: String { PostgresIdentifier.quote(schema) + "." + PostgresIdentifier.quote(eventsTable) }
    public var qualifiedOutbox: String { PostgresIdentifier.quote(schema) + "." + PostgresIdentifier.quote(outboxTable) }

    /// Letters, digits and underscores, not starting with a digit, at most 63 bytes (PostgreSQL's limit).
    public static func isPlainIdentifier(_ name: String) -> Bool {
        guard let first = name.utf8.first, name.utf8.count <= 63 else { return false }
        let isLetter = { (byte: UInt8) in (byte >= 65 && byte <= 90) || (byte >= 97 && byte <= 122) || byte == 95 }
        return isLetter(first) && name.utf8.allSatisfy { isLetter($0) || ($0 >= 48 && $0 <= 57) }
    }

    /// The expected columns of each table: name and `format_type` as PostgreSQL reports it.
    static let eventColumns: [(String, String)] = [
        ("global_position", "bigint"), ("event_id", "uuid"), ("stream_id", "text"), ("stream_version", "bigint"),
        ("event_type", "text"), ("payload", "jsonb"), ("metadata", "jsonb"), ("recorded_at", "timestamp with time zone"),
        ("transaction_id", "xid8"),
    ]
    static let outboxColumns: [(String, String)] = [
        ("global_position", "bigint"), ("transaction_id", "xid8"), ("created_at", "timestamp with time zone"),
        ("published_at", "timestamp with time zone"), ("publish_attempts", "integer"),
    ]

    /// One table `reprise init` creates, with the indexes it needs.
    struct TableDDL {
        var name: String
        var create: String
        /// Index name and what follows `CREATE INDEX [CONCURRENTLY] name ON`.
        var indexes: [(name: String, definition: String)]
    }

    var createSchemaStatement: String { "CREATE SCHEMA IF NOT EXISTS \(PostgresIdentifier.quote(schema))" }

    /// The tables `reprise init` creates, in order.
    var tables: [TableDDL] {
        let events = qualifiedEvents, outbox = qualifiedOutbox
        return [
            TableDDL(
                name: eventsTable,
                create: """
                    CREATE TABLE IF NOT EXISTS \(events) (
                        global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                        event_id uuid NOT NULL,
                        stream_id text NOT NULL,
                        stream_version bigint NOT NULL CHECK (stream_version > 0),
                        event_type text NOT NULL,
                        payload jsonb NOT NULL,
                        metadata jsonb,
                        recorded_at timestamptz NOT NULL DEFAULT now(),
                        transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
                        CONSTRAINT \(PostgresIdentifier.quote(eventsTable + "_stream_version_key")) UNIQUE (stream_id, stream_version),
                        CONSTRAINT \(PostgresIdentifier.quote(eventsTable + "_event_id_key")) UNIQUE (event_id)
                    )
                    """,
                // Readers order and checkpoint by (transaction id, position): see DESIGN.md, guarantee 3.
                // No index on event_type: a rebuild reads the whole table in order, where a filter on
                // the scan is cheaper than an index, and every index slows every append.
                indexes: [(eventsTable + "_transaction_position_idx", "\(events) (transaction_id, global_position)")]),
            // The outbox holds one narrow row per event; the relay joins the event for its content.
            TableDDL(
                name: outboxTable,
                create: """
                    CREATE TABLE IF NOT EXISTS \(outbox) (
                        global_position bigint PRIMARY KEY,
                        transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
                        created_at timestamptz NOT NULL DEFAULT now(),
                        published_at timestamptz,
                        publish_attempts integer NOT NULL DEFAULT 0
                    )
                    """,
                indexes: [(outboxTable + "_unpublished_idx", "\(outbox) (global_position) WHERE published_at IS NULL")]),
        ]
    }
}
