import RepriseEventStore
import ReprisePostgres

/// Where and how a rebuild or live worker reads events: a *source mapping*.
///
/// Reprise's own store is one source; an event store written by another library (a spatie
/// `stored_events` table, Marten's `mt_events`, the Python `eventsourcing` recorder) is another.
/// The mapping names the table, the column of each envelope field, how the payload is encoded,
/// how stored type names map to the names projection files use, and how to find the safe head.
public struct EventSource: Sendable, Equatable {
    /// How a payload (or metadata) column holds its JSON.
    public enum Encoding: String, CaseIterable, Sendable {
        case json, jsonb, text
        /// UTF-8 JSON in a `bytea` column (the Python `eventsourcing` library's `state`).
        case bytea
    }

    /// How readers decide which events are safe to read: committed, with nothing still in flight below.
    public enum SafeHead: Sendable, Equatable, CustomStringConvertible {
        /// A column with the writing transaction's id (`xid8`, or `bigint` from `txid_current()`):
        /// rounds by snapshot visibility, exact whatever the commit order.
        case transactionID(column: String)
        /// No transaction id: the safe head is the highest position observed at least this long ago.
        /// Assumes a writer commits within the window after taking its position; 0 when writers are
        /// serialized (the table is locked for each insert).
        case settleWindow(milliseconds: Int)

        public var description: String {
            switch self {
            case .transactionID(let column): "transaction id column \(column)"
            case .settleWindow(let milliseconds): "settle window \(milliseconds) ms"
            }
        }
    }

    /// The field a partitioned rebuild hashes to split events (see `ResolvedEventSource.partitionFilter`).
    public enum PartitionKeyField: Sendable, Hashable, CustomStringConvertible {
        case streamID
        case payload([String])
        case metadata([String])

        public var description: String {
            switch self {
            case .streamID: "stream_id"
            case .payload(let path): "payload." + path.joined(separator: ".")
            case .metadata(let path): "metadata." + path.joined(separator: ".")
            }
        }
    }

    /// The preset this mapping started from, or `custom` (for messages).
    public var name: String
    public var schema: String
    public var table: String
    /// A strictly increasing integer per event: the order of reading and of checkpoints.
    public var positionColumn: String
    public var streamIDColumn: String
    /// Optional: a stream version of 0 when missing or NULL.
    public var streamVersionColumn: String?
    public var eventTypeColumn: String
    public var payloadColumn: String
    public var payloadEncoding: Encoding
    public var metadataColumn: String?
    public var metadataEncoding: Encoding
    public var recordedAtColumn: String?
    /// Optional: without it, an event's id is its position.
    public var eventIDColumn: String?
    /// Stored type name (class name, topic) → event type name of projection files. Names not
    /// listed are used as stored.
    public var typeNames: [String: String]
    public var safeHead: SafeHead

    public init(
        name: String = "custom", schema: String = "public", table: String, positionColumn: String, streamIDColumn: String,
        streamVersionColumn: String?, eventTypeColumn: String, payloadColumn: String, payloadEncoding: Encoding,
        metadataColumn: String? = nil, metadataEncoding: Encoding = .jsonb, recordedAtColumn: String? = nil, eventIDColumn: String? = nil,
        typeNames: [String: String] = [:], safeHead: SafeHead
    ) throws(EventSourceError) {
        self.name = name
        self.schema = schema
        self.table = table
        self.positionColumn = positionColumn
        self.streamIDColumn = streamIDColumn
        self.streamVersionColumn = streamVersionColumn
        self.eventTypeColumn = eventTypeColumn
        self.payloadColumn = payloadColumn
        self.payloadEncoding = payloadEncoding
        self.metadataColumn = metadataColumn
        self.metadataEncoding = metadataEncoding
        self.recordedAtColumn = recordedAtColumn
        self.eventIDColumn = eventIDColumn
        self.typeNames = typeNames
        self.safeHead = safeHead
        try validate()
    }

    /// Every identifier is plain (quoted when used); type names are non-empty.
    public func validate() throws(EventSourceError) {
        for (field, value) in identifierFields {
            guard EventStoreSchema.isPlainIdentifier(value) else { throw EventSourceError.invalidIdentifier(field: field, name: value) }
        }
        if case .settleWindow(let milliseconds) = safeHead, !(0...3_600_000).contains(milliseconds) {
            throw EventSourceError.invalid(field: "safe_head.settle_window", message: "between 0 and 1h")
        }
        for (stored, logical) in typeNames where stored.isEmpty || logical.isEmpty {
            throw EventSourceError.invalid(field: "type_names", message: "stored and mapped names must not be empty")
        }
    }

    /// The configured identifiers, by the key that sets them in a mapping file.
    var identifierFields: [(String, String)] {
        var fields = [("schema", schema), ("table", table), ("columns.position", positionColumn), ("columns.stream_id", streamIDColumn),
                      ("columns.event_type", eventTypeColumn), ("columns.payload", payloadColumn)]
        let optional: [(String, String?)] = [
            ("columns.stream_version", streamVersionColumn), ("columns.metadata", metadataColumn),
            ("columns.recorded_at", recordedAtColumn), ("columns.event_id", eventIDColumn),
        ]
        for case let (field, value?) in optional { fields.append((field, value)) }
        if case .transactionID(let column) = safeHead { fields.append(("safe_head.transaction_id", column)) }
        return fields
    }

    /// `"schema"."table"`, quoted.
    public var qualifiedTable: String { PostgresIdentifier.quote(schema) + "." + PostgresIdentifier.quote(table) }

    /// The name projection files use for a stored type name.
    public func eventType(forStored stored: String) -> String { typeNames[stored] ?? stored }

    /// The stored names that mean any of `eventTypes` (the filter a reader sends to PostgreSQL).
    public func storedNames(for eventTypes: some Sequence<String>) -> [String] {
        let wanted = Set(eventTypes)
        var names = Set<String>()
        for (stored, logical) in typeNames where wanted.contains(logical) { names.insert(stored) }
        // A name that is itself mapped to something else does not mean itself.
        for type in wanted where typeNames[type] == nil { names.insert(type) }
        return names.sorted()
    }
}

public enum EventSourceError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidIdentifier(field: String, name: String)
    case invalid(field: String, message: String)
    /// A mapping file could not be read or parsed; `message` has the file and key.
    case file(path: String, message: String)
    /// The mapping does not fit the table found in PostgreSQL.
    case mismatch(source: String, message: String)

    public var description: String {
        switch self {
        case .invalidIdentifier(let field, let name):
            "source mapping: \(field): '\(name)' is not a plain identifier (letters, digits and underscores, at most 63, not starting with a digit)"
        case .invalid(let field, let message): "source mapping: \(field): \(message)"
        case .file(let path, let message): "\(path): \(message)"
        case .mismatch(let source, let message): "event source \(source): \(message)"
        }
    }
}
