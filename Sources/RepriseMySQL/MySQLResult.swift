/// The rows of one statement, copied out of the C result set (which is freed at once).
/// Values are MySQL's text protocol representation; NULL is nil.
public struct MySQLResult: Sendable {
    public let columnNames: [String]
    public let rows: [[String?]]
    /// Rows affected by INSERT/UPDATE/DELETE (for ON DUPLICATE KEY UPDATE: 1 per insert, 2 per update).
    public let affectedRows: Int
    public let lastInsertID: UInt64

    public var rowCount: Int { rows.count }

    public func columnIndex(_ name: String) -> Int? { columnNames.firstIndex(of: name) }

    /// The value as text; nil for NULL, and for a row or column that does not exist.
    public func string(_ row: Int, _ column: Int) -> String? {
        guard row >= 0, row < rows.count, column >= 0, column < rows[row].count else { return nil }
        return rows[row][column]
    }
    public func int64(_ row: Int, _ column: Int) -> Int64? { string(row, column).flatMap { Int64($0) } }
    public func int(_ row: Int, _ column: Int) -> Int? { string(row, column).flatMap { Int($0) } }
    public func double(_ row: Int, _ column: Int) -> Double? { string(row, column).flatMap { Double($0) } }
}
