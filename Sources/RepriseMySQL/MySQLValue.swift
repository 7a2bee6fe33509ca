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

/// Finds `?` placeholders outside string literals, quoted identifiers and comments.
enum PlaceholderScanner {
    /// The UTF-8 offsets of each placeholder in `sql`.
    static func placeholderOffsets(in sql: String) -> [Int] {
        var offsets: [Int] = []
        let bytes = Array(sql.utf8)
        var index = 0
        func skipQuoted(_ quote: UInt8) {
            index += 1
            while index < bytes.count {
                if bytes[index] == UInt8(ascii: "\\") && quote != UInt8(ascii: "`") { index += 2; continue }
                if bytes[index] == quote {
                    if index + 1 < bytes.count && bytes[index + 1] == quote { index += 2; continue }
                    index += 1
                    return
                }
                index += 1
            }
        }
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "'"), UInt8(ascii: "\""), UInt8(ascii: "`"):
                skipQuoted(byte)
            case UInt8(ascii: "#"):
                while index < bytes.count && bytes[index] != UInt8(ascii: "\n") { index += 1 }
            case UInt8(ascii: "-") where index + 2 < bytes.count && bytes[index + 1] == UInt8(ascii: "-")
                && (bytes[index + 2] == UInt8(ascii: " ") || bytes[index + 2] == UInt8(ascii: "\t") || bytes[index + 2] == UInt8(ascii: "\n")):
                while index < bytes.count && bytes[index] != UInt8(ascii: "\n") { index += 1 }
            case UInt8(ascii: "/") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "*"):
                index += 2
                while index + 1 < bytes.count && !(bytes[index] == UInt8(ascii: "*") && bytes[index + 1] == UInt8(ascii: "/")) { index += 1 }
                index += 2
            case UInt8(ascii: "?"):
                offsets.append(index)
                index += 1
            default:
                index += 1
            }
        }
        return offsets
    }
}
