import RepriseMySQL
import RepriseProjection

/// The MySQL side of the engine: the registry of builds, the DDL of build tables, row reads and
/// writes, and the atomic swap. The engine is the only caller; it decides transactions.
package struct ReadModelStore: Sendable {
    package let connection: MySQLConnection
    static let registryTable = "reprise_builds"
    /// Keys per `IN (…)` list: well under MySQL's limits, big enough to be few round trips.
    static let keysPerStatement = 1_000

    // MARK: - Registry

    func ensureRegistry() async throws {
        try await connection.execute("""
            CREATE TABLE IF NOT EXISTS \(Self.registryTable) (
                build_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
                projection VARCHAR(64) NOT NULL,
                version INT NOT NULL,
                definition_hash VARCHAR(64) NOT NULL,
                state VARCHAR(16) NOT NULL,
                table_names TEXT NOT NULL,
                base_snapshot TEXT NULL,
                target_snapshot TEXT NOT NULL,
                round_position BIGINT NOT NULL DEFAULT 0,
                events_applied BIGINT NOT NULL DEFAULT 0,
                rounds INT NOT NULL DEFAULT 0,
                started_at DATETIME(6) NOT NULL,
                updated_at DATETIME(6) NOT NULL,
                activated_at DATETIME(6) NULL,
                retired_at DATETIME(6) NULL,
                last_error TEXT NULL,
                KEY reprise_builds_projection_state (projection, state)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
            """)
        try await connection.execute("""
            CREATE TABLE IF NOT EXISTS \(Self.partitionsTable) (
                build_id BIGINT NOT NULL,
                partition_no INT NOT NULL,
                partitions INT NOT NULL,
                state VARCHAR(16) NOT NULL,
                round_position BIGINT NOT NULL DEFAULT 0,
                events_applied BIGINT NOT NULL DEFAULT 0,
                owner VARCHAR(200) NULL,
                owner_connection BIGINT NULL,
                heartbeat_at DATETIME(6) NULL,
                PRIMARY KEY (build_id, partition_no)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
            """)
        // The owner's MySQL connection, to fence a worker whose lease expired (tables made before it existed).
        try await SchemaColumns.add("owner_connection", to: Self.partitionsTable, as: "ADD COLUMN owner_connection BIGINT NULL", on: connection)
        try await connection.execute("""
            CREATE TABLE IF NOT EXISTS \(Self.livePartitionsTable) (
                build_id BIGINT NOT NULL,
                partition_no INT NOT NULL,
                partitions INT NOT NULL,
                base_snapshot TEXT NULL,
                target_snapshot TEXT NOT NULL,
                round_position BIGINT NOT NULL DEFAULT 0,
                events_applied BIGINT NOT NULL DEFAULT 0,
                owner VARCHAR(200) NULL,
                owner_connection BIGINT NULL,
                heartbeat_at DATETIME(6) NULL,
                PRIMARY KEY (build_id, partition_no)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
            """)
    }

    static let partitionsTable = "reprise_build_partitions"
    static let livePartitionsTable = "reprise_live_partitions"

    // MARK: - Live partitions

    package func livePartitions(of buildID: Int64) async throws -> [LivePartition] {
        let result = try await connection.query(
            """
            SELECT partition_no, partitions, base_snapshot, target_snapshot, round_position, events_applied, owner,
                   TIMESTAMPDIFF(MICROSECOND, heartbeat_at, UTC_TIMESTAMP(6)) / 1e6
            FROM \(Self.livePartitionsTable) WHERE build_id = ? ORDER BY partition_no
            """, [.int(buildID)])
        return (0..<result.rowCount).map { row in
            LivePartition(
                number: result.int(row, 0) ?? 0, count: result.int(row, 1) ?? 0, baseSnapshot: result.string(row, 2),
                targetSnapshot: result.string(row, 3) ?? "", roundPosition: result.int64(row, 4) ?? 0, eventsApplied: result.int64(row, 5) ?? 0,
                owner: result.string(row, 6), secondsSinceHeartbeat: result.string(row, 7).flatMap(Double.init))
        }
    }

    /// Splits an active build between rounds into `count` live partitions, each starting from
    /// the build's round (the caller holds the projection lock).
    package func splitLive(_ build: BuildRecord, count: Int) async throws {
        guard build.roundPosition == 0 else {
            throw EngineError(.inconsistentState, projection: build.projection, message: "build \(build.buildID) is inside a round; it can only be split between rounds")
        }
        try await connection.executeBatch(
            prefix: "INSERT INTO \(Self.livePartitionsTable) (build_id, partition_no, partitions, base_snapshot, target_snapshot) VALUES",
            rows: (0..<count).map { [.int(build.buildID), .int(Int64($0)), .int(Int64(count)), build.baseSnapshot.map(MySQLValue.string) ?? .null, .string(build.targetSnapshot)] },
            suffix: "")
        // A heartbeat from the start: a partition whose owner freezes before its first look
        // still ages out of its lease.
        try await connection.execute("UPDATE \(Self.livePartitionsTable) SET heartbeat_at = UTC_TIMESTAMP(6) WHERE build_id = ?", [.int(build.buildID)])
    }

    /// Records that `owner` looks after a live partition now.
    package func touchLive(_ buildID: Int64, _ number: Int, owner: String) async throws {
        try await connection.execute(
            "UPDATE \(Self.livePartitionsTable) SET owner = ?, owner_connection = CONNECTION_ID(), heartbeat_at = UTC_TIMESTAMP(6) WHERE build_id = ? AND partition_no = ?",
            [.string(owner), .int(buildID), .int(Int64(number))])
    }

    /// Makes every live partition one checkpoint again: each has applied everything visible in
    /// `snapshot`, which becomes the build's base; the partitions' counts join the build's. One
    /// transaction, so a crash leaves either the partitions or the merged build.
    func mergeLive(_ build: BuildRecord, snapshot: String) async throws {
        try await connection.withTransaction { connection in
            let updated = try await connection.execute(
                """
                UPDATE \(Self.registryTable) SET base_snapshot = ?, target_snapshot = ?, round_position = 0, rounds = rounds + 1,
                    events_applied = events_applied + (SELECT COALESCE(SUM(events_applied), 0) FROM \(Self.livePartitionsTable) WHERE build_id = ?),
                    updated_at = UTC_TIMESTAMP(6)
                WHERE build_id = ? AND round_position = 0
                """, [.string(snapshot), .string(snapshot), .int(build.buildID), .int(build.buildID)])
            guard updated == 1 else {
                throw EngineError(.inconsistentState, projection: build.projection, message: "build \(build.buildID) moved on under us while merging its live partitions")
            }
            try await connection.execute("DELETE FROM \(Self.livePartitionsTable) WHERE build_id = ?", [.int(build.buildID)])
        }
    }

    func deleteLivePartitions(of buildID: Int64) async throws {
        try await connection.execute("DELETE FROM \(Self.livePartitionsTable) WHERE build_id = ?", [.int(buildID)])
    }

    /// The partitions of a build, in order (empty for an unpartitioned build).
    func partitions(of buildID: Int64) async throws -> [BuildPartition] {
        let result = try await connection.query(
            """
            SELECT partition_no, partitions, state, round_position, events_applied, owner,
                   TIMESTAMPDIFF(MICROSECOND, heartbeat_at, UTC_TIMESTAMP(6)) / 1e6
            FROM \(Self.partitionsTable) WHERE build_id = ? ORDER BY partition_no
            """, [.int(buildID)])
        return (0..<result.rowCount).map { row in
            BuildPartition(
                number: result.int(row, 0) ?? 0, count: result.int(row, 1) ?? 0,
                state: result.string(row, 2).flatMap(BuildPartition.State.init(rawValue:)) ?? .pending,
                roundPosition: result.int64(row, 3) ?? 0, eventsApplied: result.int64(row, 4) ?? 0, owner: result.string(row, 5),
                secondsSinceHeartbeat: result.string(row, 6).flatMap(Double.init))
        }
    }

    func createPartitions(of buildID: Int64, count: Int) async throws {
        try await connection.executeBatch(
            prefix: "INSERT INTO \(Self.partitionsTable) (build_id, partition_no, partitions, state) VALUES",
            rows: (0..<count).map { [.int(buildID), .int(Int64($0)), .int(Int64(count)), .string(BuildPartition.State.pending.rawValue)] },
            suffix: "")
    }

    func setPartition(_ buildID: Int64, _ number: Int, state: BuildPartition.State, owner: String) async throws {
        try await connection.execute(
            """
            UPDATE \(Self.partitionsTable) SET state = ?, owner = ?, owner_connection = CONNECTION_ID(), heartbeat_at = UTC_TIMESTAMP(6)
            WHERE build_id = ? AND partition_no = ?
            """,
            [.string(state.rawValue), .string(owner), .int(buildID), .int(Int64(number))])
    }

    /// Whether a build of this definition, split into `partitions`, went live at or after `since`.
    func partitionedBuildActivated(_ definition: ProjectionDefinition, partitions: Int, since: String) async throws -> Bool {
        try await connection.query(
            """
            SELECT COUNT(*) FROM \(Self.registryTable) b
            WHERE b.projection = ? AND b.version = ? AND b.definition_hash = ? AND b.activated_at >= ?
              AND (SELECT COUNT(*) FROM \(Self.partitionsTable) p WHERE p.build_id = b.build_id) = ?
            """,
            [.string(definition.name), .int(Int64(definition.version)), .string(definition.definitionHash), .string(since), .int(Int64(partitions))]
        ).int(0, 0) ?? 0 > 0
    }

    /// The MySQL connection of a partition's last owner.
    func partitionOwnerConnection(_ buildID: Int64, _ number: Int) async throws -> Int64? {
        try await connection.query(
            "SELECT owner_connection FROM \(Self.partitionsTable) WHERE build_id = ? AND partition_no = ?", [.int(buildID), .int(Int64(number))]).int64(0, 0)
    }

    /// After the last partition: the build's own counters sum its partitions'.
    func sumPartitions(into build: BuildRecord) async throws {
        try await connection.execute(
            """
            UPDATE \(Self.registryTable) SET events_applied = (SELECT COALESCE(SUM(events_applied), 0) FROM \(Self.partitionsTable) WHERE build_id = ?),
                updated_at = UTC_TIMESTAMP(6) WHERE build_id = ?
            """, [.int(build.buildID), .int(build.buildID)])
    }

    private static let buildColumns =
        "build_id, projection, version, definition_hash, state, base_snapshot, target_snapshot, round_position, events_applied, rounds"

    private func record(_ result: MySQLResult, _ row: Int) throws -> BuildRecord {
        guard let id = result.int64(row, 0), let state = result.string(row, 4).flatMap(BuildRecord.State.init(rawValue:)) else {
            throw EngineError(.inconsistentState, message: "unreadable row in \(Self.registryTable)")
        }
        return BuildRecord(
            buildID: id, projection: result.string(row, 1) ?? "", version: result.int(row, 2) ?? 0,
            definitionHash: result.string(row, 3) ?? "", state: state, baseSnapshot: result.string(row, 5),
            targetSnapshot: result.string(row, 6) ?? "", roundPosition: result.int64(row, 7) ?? 0,
            eventsApplied: result.int64(row, 8) ?? 0, rounds: result.int(row, 9) ?? 0)
    }

    package func builds(of projection: String, states: [BuildRecord.State]) async throws -> [BuildRecord] {
        let placeholders = states.map { _ in "?" }.joined(separator: ", ")
        let result = try await connection.query(
            "SELECT \(Self.buildColumns) FROM \(Self.registryTable) WHERE projection = ? AND state IN (\(placeholders)) ORDER BY build_id",
            [.string(projection)] + states.map { .string($0.rawValue) })
        return try (0..<result.rowCount).map { try record(result, $0) }
    }

    package func build(_ id: Int64) async throws -> BuildRecord? {
        let result = try await connection.query("SELECT \(Self.buildColumns) FROM \(Self.registryTable) WHERE build_id = ?", [.int(id)])
        return result.rowCount == 0 ? nil : try record(result, 0)
    }

    /// The tables a build was created with (by the names readers use).
    func tableNames(of buildID: Int64) async throws -> [String] {
        let result = try await connection.query("SELECT table_names FROM \(Self.registryTable) WHERE build_id = ?", [.int(buildID)])
        return (result.string(0, 0) ?? "").split(separator: ",").map(String.init)
    }

    func createBuild(_ definition: ProjectionDefinition, snapshot: String) async throws -> BuildRecord {
        let result = try await connection.query(
            """
            INSERT INTO \(Self.registryTable) (projection, version, definition_hash, state, table_names, target_snapshot, started_at, updated_at)
            VALUES (?, ?, ?, 'building', ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))
            """,
            [.string(definition.name), .int(Int64(definition.version)), .string(definition.definitionHash),
             .string(definition.tables.map(\.name).joined(separator: ",")), .string(snapshot)])
        guard let build = try await build(Int64(result.lastInsertID)) else {
            throw EngineError(.inconsistentState, projection: definition.name, message: "the new build row was not found")
        }
        return build
    }

    /// Records progress inside the chunk's transaction. The compare-and-set on the old position
    /// makes a second writer of the same build fail instead of double-applying.
    func advance(_ build: BuildRecord, to position: Int64, events: Int) async throws {
        if let live = build.livePartition {
            let updated = try await connection.execute(
                """
                UPDATE \(Self.livePartitionsTable) SET round_position = ?, events_applied = events_applied + ?, heartbeat_at = UTC_TIMESTAMP(6)
                WHERE build_id = ? AND partition_no = ? AND round_position = ? AND target_snapshot = ?
                """,
                [.int(position), .int(Int64(events)), .int(build.buildID), .int(Int64(live.number)), .int(build.roundPosition), .string(build.targetSnapshot)])
            guard updated == 1 else { throw Self.liveMovedOn(build, live) }
            return
        }
        if let partition = build.partition {
            let updated = try await connection.execute(
                """
                UPDATE \(Self.partitionsTable) SET round_position = ?, events_applied = events_applied + ?, heartbeat_at = UTC_TIMESTAMP(6)
                WHERE build_id = ? AND partition_no = ? AND round_position = ?
                """,
                [.int(position), .int(Int64(events)), .int(build.buildID), .int(Int64(partition.number)), .int(build.roundPosition)])
            guard updated == 1 else {
                throw EngineError(
                    .inconsistentState, projection: build.projection,
                    message: "partition \(partition.number) of build \(build.buildID) moved on under us (another worker writing it?)")
            }
            return
        }
        let updated = try await connection.execute(
            """
            UPDATE \(Self.registryTable) SET round_position = ?, events_applied = events_applied + ?, updated_at = UTC_TIMESTAMP(6)
            WHERE build_id = ? AND round_position = ? AND target_snapshot = ?
            """,
            [.int(position), .int(Int64(events)), .int(build.buildID), .int(build.roundPosition), .string(build.targetSnapshot)])
        guard updated == 1 else {
            throw EngineError(
                .inconsistentState, projection: build.projection,
                message: "build \(build.buildID) moved on under us (another process writing it?)")
        }
    }

    /// Where the checkpoint `build` advances stands now (nil when its round moved to another
    /// target, or the row is gone).
    func checkpointPosition(_ build: BuildRecord) async throws -> Int64? {
        let result: MySQLResult
        if let live = build.livePartition {
            result = try await connection.query(
                "SELECT round_position FROM \(Self.livePartitionsTable) WHERE build_id = ? AND partition_no = ? AND target_snapshot = ?",
                [.int(build.buildID), .int(Int64(live.number)), .string(build.targetSnapshot)])
        } else if let partition = build.partition {
            result = try await connection.query(
                "SELECT round_position FROM \(Self.partitionsTable) WHERE build_id = ? AND partition_no = ?", [.int(build.buildID), .int(Int64(partition.number))])
        } else {
            result = try await connection.query(
                "SELECT round_position FROM \(Self.registryTable) WHERE build_id = ? AND target_snapshot = ?", [.int(build.buildID), .string(build.targetSnapshot)])
        }
        return result.rowCount == 1 ? result.int64(0, 0) : nil
    }

    /// Closes a round: its target becomes the base, `nextSnapshot` the next target.
    func closeRound(_ build: BuildRecord, nextSnapshot: String) async throws {
        if let live = build.livePartition {
            let updated = try await connection.execute(
                """
                UPDATE \(Self.livePartitionsTable) SET base_snapshot = target_snapshot, target_snapshot = ?, round_position = 0, heartbeat_at = UTC_TIMESTAMP(6)
                WHERE build_id = ? AND partition_no = ? AND target_snapshot = ? AND round_position = ?
                """,
                [.string(nextSnapshot), .int(build.buildID), .int(Int64(live.number)), .string(build.targetSnapshot), .int(build.roundPosition)])
            guard updated == 1 else { throw Self.liveMovedOn(build, live) }
            return
        }
        let updated = try await connection.execute(
            """
            UPDATE \(Self.registryTable) SET base_snapshot = target_snapshot, target_snapshot = ?, round_position = 0,
                rounds = rounds + 1, updated_at = UTC_TIMESTAMP(6)
            WHERE build_id = ? AND target_snapshot = ? AND round_position = ?
            """,
            [.string(nextSnapshot), .int(build.buildID), .string(build.targetSnapshot), .int(build.roundPosition)])
        guard updated == 1 else {
            throw EngineError(.inconsistentState, projection: build.projection, message: "build \(build.buildID) moved on under us")
        }
    }

    /// Points a round that has not applied anything yet at a newer snapshot (the live worker's
    /// rounds always read up to now).
    package func retarget(_ build: BuildRecord, snapshot: String) async throws {
        if let live = build.livePartition {
            let updated = try await connection.execute(
                """
                UPDATE \(Self.livePartitionsTable) SET target_snapshot = ?, heartbeat_at = UTC_TIMESTAMP(6)
                WHERE build_id = ? AND partition_no = ? AND target_snapshot = ? AND round_position = 0
                """,
                [.string(snapshot), .int(build.buildID), .int(Int64(live.number)), .string(build.targetSnapshot)])
            guard updated == 1 else { throw Self.liveMovedOn(build, live) }
            return
        }
        let updated = try await connection.execute(
            """
            UPDATE \(Self.registryTable) SET target_snapshot = ?, updated_at = UTC_TIMESTAMP(6)
            WHERE build_id = ? AND target_snapshot = ? AND round_position = 0
            """,
            [.string(snapshot), .int(build.buildID), .string(build.targetSnapshot)])
        guard updated == 1 else {
            throw EngineError(.inconsistentState, projection: build.projection, message: "build \(build.buildID) moved on under us")
        }
    }

    func setState(_ build: BuildRecord, _ state: BuildRecord.State, error: String? = nil) async throws {
        let stamp = state == .active ? ", activated_at = UTC_TIMESTAMP(6)" : state == .retired ? ", retired_at = UTC_TIMESTAMP(6)" : ""
        try await connection.execute(
            "UPDATE \(Self.registryTable) SET state = ?, last_error = ?, updated_at = UTC_TIMESTAMP(6)\(stamp) WHERE build_id = ?",
            [.string(state.rawValue), error.map { .string($0) } ?? .null, .int(build.buildID)])
    }

    func recordError(_ buildID: Int64, _ message: String) async {
        _ = try? await connection.execute(
            "UPDATE \(Self.registryTable) SET last_error = ?, updated_at = UTC_TIMESTAMP(6) WHERE build_id = ?",
            [.string(String(message.prefix(4_000))), .int(buildID)])
    }

    // MARK: - Tables

    func tableExists(_ name: String) async throws -> Bool {
        try await connection.query(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?", [.string(name)]
        ).int(0, 0) == 1
    }

    func rowCount(_ physical: String) async throws -> Int64 {
        try await connection.query("SELECT COUNT(*) FROM \(MySQLIdentifier.quote(physical))").int64(0, 0) ?? 0
    }

    /// Creates the build's tables (idempotent: a resumed build keeps its rows).
    func createTables(_ definition: ProjectionDefinition, build: BuildRecord) async throws {
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
            for (number, index) in table.indexes.enumerated() {
                lines.append("KEY \(MySQLIdentifier.quote("ix_\(number + 1)")) (\(index.map(MySQLIdentifier.quote).joined(separator: ", ")))")
            }
            // utf8mb4_bin: keys compare byte for byte, exactly like the engine's in-memory rows.
            try await connection.execute(
                "CREATE TABLE IF NOT EXISTS \(MySQLIdentifier.quote(build.physicalName(table.name))) (\n  "
                    + lines.joined(separator: ",\n  ") + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
        }
    }

    func dropTables(_ names: [String]) async throws {
        guard !names.isEmpty else { return }
        try await connection.execute("DROP TABLE IF EXISTS " + names.map(MySQLIdentifier.quote).joined(separator: ", "))
    }

    /// Reads the rows with these keys from a table; keys not returned do not exist.
    func loadRows(_ layout: TableLayout, physical: String, keys: [RowKey]) async throws -> [RowKey: [ProjectionValue]] {
        var rows: [RowKey: [ProjectionValue]] = [:]
        let columns = layout.columns.map { MySQLIdentifier.quote($0.name) }.joined(separator: ", ")
        var start = 0
        while start < keys.count {
            let slice = keys[start..<min(start + Self.keysPerStatement, keys.count)]
            let (condition, parameters) = Self.keyCondition(layout, slice)
            let result = try await connection.query("SELECT \(columns) FROM \(MySQLIdentifier.quote(physical)) WHERE \(condition)", parameters)
            for row in 0..<result.rowCount {
                let values = layout.columns.enumerated().map { ColumnValues.fromMySQL(result.rows[row][$0.offset], for: $0.element) }
                rows[layout.key(of: values)] = values
            }
            start += slice.count
        }
        return rows
    }

    /// Writes a chunk's final rows: upserts for rows that exist after the chunk, deletes for the others.
    /// Returns the number of rows written.
    func writeRows(_ layout: TableLayout, physical: String, rows: [RowKey: [ProjectionValue]?]) async throws -> Int {
        var upserts: [[MySQLValue]] = []
        var deletes: [RowKey] = []
        for (key, row) in rows {
            if let row {
                upserts.append(zip(row, layout.columns).map { ColumnValues.mysqlValue($0, for: $1) })
            } else {
                deletes.append(key)
            }
        }
        let table = MySQLIdentifier.quote(physical)
        if !upserts.isEmpty {
            let names = layout.columns.map { MySQLIdentifier.quote($0.name) }
            let keyNames = Set(layout.definition.primaryKey)
            let updates = layout.columns.filter { !keyNames.contains($0.name) }.map {
                "\(MySQLIdentifier.quote($0.name)) = VALUES(\(MySQLIdentifier.quote($0.name)))"
            }
            let suffix = updates.isEmpty
                ? "ON DUPLICATE KEY UPDATE \(names[layout.keyIndexes[0]]) = \(names[layout.keyIndexes[0]])"
                : "ON DUPLICATE KEY UPDATE " + updates.joined(separator: ", ")
            try await connection.executeBatch(
                prefix: "INSERT INTO \(table) (\(names.joined(separator: ", "))) VALUES", rows: upserts, suffix: suffix)
        }
        var start = 0
        while start < deletes.count {
            let slice = deletes[start..<min(start + Self.keysPerStatement, deletes.count)]
            let (condition, parameters) = Self.keyCondition(layout, slice)
            try await connection.execute("DELETE FROM \(table) WHERE \(condition)", parameters)
            start += slice.count
        }
        return upserts.count + deletes.count
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

    private static func liveMovedOn(_ build: BuildRecord, _ live: LivePartition) -> EngineError {
        EngineError(
            .inconsistentState, projection: build.projection,
            message: "live partition \(live.number) of \(live.count) of build \(build.buildID) moved on under us (another consumer applying it?)")
    }
}
