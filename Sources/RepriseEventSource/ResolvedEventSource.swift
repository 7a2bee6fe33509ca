import ReprisePostgres

/// A source mapping checked against the table PostgreSQL has: every mapped column exists with a
/// type its role allows. Holds the SQL fragments readers use, built from quoted identifiers only.
public struct ResolvedEventSource: Sendable {
    public let source: EventSource
    /// `SELECT` list in the fixed order readers decode: position, transaction id, event id, stream id,
    /// stream version, event type, recorded at (ISO-8601 UTC), payload, metadata.
    public let envelopeColumns: String
    /// The list a rebuild's cursor reads: `NULL` for metadata unless `metadata`, and for the
    /// transaction id, event id and time unless `envelopeText` (over TLS every byte of the cursor
    /// is decrypted, and libpq copies every value; the column numbers stay the same).
    public func envelopeColumns(metadata: Bool, envelopeText: Bool) -> String {
        envelopeParts.map { column, isText in envelopeText || !isText ? column : "NULL" }.joined(separator: ", ")
            + ", " + (metadata ? metadataColumn : "NULL")
    }
    /// The list up to the payload, each column marked when it is envelope text (transaction id,
    /// event id, recorded at); and the metadata column.
    private let envelopeParts: [(column: String, isText: Bool)]
    private let metadataColumn: String
    public let qualifiedTable: String
    public let position: String
    let eventType: String
    let streamID: String
    /// `$n::<type of the stream id column>`: keeps the stream id index usable.
    let streamIDType: String
    let transactionID: (column: String, isXid8: Bool)?
    let recordedAt: String?

    static let timeFormat = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'"

    /// Reads the table's columns from the catalog and checks the mapping against them.
    public static func resolve(_ source: EventSource, on connection: PostgresConnection) async throws -> ResolvedEventSource {
        let result = try await connection.query(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
            WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
            """, [.text(source.qualifiedTable)])
        var types: [String: String] = [:]
        for row in 0..<result.rowCount {
            if let name = result.string(row, 0), let type = result.string(row, 1) { types[name] = type }
        }
        return try ResolvedEventSource(source: source, columnTypes: types)
    }

    /// Checks `columnTypes` (name → `format_type`) against the mapping.
    public init(source: EventSource, columnTypes types: [String: String]) throws(EventSourceError) {
        self.source = source
        let where_ = "\(source.schema).\(source.table)"
        guard !types.isEmpty else {
            throw EventSourceError.mismatch(source: source.name, message: "table \(where_) does not exist (or has no columns this role can see)")
        }
        func column(_ field: String, _ name: String, allowed: Set<String>?) throws(EventSourceError) -> String {
            guard let type = types[name] else {
                throw EventSourceError.mismatch(source: source.name, message: "\(field): column \(name) not found in \(where_) (columns: \(types.keys.sorted().joined(separator: ", ")))")
            }
            if let allowed, !allowed.contains(Self.baseType(type)) {
                throw EventSourceError.mismatch(source: source.name, message: "\(field): column \(name) is \(type), expected \(allowed.sorted().joined(separator: " or "))")
            }
            return type
        }
        let integers: Set<String> = ["bigint", "integer", "smallint"]
        let texts: Set<String> = ["text", "character varying", "character", "uuid"]
        func encodingTypes(_ encoding: EventSource.Encoding) -> Set<String> {
            switch encoding {
            case .json: ["json"]
            case .jsonb: ["jsonb"]
            case .text: ["text", "character varying"]
            case .bytea: ["bytea"]
            }
        }
        func jsonText(_ name: String, _ encoding: EventSource.Encoding) -> String {
            let quoted = PostgresIdentifier.quote(name)
            return switch encoding {
            case .json, .jsonb, .text: "\(quoted)::text"
            // Hex, whatever the server's bytea_output: decoded and UTF-8-checked by the reader.
            case .bytea: "encode(\(quoted), 'hex')"
            }
        }

        _ = try column("columns.position", source.positionColumn, allowed: integers)
        let streamType = try column("columns.stream_id", source.streamIDColumn, allowed: texts.union(integers))
        _ = try column("columns.event_type", source.eventTypeColumn, allowed: texts)
        _ = try column("columns.payload", source.payloadColumn, allowed: encodingTypes(source.payloadEncoding))
        if let name = source.streamVersionColumn { _ = try column("columns.stream_version", name, allowed: integers) }
        if let name = source.metadataColumn { _ = try column("columns.metadata", name, allowed: encodingTypes(source.metadataEncoding)) }
        if let name = source.eventIDColumn { _ = try column("columns.event_id", name, allowed: nil) }
        var recordedAt: String?
        if let name = source.recordedAtColumn {
            let type = try column("columns.recorded_at", name, allowed: ["timestamp with time zone", "timestamp without time zone"])
            let quoted = PostgresIdentifier.quote(name)
            // A timestamp without time zone is taken as UTC (Laravel writes UTC by default).
            recordedAt = Self.baseType(type) == "timestamp with time zone"
                ? "to_char(\(quoted) AT TIME ZONE 'UTC', \(Self.timeFormat))" : "to_char(\(quoted), \(Self.timeFormat))"
        }
        switch source.safeHead {
        case .transactionID(let name):
            let type = try column("safe_head.transaction_id", name, allowed: ["xid8", "bigint"])
            transactionID = (PostgresIdentifier.quote(name), type == "xid8")
        case .settleWindow:
            transactionID = nil
        }

        qualifiedTable = source.qualifiedTable
        position = PostgresIdentifier.quote(source.positionColumn)
        eventType = PostgresIdentifier.quote(source.eventTypeColumn)
        streamID = PostgresIdentifier.quote(source.streamIDColumn)
        streamIDType = Self.baseType(streamType) == "character varying" || Self.baseType(streamType) == "character" ? "text" : Self.baseType(streamType)
        self.recordedAt = recordedAt
        envelopeParts = [
            (position, false),
            (transactionID.map { "\($0.column)::text" } ?? "NULL", true),
            (source.eventIDColumn.map { "\(PostgresIdentifier.quote($0))::text" } ?? "NULL", true),
            ("\(streamID)::text", false),
            (source.streamVersionColumn.map { PostgresIdentifier.quote($0) } ?? "NULL", false),
            ("\(eventType)::text", false),
            (recordedAt ?? "NULL", true),
            (jsonText(source.payloadColumn, source.payloadEncoding), false),
        ]
        metadataColumn = source.metadataColumn.map { jsonText($0, source.metadataEncoding) } ?? "NULL"
        envelopeColumns = (envelopeParts.map(\.column) + [metadataColumn]).joined(separator: ", ")
    }

    /// `character varying(255)` → `character varying`.
    static func baseType(_ type: String) -> String {
        guard let paren = type.firstIndex(of: "(") else { return type }
        let base = String(type[..<paren])
        // `timestamp(0) without time zone` keeps its suffix.
        let rest = type[paren...].drop(while: { $0 != ")" }).dropFirst()
        return rest.isEmpty ? base : base + rest
    }

    // MARK: - Safe heads and rounds

    /// A point a round reads up to: a snapshot (`xmin:xmax:xip`) with a transaction id column, the
    /// highest settled position (`head:N`) with a settle window. Stored as text in checkpoints.
    public enum Bound: Sendable, Equatable {
        case snapshot(String)
        case head(Int64)

        public var text: String {
            switch self {
            case .snapshot(let snapshot): snapshot
            case .head(let position): "head:\(position)"
            }
        }
    }

    /// A checkpointed bound, refused when it was written under the other safe-head strategy.
    public func bound(_ text: String) throws(EventSourceError) -> Bound {
        let isHead = text.hasPrefix("head:")
        switch (transactionID, isHead) {
        case (.some, false): return .snapshot(text)
        case (nil, true):
            guard let position = Int64(text.dropFirst(5)) else {
                throw EventSourceError.mismatch(source: source.name, message: "checkpoint bound '\(text)' is not head:<position>")
            }
            return .head(position)
        case (.some, true):
            throw EventSourceError.mismatch(source: source.name, message: "the build was checkpointed by settled position (\(text)) but the mapping uses \(source.safeHead): rebuild with --restart")
        case (nil, false):
            throw EventSourceError.mismatch(source: source.name, message: "the build was checkpointed by transaction snapshot but the mapping uses \(source.safeHead): rebuild with --restart")
        }
    }

    /// The statement whose single value is the current bound (before any settle window).
    public var currentBoundQuery: String {
        transactionID == nil ? "SELECT coalesce(max(\(position)), 0)::text FROM \(qualifiedTable)" : "SELECT pg_current_snapshot()::text"
    }

    /// The predicate: visible in `target`, not visible in `base`, after `afterPosition`, of one of
    /// the stored type names. Parameters start at `$1`.
    public func roundFilter(storedTypes: [String], base: String?, target: String, afterPosition: Int64) throws(EventSourceError) -> (String, [PostgresValue]) {
        var clause = "\(eventType) = ANY($1::text[]) AND \(position) > $2"
        var parameters: [PostgresValue] = [.text(PostgresArrayLiteral.text(storedTypes)), .int(afterPosition)]
        let predicates = try visibility(target: target, base: base, firstParameter: 3)
        clause += " AND " + predicates.visible.sql
        parameters.append(predicates.visible.parameter)
        if let notVisible = predicates.notVisibleInBase {
            clause += " AND " + notVisible.sql
            parameters.append(notVisible.parameter)
        }
        return (clause, parameters)
    }

    private typealias Predicate = (sql: String, parameter: PostgresValue)

    /// "Visible in target" and "not visible in base" predicates, using parameters `$n` and `$n+1`.
    private func visibility(target: String, base: String?, firstParameter n: Int) throws(EventSourceError) -> (visible: Predicate, notVisibleInBase: Predicate?) {
        let baseBound = try base.map { text throws(EventSourceError) in try bound(text) }
        switch try bound(target) {
        case .snapshot(let snapshot):
            guard let (column, isXid8) = transactionID else { preconditionFailure("bound() checked the strategy") }
            let xid = isXid8 ? column : "(\(column)::text)::xid8"
            let visible: Predicate = ("pg_visible_in_snapshot(\(xid), $\(n)::pg_snapshot)", .text(snapshot))
            guard case .snapshot(let baseSnapshot)? = baseBound else { return (visible, nil) }
            // Transactions older than the base's xmin are all visible in it: with an index on
            // (transaction id, position) a catch-up round does not scan history.
            let floor = isXid8 ? "pg_snapshot_xmin($\(n + 1)::pg_snapshot)" : "(pg_snapshot_xmin($\(n + 1)::pg_snapshot)::text)::bigint"
            return (visible, ("\(column) >= \(floor) AND NOT pg_visible_in_snapshot(\(xid), $\(n + 1)::pg_snapshot)", .text(baseSnapshot)))
        case .head(let head):
            let visible: Predicate = ("\(position) <= $\(n)", .int(head))
            guard case .head(let baseHead)? = baseBound else { return (visible, nil) }
            return (visible, ("\(position) > $\(n + 1)", .int(baseHead)))
        }
    }

    /// One stream's events from `fromPosition` that are visible in `bound` (parked-stream replay).
    public func streamFilter(streamID: String, fromPosition: Int64, visibleIn bound: String) throws(EventSourceError) -> (String, [PostgresValue]) {
        let visible = try visibility(target: bound, base: nil, firstParameter: 3).visible
        return ("\(self.streamID) = $1::\(streamIDType) AND \(position) >= $2 AND \(visible.sql)", [.text(streamID), .int(fromPosition), visible.parameter])
    }

    /// Events committed after `base` (all types), and the age in seconds of the oldest of them.
    public func lagQuery(base: String) throws(EventSourceError) -> (String, [PostgresValue]) {
        let age = recordedAt == nil ? "0::float8" : "coalesce(extract(epoch FROM now() - min(\(PostgresIdentifier.quote(source.recordedAtColumn ?? ""))))::float8, 0)"
        // The newest bound stands for "now": a snapshot taken in the statement, or the table's head.
        switch try bound(base) {
        case .snapshot:
            guard let (column, isXid8) = transactionID else { preconditionFailure("bound() checked the strategy") }
            let xid = isXid8 ? column : "(\(column)::text)::xid8"
            let floor = isXid8 ? "pg_snapshot_xmin($1::pg_snapshot)" : "(pg_snapshot_xmin($1::pg_snapshot)::text)::bigint"
            return ("SELECT count(*), \(age) FROM \(qualifiedTable) WHERE \(column) >= \(floor) AND NOT pg_visible_in_snapshot(\(xid), $1::pg_snapshot)", [.text(base)])
        case .head(let head):
            return ("SELECT count(*), \(age) FROM \(qualifiedTable) WHERE \(position) > $1", [.int(head)])
        }
    }

    /// `(hashtext(key) & 2147483647) % modulus` within `hashes`: the events of one partition,
    /// decided in PostgreSQL. A rebuild partition is one remainder of its count; a live partition
    /// is a range of `PartitionSlots`. Keys are chosen per stored type name; parameters start at
    /// `firstParameter`.
    public func partitionFilter(
        keys: [(storedTypes: [String], field: EventSource.PartitionKeyField)], modulus: Int, hashes: ClosedRange<Int>, firstParameter: Int
    ) -> (String, [PostgresValue]) {
        var parameters: [PostgresValue] = []
        func parameter(_ value: PostgresValue) -> String {
            parameters.append(value)
            return "$\(firstParameter + parameters.count - 1)"
        }
        func json(_ column: String?, _ encoding: EventSource.Encoding) -> String? {
            guard let column else { return nil }
            let quoted = PostgresIdentifier.quote(column)
            return switch encoding {
            case .json, .jsonb: quoted
            case .text: "\(quoted)::jsonb"
            case .bytea: "convert_from(\(quoted), 'UTF8')::jsonb"
            }
        }
        func expression(_ field: EventSource.PartitionKeyField) -> String {
            switch field {
            case .streamID: return "\(streamID)::text"
            case .payload(let path):
                return "(\(json(source.payloadColumn, source.payloadEncoding) ?? "NULL") #>> \(parameter(.text(PostgresArrayLiteral.text(path))))::text[])"
            case .metadata(let path):
                guard let column = json(source.metadataColumn, source.metadataEncoding) else { return "NULL::text" }
                return "(\(column) #>> \(parameter(.text(PostgresArrayLiteral.text(path))))::text[])"
            }
        }
        let key: String
        // Keys come grouped by field: one group means one key for every type.
        if keys.count == 1, let only = keys.first {
            key = expression(only.field)
        } else {
            key = "CASE " + keys.map { "WHEN \(eventType)::text = ANY(\(parameter(.text(PostgresArrayLiteral.text($0.storedTypes))))::text[]) THEN \(expression($0.field))" }
                .joined(separator: " ") + " END"
        }
        let hash = "(hashtext(coalesce(\(key), '')) & 2147483647) % \(parameter(.int(Int64(modulus))))"
        let clause = hashes.count == 1
            ? "\(hash) = \(parameter(.int(Int64(hashes.lowerBound))))"
            : "\(hash) BETWEEN \(parameter(.int(Int64(hashes.lowerBound)))) AND \(parameter(.int(Int64(hashes.upperBound))))"
        return (clause, parameters)
    }

    /// The stream id of the event at a position.
    public var streamAtPositionQuery: String { "SELECT \(streamID)::text FROM \(qualifiedTable) WHERE \(position) = $1" }
    /// The envelope of the event at a position (`envelopeColumns` order).
    public var eventAtPositionQuery: String { "SELECT \(envelopeColumns) FROM \(qualifiedTable) WHERE \(position) = $1" }
}
