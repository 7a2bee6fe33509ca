import RepriseMySQL
import RepriseProjection

/// The read-model tables of builds: their DDL (a build's own `<table>__<buildID>` tables) and
/// the row reads and writes of chunks. Rows are batched: keys in `IN (…)` lists, upserts in
/// multi-row statements.
package struct ReadModelTables: Sendable {
    package let connection: MySQLConnection
    /// Keys per `IN (…)` list: well under MySQL's limits, big enough to be few round trips.
    package static let keysPerStatement = 1_000

    /// The `SELECT`s `selectRows` sends for `keys` keys.
    static func queries(forKeys keys: Int) -> Int64 { Int64((keys + keysPerStatement - 1) / keysPerStatement) }

    package func exists(_ name: String) async throws -> Bool {
        try await connection.query(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?", [.string(name)]
        ).int(0, 0) == 1
    }

    package func rowCount(_ physical: String) async throws -> Int64 {
        try await connection.query("SELECT COUNT(*) FROM \(MySQLIdentifier.quote(physical))").int64(0, 0) ?? 0
    }

    /// Creates the build's tables (idempotent: a resumed build keeps its rows) with their primary
    /// key only: the secondary indexes are added by `RebuildEngine.buildMissingIndexes` after the bulk phase, when
    /// InnoDB builds each by sorting the rows once instead of updating it row by row (random keys
    /// thrash the buffer pool once the tables outgrow it).
    package func create(_ definition: ProjectionDefinition, build: BuildRecord) async throws {
        for table in definition.tables {
            var lines: [String] = []
            for column in table.columns {
                var line = "\(MySQLIdentifier.quote(column.name)) \(column.type.sql)"
                if !column.nullable { line += " NOT NULL" }
                if let defaultValue = column.defaultValue, defaultValue != .null, column.type != .text, column.type != .json {
                    let canonical = try ColumnValues.canonical(defaultValue, for: column)
                    line += " DEFAULT " + (try await connection.sqlLiteral(ColumnValues.mysqlValue(canonical, for: column)))
                }
                lines.append(line)
            }
            lines.append("PRIMARY KEY (\(table.primaryKey.map(MySQLIdentifier.quote).joined(separator: ", ")))")
            // utf8mb4_bin: keys compare byte for byte, exactly like the engine's in-memory rows.
            try await connection.execute(
                "CREATE TABLE IF NOT EXISTS \(MySQLIdentifier.quote(build.physicalName(table.name))) (\n  "
                    + lines.joined(separator: ",\n  ") + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
        }
    }

    /// A table's declared secondary indexes: `ix_N` for the N-th entry of `indexes:`.
    package static func declaredIndexes(_ table: TableDefinition) -> [SecondaryIndex] {
        table.indexes.enumerated().map { SecondaryIndex(name: "ix_\($0.offset + 1)", columns: $0.element) }
    }

    /// The declared secondary indexes `physical` lacks, by name (tables of older versions, created
    /// with their indexes, lack none).
    package func missingIndexes(_ table: TableDefinition, physical: String) async throws -> [SecondaryIndex] {
        let declared = Self.declaredIndexes(table)
        guard !declared.isEmpty else { return [] }
        let existing = try await connection.query(
            "SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ?",
            [.string(physical)])
        let names = Set((0..<existing.rowCount).compactMap { existing.string($0, 0) })
        return declared.filter { !names.contains($0.name) }
    }

    /// InnoDB's estimate of each table's rows (`information_schema.tables.table_rows`), by name;
    /// tables it does not list are left out.
    package func estimatedRows(_ physical: [String]) async throws -> [String: Int64] {
        guard !physical.isEmpty else { return [:] }
        let result = try await connection.query(
            "SELECT table_name, table_rows FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN ("
                + physical.map { _ in "?" }.joined(separator: ", ") + ")",
            physical.map { .string($0) })
        var rows: [String: Int64] = [:]
        for row in 0..<result.rowCount {
            if let name = result.string(row, 0) { rows[name] = result.int64(row, 1) ?? 0 }
        }
        return rows
    }

    /// Adds indexes to a table in one `ALTER TABLE` (one pass over the rows for all of them). One
    /// statement: interrupted (crash, `KILL QUERY` on cancellation), it adds none of them.
    package func addIndexes(_ indexes: [SecondaryIndex], physical: String) async throws {
        guard !indexes.isEmpty else { return }
        try await connection.execute(
            "ALTER TABLE \(MySQLIdentifier.quote(physical)) "
                + indexes.map { "ADD KEY \(MySQLIdentifier.quote($0.name)) (\($0.columns.map(MySQLIdentifier.quote).joined(separator: ", ")))" }
                .joined(separator: ", "))
    }

    package func drop(_ names: [String]) async throws {
        guard !names.isEmpty else { return }
        try await connection.execute("DROP TABLE IF EXISTS " + names.map(MySQLIdentifier.quote).joined(separator: ", "))
    }

    /// Reads the rows with these keys from a table; keys not returned do not exist.
    func loadRows(_ layout: TableLayout, physical: String, keys: [RowKey]) async throws -> [RowKey: [ProjectionValue]] {
        Self.rows(try await selectRows(layout, physical: physical, keys: keys), layout)
    }

    /// `loadRows`'s queries, their answers as MySQL sent them.
    func selectRows(_ layout: TableLayout, physical: String, keys: [RowKey]) async throws -> [MySQLResult] {
        var results: [MySQLResult] = []
        let columns = layout.columns.map { MySQLIdentifier.quote($0.name) }.joined(separator: ", ")
        var start = 0
        while start < keys.count {
            let slice = keys[start..<min(start + Self.keysPerStatement, keys.count)]
            let (condition, parameters) = Self.keyCondition(layout, slice)
            results.append(try await connection.query("SELECT \(columns) FROM \(MySQLIdentifier.quote(physical)) WHERE \(condition)", parameters))
            start += slice.count
        }
        return results
    }

    /// `selectRows`'s answers as rows by key.
    static func rows(_ results: [MySQLResult], _ layout: TableLayout) -> [RowKey: [ProjectionValue]] {
        var rows: [RowKey: [ProjectionValue]] = [:]
        for result in results {
            for row in 0..<result.rowCount {
                let values = layout.columns.enumerated().map { ColumnValues.fromMySQL(result.rows[row][$0.offset], for: $0.element) }
                rows[layout.key(of: values)] = values
            }
        }
        return rows
    }

    /// Writes rows with one bulk load (`LOAD DATA LOCAL INFILE` from memory, each row rendered
    /// straight into the load's text); returns the number of rows. Meant for rows the table does
    /// not hold yet; REPLACE makes a row whose key is there end as the chunk's final row all the
    /// same, as an upsert would (which `writeRows(replacingByLoad:)` relies on). The rows go in
    /// key order (`ColumnValues.inKeyOrder`): InnoDB then fills its pages in turn.
    func loadNewRows(_ layout: TableLayout, physical: String, rows: [[ProjectionValue]]) async throws -> Int {
        guard !rows.isEmpty else { return 0 }
        try await connection.loadRowsInterruptibly(
            into: physical, columns: layout.columns.map(\.name), rows: ColumnValues.inKeyOrder(rows, keyIndexes: layout.keyIndexes), duplicates: .replace,
            render: ColumnValues.rowRenderer(layout.columns))
        return rows.count
    }

    /// Writes a chunk's final rows: `new` (rows the table does not hold yet, bulk-loaded), the
    /// rows that exist after the chunk, deletes for the others, and `merges` (changes to rows
    /// that may exist, applied by MySQL to the row it holds). Returns the number of rows
    /// written. Rows that exist go by upserts (multi-row statements, rendered straight into
    /// them) or, with `replacingByLoad` (a build's own tables, which have no unique key but the
    /// primary key), in the same bulk load as `new`, with REPLACE: the row is whole in memory, so
    /// replacing it leaves what the upsert would, and the server parses no SQL per row (measured
    /// in docs/throughput-io.md).
    func writeRows(
        _ layout: TableLayout, physical: String, new: [[ProjectionValue]] = [], rows: [RowKey: [ProjectionValue]?], merges: [MergeBatch] = [],
        replacingByLoad: Bool = false
    ) async throws -> Int {
        var loaded = new, upserts: [[ProjectionValue]] = [], deletes: [RowKey] = []
        if replacingByLoad { loaded.reserveCapacity(new.count + rows.count) } else { upserts.reserveCapacity(rows.count) }
        for (key, row) in rows {
            if let row {
                if replacingByLoad { loaded.append(row) } else { upserts.append(row) }
            } else {
                deletes.append(key)
            }
        }
        let table = MySQLIdentifier.quote(physical)
        _ = try await loadNewRows(layout, physical: physical, rows: loaded)
        // A whole row upserted is a merge row that sets every column.
        let batches = upserts.isEmpty ? merges : merges + [MergeBatch(operations: Array(repeating: .set, count: layout.columns.count), rows: upserts)]
        let names = layout.columns.map { MySQLIdentifier.quote($0.name) }.joined(separator: ", ")
        var merged = 0
        for batch in batches {
            try await connection.executeBatch(
                prefix: "INSERT INTO \(table) (\(names)) VALUES", rows: batch.rows, suffix: Self.mergeSuffix(layout, batch.operations),
                render: ColumnValues.rowRenderer(layout.columns))
            merged += batch.rows.count
        }
        var start = 0
        while start < deletes.count {
            let slice = deletes[start..<min(start + Self.keysPerStatement, deletes.count)]
            let (condition, parameters) = Self.keyCondition(layout, slice)
            try await connection.execute("DELETE FROM \(table) WHERE \(condition)", parameters)
            start += slice.count
        }
        return loaded.count + merged + deletes.count
    }

    /// `ON DUPLICATE KEY UPDATE` of rows with these operations per column (the key columns
    /// excluded; a key alone updates nothing); whole rows: `.set` everywhere.
    static func mergeSuffix(_ layout: TableLayout, _ operations: [MergeOperation]) -> String {
        let updates = layout.columns.indices.compactMap { index in
            layout.keyIndexes.contains(index) ? nil : operations[index].updateClause(MySQLIdentifier.quote(layout.columns[index].name))
        }
        let key = MySQLIdentifier.quote(layout.columns[layout.keyIndexes[0]].name)
        return "ON DUPLICATE KEY UPDATE " + (updates.isEmpty ? "\(key) = \(key)" : updates.joined(separator: ", "))
    }

    /// `(k1, k2) IN ((?, ?), …)` for a list of keys, with its parameters.
    static func keyCondition(_ layout: TableLayout, _ keys: ArraySlice<RowKey>) -> (String, [MySQLValue]) {
        let keyColumns = layout.keyIndexes.map { layout.columns[$0] }
        let keyList = "(" + keyColumns.map { MySQLIdentifier.quote($0.name) }.joined(separator: ", ") + ")"
        let tuple = "(" + keyColumns.map { _ in "?" }.joined(separator: ", ") + ")"
        var parameters: [MySQLValue] = []
        parameters.reserveCapacity(keys.count * keyColumns.count)
        for key in keys {
            for (value, column) in zip(key.values, keyColumns) { parameters.append(ColumnValues.mysqlValue(value, for: column)) }
        }
        return ("\(keyList) IN (\(keys.map { _ in tuple }.joined(separator: ", ")))", parameters)
    }
}

/// A secondary index of a read-model table (`KEY ix_N (columns)`).
package struct SecondaryIndex: Sendable, Equatable, CustomStringConvertible {
    package var name: String
    package var columns: [String]
    package var description: String { "\(name) (\(columns.joined(separator: ", ")))" }
}
