import RepriseEventStore
import ReprisePostgres

/// Which outbox table the relay publishes, and how: an *outbox mapping*.
///
/// Reprise's own `outbox` is one (the `reprise` preset, the default); an application's
/// `outbox_events` table with an `is_published` flag, a table whose rows are deleted once
/// published, or the Debezium outbox convention are others. The mapping names the table, the
/// column of each message field, how the body is encoded, how a row is marked published, and how
/// the relay finds the rows safe to publish (committed, with nothing still in flight before them).
public struct OutboxMapping: Sendable, Equatable {
    /// How a row is marked once the broker confirmed its message.
    public enum Published: Sendable, Equatable, CustomStringConvertible {
        /// A boolean column set true (unpublished rows have it false).
        case flag(column: String)
        /// A timestamp column set to `now()` (unpublished rows have it NULL).
        case timestamp(column: String)
        /// The row is deleted (every row in the table is unpublished).
        case delete

        public var description: String {
            switch self {
            case .flag(let column): "\(column) set true"
            case .timestamp(let column): "\(column) set to now()"
            case .delete: "row deleted"
            }
        }
    }

    /// How the relay decides which rows are safe to publish, so one stream's rows go out in order
    /// even when writers commit out of order.
    public enum SafeHead: Sendable, Equatable, CustomStringConvertible {
        /// A column with the writing transaction's id (`xid8`, or `bigint` from `txid_current()`):
        /// rows of transactions older than every one still in flight, in (transaction id, order).
        case transactionID(column: String)
        /// The row's own inserting transaction (PostgreSQL's `xmin` system column), for tables with
        /// no order column (the Debezium convention): rows in (transaction, physical position).
        case insertingTransaction
        /// Rows whose order value was observed at least this long ago (`SafeHeadTracker`).
        case settleWindow(milliseconds: Int)

        public var description: String {
            switch self {
            case .transactionID(let column): "transaction id column \(column)"
            case .insertingTransaction: "inserting transaction (xmin)"
            case .settleWindow(let milliseconds): "settle window \(milliseconds) ms"
            }
        }
    }

    public static let presetNames = ["reprise", "outbox_events", "outbox_delete", "debezium"]

    /// The preset this mapping started from, or `custom`.
    public var name: String
    public var schema: String
    public var table: String
    /// An increasing integer per row (nil only with `insertingTransaction`).
    public var orderColumn: String?
    /// Unique per row: the AMQP message id consumers deduplicate by, and the key rows are marked by.
    public var messageIDColumn: String
    /// Rows of one stream key go out in order; shares are split by its hash.
    public var streamKeyColumn: String
    /// The AMQP routing key (the event type).
    public var routingKeyColumn: String
    public var bodyColumn: String
    public var bodyEncoding: EventSource.Encoding
    /// Optional: a JSON object column whose members become message headers.
    public var headersColumn: String?
    /// Optional: columns sent as string headers under their own names.
    public var headerColumns: [String]
    public var published: Published
    public var safeHead: SafeHead

    public init(
        name: String = "custom", schema: String = "public", table: String, orderColumn: String?, messageIDColumn: String,
        streamKeyColumn: String, routingKeyColumn: String, bodyColumn: String, bodyEncoding: EventSource.Encoding,
        headersColumn: String? = nil, headerColumns: [String] = [], published: Published, safeHead: SafeHead
    ) throws(EventSourceError) {
        self.name = name
        self.schema = schema
        self.table = table
        self.orderColumn = orderColumn
        self.messageIDColumn = messageIDColumn
        self.streamKeyColumn = streamKeyColumn
        self.routingKeyColumn = routingKeyColumn
        self.bodyColumn = bodyColumn
        self.bodyEncoding = bodyEncoding
        self.headersColumn = headersColumn
        self.headerColumns = headerColumns
        self.published = published
        self.safeHead = safeHead
        try validate()
    }

    /// Every identifier is plain (quoted when used); an order column exists unless the safe head
    /// is the inserting transaction.
    public func validate() throws(EventSourceError) {
        var fields = [("schema", schema), ("table", table), ("columns.message_id", messageIDColumn), ("columns.stream_key", streamKeyColumn),
                      ("columns.routing_key", routingKeyColumn), ("columns.body", bodyColumn)]
        if let orderColumn { fields.append(("columns.order", orderColumn)) }
        if let headersColumn { fields.append(("columns.headers", headersColumn)) }
        for column in headerColumns { fields.append(("header_columns", column)) }
        switch published {
        case .flag(let column): fields.append(("published.flag", column))
        case .timestamp(let column): fields.append(("published.timestamp", column))
        case .delete: break
        }
        if case .transactionID(let column) = safeHead { fields.append(("safe_head.transaction_id", column)) }
        for (field, value) in fields where !EventStoreSchema.isPlainIdentifier(value) {
            throw EventSourceError.invalidIdentifier(field: field, name: value)
        }
        switch safeHead {
        case .insertingTransaction: break
        case .settleWindow(let milliseconds):
            guard (0...3_600_000).contains(milliseconds) else { throw EventSourceError.invalid(field: "safe_head.settle_window", message: "between 0 and 1h") }
            fallthrough
        case .transactionID:
            guard orderColumn != nil else {
                throw EventSourceError.invalid(field: "columns.order", message: "required (an increasing integer column), unless safe_head is { transaction_id: xmin }")
            }
        }
    }

    /// `"schema"."table"`, quoted.
    public var qualifiedTable: String { PostgresIdentifier.quote(schema) + "." + PostgresIdentifier.quote(table) }

    /// Whether this is Reprise's own outbox (published by the relay's original path: the outbox
    /// row joined with its event).
    public var isReprise: Bool { name == "reprise" }

    /// A preset by name, in `schema`, with its table name or `table`.
    public static func preset(_ name: String, schema: String = "public", table: String? = nil) throws(EventSourceError) -> OutboxMapping {
        switch name {
        case "reprise":
            // Reprise's own outbox (`reprise init`): the relay joins each row with its event.
            return try OutboxMapping(
                name: name, schema: schema, table: table ?? "outbox", orderColumn: "global_position", messageIDColumn: "global_position",
                streamKeyColumn: "global_position", routingKeyColumn: "global_position", bodyColumn: "global_position", bodyEncoding: .jsonb,
                published: .timestamp(column: "published_at"), safeHead: .transactionID(column: "transaction_id"))
        case "outbox_events":
            // The common hand-written shape: a bigserial id, a flag flipped after publishing.
            // No transaction id column: a settle window keeps a stream's rows in order.
            return try OutboxMapping(
                name: name, schema: schema, table: table ?? "outbox_events", orderColumn: "id", messageIDColumn: "id",
                streamKeyColumn: "aggregate_id", routingKeyColumn: "event_type", bodyColumn: "payload", bodyEncoding: .jsonb,
                headerColumns: [], published: .flag(column: "is_published"), safeHead: .settleWindow(milliseconds: 2_000))
        case "outbox_delete":
            // Rows deleted once published: the table only ever holds the backlog.
            return try OutboxMapping(
                name: name, schema: schema, table: table ?? "outbox_messages", orderColumn: "id", messageIDColumn: "id",
                streamKeyColumn: "aggregate_id", routingKeyColumn: "event_type", bodyColumn: "payload", bodyEncoding: .jsonb,
                published: .delete, safeHead: .settleWindow(milliseconds: 2_000))
        case "debezium":
            // The Debezium outbox convention (`id` uuid, `aggregatetype`, `aggregateid`, `type`,
            // `payload`): no order column, so rows go out by inserting transaction; deleted once
            // published, as Debezium's own connector leaves them to be.
            return try OutboxMapping(
                name: name, schema: schema, table: table ?? "outbox", orderColumn: nil, messageIDColumn: "id",
                streamKeyColumn: "aggregateid", routingKeyColumn: "type", bodyColumn: "payload", bodyEncoding: .jsonb,
                headerColumns: ["aggregatetype"], published: .delete, safeHead: .insertingTransaction)
        default:
            throw EventSourceError.invalid(field: "preset", message: "unknown outbox preset '\(name)' (known: \(presetNames.joined(separator: ", ")))")
        }
    }

    /// Reprise's own outbox, under the names `reprise init` was given.
    public static func reprise(_ store: EventStoreSchema) -> OutboxMapping {
        guard let mapping = try? preset("reprise", schema: store.schema, table: store.outboxTable) else {
            preconditionFailure("the reprise outbox preset is valid for a valid EventStoreSchema")
        }
        return mapping
    }
}
