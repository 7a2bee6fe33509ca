import RepriseMySQL

/// Columns added to Reprise's own MySQL tables after they first shipped. `ADD COLUMN IF NOT
/// EXISTS` is MariaDB-only, so the catalog is asked first; two processes adding the same column
/// at once is fine (the loser finds it there).
enum SchemaColumns {
    static func add(_ column: String, to table: String, as alteration: String, on connection: MySQLConnection) async throws {
        guard try await !exists(column, in: table, on: connection) else { return }
        do {
            try await connection.execute("ALTER TABLE \(table) \(alteration)")
        } catch {
            guard try await exists(column, in: table, on: connection) else { throw error }
        }
    }

    private static func exists(_ column: String, in table: String, on connection: MySQLConnection) async throws -> Bool {
        try await connection.query(
            "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ?",
            [.string(table), .string(column)]).int(0, 0) ?? 0 > 0
    }
}
