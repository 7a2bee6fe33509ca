import RepriseMySQL
import RepriseProjection

extension ColumnValues {
    /// Appends a canonical value to a row being written to MySQL: the same text as
    /// `writer.append(mysqlValue(value, for: column))`, without the `MySQLValue` (nor, for a
    /// DATETIME, the converted string).
    static func write(_ value: ProjectionValue, for column: ColumnDefinition, into writer: inout MySQLRowWriter) throws(MySQLError) {
        switch value {
        case .null: writer.appendNull()
        case .int(let number): writer.append(number)
        case .decimal(let decimal): try writer.appendDecimal(plain(decimal))
        case .double(let number): try writer.append(number)
        case .bool(let flag): writer.append(flag)
        case .string(let text):
            if case .datetime = column.type { writer.appendDatetime(iso: text) } else { writer.append(text) }
        }
    }

    /// The render closure of a table's rows (`[ProjectionValue]` in the layout's column order)
    /// for `MySQLConnection.loadRows` and `executeBatch`.
    static func rowRenderer(_ columns: [ColumnDefinition]) -> @Sendable ([ProjectionValue], inout MySQLRowWriter) throws(MySQLError) -> Void {
        { row, writer throws(MySQLError) in
            for index in 0..<min(row.count, columns.count) { try write(row[index], for: columns[index], into: &writer) }
        }
    }
}
