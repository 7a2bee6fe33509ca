import Foundation

// The data model of a projection: what a projection file in `projections/` says, once parsed
// and validated. The engine runs this model; parsing (`ProjectionFileParser`) and expression
// evaluation (`ExpressionEvaluator`) produce and interpret it.

/// A value flowing through handlers: read from an event, computed by an expression, stored in a column.
public enum ProjectionValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    /// Exact base-10 numbers (money in major units, JSON numbers with a fraction).
    case decimal(Decimal)
    case double(Double)
    case string(String)
}

/// A named, versioned projection: its MySQL tables and, per event type, its row operations.
public struct ProjectionDefinition: Sendable {
    public var name: String
    public var version: Int
    public var description: String?
    /// The file it was loaded from (for messages), nil for code projections.
    public var sourceFile: String?
    public var tables: [TableDefinition]
    /// Event type -> operations, applied in order for each event of that type.
    public var handlers: [String: [RowOperation]]
    /// Checks run on the green tables before the swap.
    public var checks: [ProjectionCheck]
    /// A stable hash of the definition's meaning (not of its formatting); a changed definition
    /// must come with a new version.
    public var definitionHash: String
    /// Per handled event type, the field whose value decides an event's partition in a
    /// partitioned rebuild (`partition_key`). Every row an event writes must be determined by it,
    /// so that no two partitions write one row. Nil: the projection cannot be rebuilt partitioned.
    /// Not part of the definition hash: it changes how a rebuild splits work, not what it builds.
    public var partitionKey: [String: FieldReference]?

    public init(name: String, version: Int, description: String? = nil, sourceFile: String? = nil, tables: [TableDefinition],
                handlers: [String: [RowOperation]], checks: [ProjectionCheck] = [], definitionHash: String) {
        self.name = name
        self.version = version
        self.description = description
        self.sourceFile = sourceFile
        self.tables = tables
        self.handlers = handlers
        self.checks = checks
        self.definitionHash = definitionHash
    }

    /// The event types this projection handles.
    public var eventTypes: Set<String> { Set(handlers.keys) }

    public func table(named name: String) -> TableDefinition? { tables.first { $0.name == name } }
}

/// A MySQL table of a projection.
public struct TableDefinition: Sendable, Hashable {
    /// The name readers use; the engine adds suffixes for green and retired copies.
    public var name: String
    public var columns: [ColumnDefinition]
    public var primaryKey: [String]
    /// Secondary indexes, each a list of column names.
    public var indexes: [[String]]

    public init(name: String, columns: [ColumnDefinition], primaryKey: [String], indexes: [[String]] = []) {
        self.name = name
        self.columns = columns
        self.primaryKey = primaryKey
        self.indexes = indexes
    }

    public func column(named name: String) -> ColumnDefinition? { columns.first { $0.name == name } }
}

/// A column of a projection table: its MySQL type, whether it may be NULL, and its default.
public struct ColumnDefinition: Sendable, Hashable {
    public var name: String
    public var type: ColumnType
    public var nullable: Bool
    /// The value a new row starts with when no operation sets the column (NULL when absent and nullable).
    public var defaultValue: ProjectionValue?

    public init(name: String, type: ColumnType, nullable: Bool = true, defaultValue: ProjectionValue? = nil) {
        self.name = name
        self.type = type
        self.nullable = nullable
        self.defaultValue = defaultValue
    }
}

/// The MySQL column types a projection file may use.
public enum ColumnType: Sendable, Hashable {
    case int
    case bigint
    case decimal(precision: Int, scale: Int)
    case double
    case varchar(length: Int)
    case text
    case bool
    case date
    case datetime
    case json

    /// The type in MySQL DDL (`BIGINT`, `DECIMAL(12,2)`, `VARCHAR(64)`, `DATETIME(6)`, ...).
    public var sql: String {
        switch self {
        case .int: "INT"
        case .bigint: "BIGINT"
        case .decimal(let precision, let scale): "DECIMAL(\(precision),\(scale))"
        case .double: "DOUBLE"
        case .varchar(let length): "VARCHAR(\(length))"
        case .text: "TEXT"
        case .bool: "BOOLEAN"
        case .date: "DATE"
        case .datetime: "DATETIME(6)"
        case .json: "JSON"
        }
    }
}

/// A column name and the expression that gives its value.
public struct ColumnAssignment: Sendable, Hashable {
    public var column: String
    public var value: Expression
    public init(column: String, value: Expression) {
        self.column = column
        self.value = value
    }
}

/// What `update` does when the row does not exist.
public enum MissingRowPolicy: String, Sendable, Hashable {
    /// Nothing happens (the default: an update for a row never created is a no-op).
    case skip
    /// The handler fails: the event is reported with its position.
    case error
}

/// One row operation of a handler.
public indirect enum RowOperation: Sendable, Hashable {
    /// Creates a row; fails when the key exists. `values` must cover the primary key.
    case insert(table: String, values: [ColumnAssignment], when: Expression?)
    /// Creates the row or updates it. On creation, columns not in `values` take their defaults;
    /// expressions that read a column of a missing row read that default.
    case upsert(table: String, values: [ColumnAssignment], when: Expression?)
    /// Updates the row with this key; `set` expressions may read the row's current columns.
    case update(table: String, key: [ColumnAssignment], set: [ColumnAssignment], when: Expression?, ifMissing: MissingRowPolicy)
    /// Deletes the row with this key (no-op when missing).
    case delete(table: String, key: [ColumnAssignment], when: Expression?)
    /// Runs `operations` once per element of the array at `path`; inside, `item.…` reads the element.
    case forEach(path: FieldReference, operations: [RowOperation])
}

/// A check on the green tables before the swap. A failed check leaves the live tables in place.
public enum ProjectionCheck: Sendable, Hashable {
    /// The table has at least this many rows.
    case minimumRows(table: String, rows: Int)
    /// This read-only query returns no rows (table names in it are the names readers use; the
    /// engine points them at the green tables).
    case queryReturnsNoRows(name: String, sql: String)
}

/// Where an expression reads from the event.
public enum FieldReference: Sendable, Hashable, CustomStringConvertible {
    /// `payload.a.b.0.c`
    case payload([PathSegment])
    /// `metadata.a.b`
    case metadata([PathSegment])
    /// `event.stream_id`, `event.position`, ...
    case envelope(EnvelopeField)
    /// `item.a.b` inside `for_each`.
    case item([PathSegment])

    public var description: String {
        switch self {
        case .payload(let path): (["payload"] + path.map(\.description)).joined(separator: ".")
        case .metadata(let path): (["metadata"] + path.map(\.description)).joined(separator: ".")
        case .envelope(let field): "event.\(field.rawValue)"
        case .item(let path): (["item"] + path.map(\.description)).joined(separator: ".")
        }
    }
}

public enum PathSegment: Sendable, Hashable, CustomStringConvertible {
    case key(String)
    case index(Int)
    public var description: String {
        switch self {
        case .key(let key): key
        case .index(let index): String(index)
        }
    }
}

/// Fields of the event envelope (not of the payload).
public enum EnvelopeField: String, Sendable, Hashable, CaseIterable {
    case streamID = "stream_id"
    case streamVersion = "stream_version"
    case position
    case eventType = "type"
    case recordedAt = "recorded_at"
    case eventID = "event_id"
}

/// An expression of the projection language (see README, "Projection files").
public indirect enum Expression: Sendable, Hashable {
    case literal(ProjectionValue)
    case field(FieldReference)
    /// A column of the current row (in `update`, `upsert` and `when`).
    case column(String)
    case unary(UnaryOperator, Expression)
    case binary(BinaryOperator, Expression, Expression)
    case call(Function, [Expression])
}

public enum UnaryOperator: String, Sendable, Hashable {
    case negate = "-"
    case not
}

public enum BinaryOperator: String, Sendable, Hashable {
    case add = "+", subtract = "-", multiply = "*", divide = "/"
    case equal = "=", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    case and, or
}

public enum Function: String, Sendable, Hashable, CaseIterable {
    /// The first argument that is not null.
    case coalesce
    /// The date part (`YYYY-MM-DD`) of an ISO-8601 timestamp string.
    case date
    /// Text concatenation of all arguments (null counts as empty).
    case concat
    case lower, upper
    case greatest, least
    case abs
    /// A number from numeric text (`"1.50"` → 1.50): libraries that store decimals as strings.
    case number
    /// `if(condition, then, else)`
    case `if`
}
