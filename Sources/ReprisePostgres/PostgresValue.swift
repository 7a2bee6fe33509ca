/// A statement parameter. Values travel to the server separately from the SQL text
/// (`PQexecParams`), so no value is ever spliced into SQL.
public enum PostgresValue: Sendable, Hashable {
    case null
    case text(String)
    case int(Int64)
    case double(Double)
    case bool(Bool)
    /// Sent in binary format as `bytea`.
    case bytes([UInt8])

    /// The text form the server parses, or nil for NULL and binary values.
    var textForm: String? {
        switch self {
        case .null, .bytes: nil
        case .text(let value): value
        case .int(let value): String(value)
        case .double(let value): value.isFinite ? "\(value)" : (value.isNaN ? "NaN" : (value > 0 ? "Infinity" : "-Infinity"))
        case .bool(let value): value ? "t" : "f"
        }
    }
}

extension PostgresValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .text(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension PostgresValue {
    public init(_ value: String?) { self = value.map { .text($0) } ?? .null }
    public init(_ value: Int) { self = .int(Int64(value)) }
    public init(_ value: Int64?) { self = value.map { .int($0) } ?? .null }
}

/// Quoting of identifiers (table, column, channel names) that cannot be parameters.
public enum PostgresIdentifier {
    /// `"name"` with embedded quotes doubled. NUL bytes are refused by the caller's validation.
    public static func quote(_ name: String) -> String {
        "\"" + name.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\""
    }

    /// A table name that may be schema-qualified (`public.events`): each part quoted.
    public static func quoteQualified(_ name: String) -> String {
        name.split(separator: ".", omittingEmptySubsequences: false).map { quote(String($0)) }.joined(separator: ".")
    }
}
