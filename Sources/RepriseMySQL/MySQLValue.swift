/// A statement parameter for MySQL. The wrapper renders it as a literal with the connection's
/// own escaping (`mysql_real_escape_string`, aware of charset and `NO_BACKSLASH_ESCAPES`),
/// the way client-side prepared statements of mature drivers do, so batches of many rows
/// travel as one multi-row statement in one round trip.
public enum MySQLValue: Sendable, Hashable {
    case null
    case int(Int64)
    case double(Double)
    case string(String)
    case bytes([UInt8])
    case bool(Bool)
    /// A decimal number in text form ("12.50"); validated before it is sent.
    case decimal(String)
}

extension MySQLValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByNilLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByFloatLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
}

/// Quoting of identifiers (database, table, column names) that cannot be parameters.
public enum MySQLIdentifier {
    /// `` `name` `` with embedded backticks doubled.
    public static func quote(_ name: String) -> String {
        "`" + name.split(separator: "`", omittingEmptySubsequences: false).joined(separator: "``") + "`"
    }
}
