import ReprisePostgres

/// An outbox mapping checked against the table PostgreSQL has: every mapped column exists with a
/// type its role allows, and the message id is unique. Holds the statements the relay runs, built
/// from quoted identifiers only.
public struct ResolvedOutboxMapping: Sendable {
    public let mapping: OutboxMapping
    let table: String
    let messageID: String
    /// The type `$1::<type>[]` casts marked ids to, so the message id's index is used.
    let messageIDArrayType: String
    let streamKey: String
    let transactionID: (column: String, isXid8: Bool)?

    /// A row ready to publish, in the order the relay publishes.
    public struct Row: Sendable, Equatable {
        public var messageID: String
        public var streamKey: String
        public var routingKey: String
        /// The body's bytes (JSON text, or a `bytea` column's bytes).
        public var body: [UInt8]
        /// The headers column's JSON object, as text.
        public var headersJSON: String?
        /// `header_columns`, by name.
        public var headerValues: [(String, String)]
        /// The order column's value (nil without one).
        public var order: Int64?

        public static func == (lhs: Row, rhs: Row) -> Bool {
            lhs.messageID == rhs.messageID && lhs.streamKey == rhs.streamKey && lhs.routingKey == rhs.routingKey && lhs.body == rhs.body
                && lhs.headersJSON == rhs.headersJSON && lhs.order == rhs.order && lhs.headerValues.elementsEqual(rhs.headerValues, by: { $0 == $1 })
        }
    }

    /// Reads the table's columns and single-column unique indexes from the catalog and checks the mapping.
    public static func resolve(_ mapping: OutboxMapping, on connection: PostgresConnection) async throws -> ResolvedOutboxMapping {
        let result = try await connection.query(
            """
            SELECT a.attname, format_type(a.atttypid, a.atttypmod),
                   EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisunique AND i.indnkeyatts = 1
                           AND i.indkey[0] = a.attnum AND i.indpred IS NULL)
            FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
            """, [.text(mapping.qualifiedTable)])
        var types: [String: String] = [:]
        var unique: Set<String> = []
        for row in 0..<result.rowCount {
            guard let name = result.string(row, 0), let type = result.string(row, 1) else { continue }
            types[name] = type
            if result.bool(row, 2) == true { unique.insert(name) }
        }
        return try ResolvedOutboxMapping(mapping: mapping, columnTypes: types, uniqueColumns: unique)
    }

    /// Checks `columnTypes` (name → `format_type`) and `uniqueColumns` against the mapping.
    public init(mapping: OutboxMapping, columnTypes types: [String: String], uniqueColumns: Set<String>) throws(EventSourceError) {
        self.mapping = mapping
        let where_ = "\(mapping.schema).\(mapping.table)"
        func mismatch(_ message: String) -> EventSourceError { .mismatch(source: "outbox \(mapping.name)", message: message) }
        guard !types.isEmpty else { throw mismatch("table \(where_) does not exist (or has no columns this role can see)") }
        func column(_ field: String, _ name: String, allowed: Set<String>?) throws(EventSourceError) -> String {
            guard let type = types[name] else {
                throw mismatch("\(field): column \(name) not found in \(where_) (columns: \(types.keys.sorted().joined(separator: ", ")))")
            }
            let base = ResolvedEventSource.baseType(type)
            if let allowed, !allowed.contains(base) {
                throw mismatch("\(field): column \(name) is \(type), expected \(allowed.sorted().joined(separator: " or "))")
            }
            return base
        }
        let integers: Set<String> = ["bigint", "integer", "smallint"]
        let texts: Set<String> = ["text", "character varying", "uuid"]
        let bodyTypes: Set<String> = switch mapping.bodyEncoding {
        case .json: ["json"]
        case .jsonb: ["jsonb"]
        case .text: ["text", "character varying"]
        case .bytea: ["bytea"]
        }
        if let order = mapping.orderColumn { _ = try column("columns.order", order, allowed: integers) }
        let idType = try column("columns.message_id", mapping.messageIDColumn, allowed: integers.union(texts))
        guard uniqueColumns.contains(mapping.messageIDColumn) else {
            // Rows are marked by their message id: a duplicate would mark a row never published.
            throw mismatch("columns.message_id: column \(mapping.messageIDColumn) has no unique index or primary key of its own in \(where_)")
        }
        _ = try column("columns.stream_key", mapping.streamKeyColumn, allowed: integers.union(texts))
        _ = try column("columns.routing_key", mapping.routingKeyColumn, allowed: texts)
        _ = try column("columns.body", mapping.bodyColumn, allowed: bodyTypes)
        if let headers = mapping.headersColumn { _ = try column("columns.headers", headers, allowed: ["json", "jsonb"]) }
        for name in mapping.headerColumns { _ = try column("header_columns", name, allowed: nil) }
        switch mapping.published {
        case .flag(let name): _ = try column("published.flag", name, allowed: ["boolean"])
        case .timestamp(let name): _ = try column("published.timestamp", name, allowed: ["timestamp with time zone", "timestamp without time zone"])
        case .delete: break
        }
        if case .transactionID(let name) = mapping.safeHead {
            let type = try column("safe_head.transaction_id", name, allowed: ["xid8", "bigint"])
            transactionID = (PostgresIdentifier.quote(name), type == "xid8")
        } else {
            transactionID = nil
        }
        table = mapping.qualifiedTable
        messageID = PostgresIdentifier.quote(mapping.messageIDColumn)
        messageIDArrayType = idType == "character varying" ? "text" : idType
        streamKey = PostgresIdentifier.quote(mapping.streamKeyColumn)
    }

    private var unpublishedCondition: String {
        switch mapping.published {
        case .flag(let column): "NOT \(PostgresIdentifier.quote(column))"
        case .timestamp(let column): "\(PostgresIdentifier.quote(column)) IS NULL"
        case .delete: "true"
        }
    }

    /// `(hashtext(stream key) & 2147483647) % $n = ANY($n+1)`: the rows of `shares` of `of`
    /// (nothing when the outbox is not split). The same hash as Reprise's own outbox.
    private func shareCondition(_ shares: [Int], of count: Int, firstParameter n: Int) -> (String, [PostgresValue]) {
        guard count > 1 else { return ("", []) }
        return (" AND (hashtext(\(streamKey)::text) & 2147483647) % $\(n) = ANY($\(n + 1)::int[])",
                [.int(Int64(count)), .text(PostgresArrayLiteral.integers(shares.map { Int64($0) }))])
    }

    /// With a settle window: the statement whose value is the highest order value now.
    public var headQuery: String? {
        guard case .settleWindow = mapping.safeHead, let order = mapping.orderColumn else { return nil }
        return "SELECT coalesce(max(\(PostgresIdentifier.quote(order))), 0)::bigint FROM \(table)"
    }

    /// The next unpublished rows that are safe to publish, in publishing order. `settledHead` is
    /// the settle window's head (ignored by the other safe heads).
    public func unpublished(limit: Int, shares: [Int], of count: Int, settledHead: Int64, on connection: PostgresConnection) async throws -> [Row] {
        var parameters: [PostgresValue] = [.int(Int64(limit))]
        let safe: String
        let order: String
        let orderValue = mapping.orderColumn.map { "\(PostgresIdentifier.quote($0))::bigint" } ?? "NULL::bigint"
        switch mapping.safeHead {
        case .transactionID:
            guard let (column, isXid8) = transactionID else { preconditionFailure("init resolved the transaction id column") }
            // Transactions older than every one in flight: their rows are all visible now, and no
            // row of an older transaction can still appear.
            safe = isXid8 ? "\(column) < pg_snapshot_xmin(pg_current_snapshot())" : "\(column) < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
            order = "\(column), \(orderValue)"
        case .insertingTransaction:
            // `xmin` is 32 bits: compared by age, which follows wraparound.
            safe = "age(xmin) > age((pg_snapshot_xmin(pg_current_snapshot())::text::bigint % 4294967296)::text::xid)"
            order = "age(xmin) DESC, ctid"
        case .settleWindow:
            parameters.append(.int(settledHead))
            safe = "\(orderValue) <= $2"
            order = orderValue
        }
        let (shareFilter, more) = shareCondition(shares, of: count, firstParameter: parameters.count + 1)
        parameters += more
        let body = mapping.bodyEncoding == .bytea
            ? "encode(\(PostgresIdentifier.quote(mapping.bodyColumn)), 'hex')" : "\(PostgresIdentifier.quote(mapping.bodyColumn))::text"
        let headers = mapping.headersColumn.map { "\(PostgresIdentifier.quote($0))::text" } ?? "NULL::text"
        let headerColumns = mapping.headerColumns.map { ", \(PostgresIdentifier.quote($0))::text" }.joined()
        let result = try await connection.query(
            """
            SELECT \(messageID)::text, \(streamKey)::text, \(PostgresIdentifier.quote(mapping.routingKeyColumn))::text, \(body), \(headers), \(orderValue)\(headerColumns)
            FROM \(table) WHERE \(unpublishedCondition) AND \(safe)\(shareFilter) ORDER BY \(order) LIMIT $1
            """, parameters)
        return (0..<result.rowCount).map { row in
            let text = result.string(row, 3) ?? ""
            return Row(
                messageID: result.string(row, 0) ?? "", streamKey: result.string(row, 1) ?? "", routingKey: result.string(row, 2) ?? "",
                body: mapping.bodyEncoding == .bytea ? Self.hexDecoded(text) : Array(text.utf8), headersJSON: result.string(row, 4),
                headerValues: mapping.headerColumns.enumerated().compactMap { index, name in result.string(row, 6 + index).map { (name, $0) } },
                order: result.int64(row, 5))
        }
    }

    /// Unpublished rows of `shares` (whether safe to publish yet or not).
    public func backlog(shares: [Int], of count: Int, on connection: PostgresConnection) async throws -> Int64 {
        let (shareFilter, parameters) = shareCondition(shares, of: count, firstParameter: 1)
        return try await connection.query("SELECT count(*) FROM \(table) WHERE \(unpublishedCondition)\(shareFilter)", parameters).int64(0, 0) ?? 0
    }

    /// Marks the rows of `messageIDs` published (or deletes them).
    public func markPublished(_ messageIDs: [String], on connection: PostgresConnection) async throws {
        let ids: [PostgresValue] = [.text(PostgresArrayLiteral.text(messageIDs))]
        let match = "\(messageID) = ANY($1::\(messageIDArrayType)[])"
        switch mapping.published {
        case .flag(let column): try await connection.execute("UPDATE \(table) SET \(PostgresIdentifier.quote(column)) = true WHERE \(match)", ids)
        case .timestamp(let column): try await connection.execute("UPDATE \(table) SET \(PostgresIdentifier.quote(column)) = now() WHERE \(match)", ids)
        case .delete: try await connection.execute("DELETE FROM \(table) WHERE \(match)", ids)
        }
    }

    static func hexDecoded(_ text: String) -> [UInt8] {
        func nibble(_ byte: UInt8) -> UInt8 {
            switch byte {
            case 48...57: byte - 48
            case 97...102: byte - 87
            case 65...70: byte - 55
            default: 0
            }
        }
        let digits = Array(text.utf8)
        return stride(from: 0, to: digits.count - 1, by: 2).map { nibble(digits[$0]) << 4 | nibble(digits[$0 + 1]) }
    }
}
