import RepriseMySQL
import RepriseProjection

/// What a migration would change, compared before the swap (`reprise migrate --review`): the
/// built version's tables (green) against the live ones, table by table, by the new primary key.
/// Everything is counted in MySQL (anti-joins and a join), so memory stays bounded; only the
/// samples come back.
public struct MigrationReview: Sendable, Encodable {
    public struct Difference: Sendable, Encodable {
        public var key: [String: TraceValue]
        /// Per differing column: the live value and the new one.
        public var columns: [String: [String: TraceValue]]
    }

    public struct Table: Sendable, Encodable {
        public var table: String
        /// Nil: the live version has no such table (all rows are new).
        public var oldRows: Int64?
        /// Nil: the new version drops the table.
        public var newRows: Int64?
        public var onlyInOld: Int64
        public var onlyInNew: Int64
        public var differing: Int64
        public var columnsAdded: [String]
        public var columnsRemoved: [String]
        public var sampleOnlyInOld: [[String: TraceValue]]
        public var sampleOnlyInNew: [[String: TraceValue]]
        public var sampleDiffering: [Difference]
    }

    public var projection: String
    public var oldVersion: Int
    public var oldBuild: Int64
    public var newVersion: Int
    public var newBuild: Int64
    public var tables: [Table]
}

extension RebuildEngine {
    /// Compares the built, not yet swapped, build `newBuild` of `definition` with the active build.
    public func reviewMigration(_ definition: ProjectionDefinition, newBuild: Int64, sampleSize: Int = 5) async throws -> MigrationReview {
        let connection = try await MySQLConnection.connect(url: mysqlURL)
        do {
            let review = try await Self.review(definition, newBuild: newBuild, sampleSize: sampleSize, store: ReadModelStore(connection: connection))
            await connection.close()
            return review
        } catch {
            await connection.close()
            throw error
        }
    }

    /// Gives up the built, not yet swapped, version of a projection (`reprise migrate --abandon`):
    /// its tables are dropped and the build is marked abandoned. Nil when there was none.
    public func abandonBuild(of projection: String) async throws -> BuildRecord? {
        let connections = try await EngineConnections.open(postgresURL: postgresURL, mysqlURL: mysqlURL)
        do {
            // Closing the lock connection releases the lock.
            let lock = Self.rebuildLockName(projection, database: connections.database)
            guard try await connections.locks.getLock(lock, timeoutSeconds: 0) else {
                throw EngineError(.locked, projection: projection, message: "a rebuild or migration of \(projection) is running (lock \(lock) is held)")
            }
            let store = connections.store
            var abandoned: BuildRecord?
            if let build = try await store.registry.builds(of: projection, states: [.building]).last {
                try await store.tables.drop(try await store.registry.tableNames(of: build.buildID).map(build.physicalName))
                try await store.registry.setState(build, .abandoned, error: "abandoned after review")
                abandoned = build
            }
            await connections.close()
            return abandoned
        } catch {
            await connections.close()
            throw error
        }
    }

    static func review(_ definition: ProjectionDefinition, newBuild: Int64, sampleSize: Int, store: ReadModelStore) async throws -> MigrationReview {
        guard let active = try await store.registry.builds(of: definition.name, states: [.active]).last else {
            throw EngineError(.invalidRequest, projection: definition.name, message: "no active build to compare with")
        }
        guard let built = try await store.registry.build(newBuild) else {
            throw EngineError(.invalidRequest, projection: definition.name, message: "no build \(newBuild)")
        }
        var review = MigrationReview(
            projection: definition.name, oldVersion: active.version, oldBuild: active.buildID, newVersion: built.version, newBuild: newBuild, tables: [])
        let oldTables = try await store.registry.tableNames(of: active.buildID)
        for table in definition.tables {
            review.tables.append(try await compare(table, old: oldTables.contains(table.name) ? table.name : nil, new: built.physicalName(table.name),
                                                   sampleSize: sampleSize, connection: store.connection))
        }
        for name in oldTables where definition.table(named: name) == nil {
            let rows = try await store.tables.rowCount(name)
            review.tables.append(MigrationReview.Table(
                table: name, oldRows: rows, newRows: nil, onlyInOld: rows, onlyInNew: 0, differing: 0, columnsAdded: [],
                columnsRemoved: try await columns(of: name, connection: store.connection), sampleOnlyInOld: [], sampleOnlyInNew: [], sampleDiffering: []))
        }
        return review
    }

    private static func columns(of table: String, connection: MySQLConnection) async throws -> [String] {
        try await connection.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position", [.string(table)]
        ).rows.compactMap { $0.first ?? nil }
    }

    private static func compare(_ table: TableDefinition, old: String?, new: String, sampleSize: Int, connection: MySQLConnection) async throws -> MigrationReview.Table {
        let q = MySQLIdentifier.quote
        let newRows = try await connection.query("SELECT COUNT(*) FROM \(q(new))").int64(0, 0) ?? 0
        let newColumns = table.columns.map(\.name)
        guard let old else {
            let sample = try await connection.query("SELECT \(table.primaryKey.map(q).joined(separator: ", ")) FROM \(q(new)) LIMIT \(sampleSize)")
            return MigrationReview.Table(
                table: table.name, oldRows: nil, newRows: newRows, onlyInOld: 0, onlyInNew: newRows, differing: 0, columnsAdded: newColumns, columnsRemoved: [],
                sampleOnlyInOld: [], sampleOnlyInNew: named(sample, table.primaryKey), sampleDiffering: [])
        }
        let oldColumns = try await columns(of: old, connection: connection)
        let oldRows = try await connection.query("SELECT COUNT(*) FROM \(q(old))").int64(0, 0) ?? 0
        let key = table.primaryKey
        guard key.allSatisfy(oldColumns.contains) else {
            throw EngineError(.invalidRequest, projection: nil, message: "table \(table.name): the live table has no column \(key.filter { !oldColumns.contains($0) }.joined(separator: ", ")) of the new primary key, so rows cannot be matched")
        }
        let join = key.map { "o.\(q($0)) = n.\(q($0))" }.joined(separator: " AND ")
        let keyList = { (alias: String) in key.map { "\(alias).\(q($0))" }.joined(separator: ", ") }
        let onlyOld = "FROM \(q(old)) o WHERE NOT EXISTS (SELECT 1 FROM \(q(new)) n WHERE \(join))"
        let onlyNew = "FROM \(q(new)) n WHERE NOT EXISTS (SELECT 1 FROM \(q(old)) o WHERE \(join))"
        let common = newColumns.filter { oldColumns.contains($0) && !key.contains($0) }
        // `<=>` is NULL-safe equality.
        let differs = common.isEmpty ? "FALSE" : "NOT (" + common.map { "o.\(q($0)) <=> n.\(q($0))" }.joined(separator: " AND ") + ")"
        let differing = "FROM \(q(old)) o JOIN \(q(new)) n ON \(join) WHERE \(differs)"
        var result = MigrationReview.Table(
            table: table.name, oldRows: oldRows, newRows: newRows,
            onlyInOld: try await connection.query("SELECT COUNT(*) \(onlyOld)").int64(0, 0) ?? 0,
            onlyInNew: try await connection.query("SELECT COUNT(*) \(onlyNew)").int64(0, 0) ?? 0,
            differing: try await connection.query("SELECT COUNT(*) \(differing)").int64(0, 0) ?? 0,
            columnsAdded: newColumns.filter { !oldColumns.contains($0) }, columnsRemoved: oldColumns.filter { !newColumns.contains($0) },
            sampleOnlyInOld: named(try await connection.query("SELECT \(keyList("o")) \(onlyOld) ORDER BY \(keyList("o")) LIMIT \(sampleSize)"), key),
            sampleOnlyInNew: named(try await connection.query("SELECT \(keyList("n")) \(onlyNew) ORDER BY \(keyList("n")) LIMIT \(sampleSize)"), key),
            sampleDiffering: [])
        if !common.isEmpty {
            let selected = keyList("o") + ", " + common.map { "o.\(q($0)), n.\(q($0))" }.joined(separator: ", ")
            let rows = try await connection.query("SELECT \(selected) \(differing) ORDER BY \(keyList("o")) LIMIT \(sampleSize)").rows
            for row in rows {
                var difference = MigrationReview.Difference(key: [:], columns: [:])
                for (index, name) in key.enumerated() { difference.key[name] = text(row[index]) }
                for (index, name) in common.enumerated() {
                    let before = row[key.count + 2 * index], after = row[key.count + 2 * index + 1]
                    if before != after { difference.columns[name] = ["old": text(before), "new": text(after)] }
                }
                result.sampleDiffering.append(difference)
            }
        }
        return result
    }

    private static func text(_ value: String?) -> TraceValue { value.map(TraceValue.text) ?? .null }

    private static func named(_ result: MySQLResult, _ names: [String]) -> [[String: TraceValue]] {
        result.rows.map { row in Dictionary(uniqueKeysWithValues: zip(names, row.map(text))) }
    }
}
