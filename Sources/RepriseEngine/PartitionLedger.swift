import RepriseMySQL
import RepriseProjection

/// The ledgers of split builds: the partitions of a partitioned rebuild
/// (`reprise_build_partitions`, each with a state and an owner) and the live partitions of an
/// active build (`reprise_live_partitions`, each with a round of its own). A partition's
/// checkpoint columns are written by `Checkpoints`.
package struct PartitionLedger: Sendable {
    package let connection: MySQLConnection
    package static let rebuildTable = "reprise_build_partitions"
    package static let liveTable = "reprise_live_partitions"

    package func ensureTables() async throws {
        try await createLedger(Self.rebuildTable, columns: ["state VARCHAR(16) NOT NULL"])
        // The owner's MySQL connection, to fence a worker whose lease expired (tables made before it existed).
        try await SchemaColumns.add("owner_connection", to: Self.rebuildTable, as: "ADD COLUMN owner_connection BIGINT NULL", on: connection)
        // Raised by every claim; a chunk commits only under the epoch it claimed (see `claimPartition`).
        try await SchemaColumns.add("owner_epoch", to: Self.rebuildTable, as: "ADD COLUMN owner_epoch BIGINT NOT NULL DEFAULT 0", on: connection)
        try await createLedger(Self.liveTable, columns: ["base_snapshot TEXT NULL", "target_snapshot TEXT NOT NULL"])
        // The owner connection's client host:port, so that a fencing kills that session and no other.
        for table in [Self.rebuildTable, Self.liveTable] {
            try await SchemaColumns.add("owner_host", to: table, as: "ADD COLUMN owner_host VARCHAR(255) NULL", on: connection)
        }
    }

    /// Both ledgers: a row per partition of a build, with its progress and its owner.
    private func createLedger(_ table: String, columns: [String]) async throws {
        try await connection.execute("""
            CREATE TABLE IF NOT EXISTS \(table) (
                build_id BIGINT NOT NULL,
                partition_no INT NOT NULL,
                partitions INT NOT NULL,
                \(columns.map { $0 + "," }.joined(separator: "\n    "))
                round_position BIGINT NOT NULL DEFAULT 0,
                events_applied BIGINT NOT NULL DEFAULT 0,
                owner VARCHAR(200) NULL,
                owner_connection BIGINT NULL,
                owner_host VARCHAR(255) NULL,
                heartbeat_at DATETIME(6) NULL,
                PRIMARY KEY (build_id, partition_no)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
            """)
    }

    // MARK: - Partitions of a rebuild

    /// The partitions of a build, in order (empty for an unpartitioned build).
    package func partitions(of buildID: Int64) async throws -> [BuildPartition] {
        let result = try await connection.query(
            """
            SELECT partition_no, partitions, state, round_position, events_applied, owner,
                   TIMESTAMPDIFF(MICROSECOND, heartbeat_at, UTC_TIMESTAMP(6)) / 1e6, owner_epoch
            FROM \(Self.rebuildTable) WHERE build_id = ? ORDER BY partition_no
            """, [.int(buildID)])
        return (0..<result.rowCount).map { row in
            BuildPartition(
                number: result.int(row, 0) ?? 0, count: result.int(row, 1) ?? 0,
                state: result.string(row, 2).flatMap(BuildPartition.State.init(rawValue:)) ?? .pending,
                roundPosition: result.int64(row, 3) ?? 0, eventsApplied: result.int64(row, 4) ?? 0, owner: result.string(row, 5),
                secondsSinceHeartbeat: result.string(row, 6).flatMap(Double.init), epoch: result.int64(row, 7) ?? 0)
        }
    }

    package func createPartitions(of buildID: Int64, count: Int) async throws {
        try await connection.executeBatch(
            prefix: "INSERT INTO \(Self.rebuildTable) (build_id, partition_no, partitions, state) VALUES",
            rows: (0..<count).map { [.int(buildID), .int(Int64($0)), .int(Int64(count)), .string(BuildPartition.State.pending.rawValue)] },
            suffix: "")
    }

    /// Claims a partition not done yet for `owner`: a new epoch, which fences every earlier owner
    /// (their chunks' checkpoint updates require the epoch they claimed). Returns the partition as
    /// it stands after the claim (a chunk the old owner committed before it included), or nil
    /// when it is done. The claim waits for the row lock of an old owner's chunk in flight.
    package func claimPartition(_ buildID: Int64, _ number: Int, owner: String) async throws -> BuildPartition? {
        let updated = try await connection.execute(
            """
            UPDATE \(Self.rebuildTable) SET state = ?, owner = ?, \(Self.ownerSession), heartbeat_at = UTC_TIMESTAMP(6),
                   owner_epoch = owner_epoch + 1
            WHERE build_id = ? AND partition_no = ? AND state <> ?
            """,
            [.string(BuildPartition.State.running.rawValue), .string(owner), .int(buildID), .int(Int64(number)), .string(BuildPartition.State.done.rawValue)])
        guard updated == 1 else { return nil }
        return try await partitions(of: buildID).first(where: { $0.number == number })
    }

    /// Marks a partition done, if `partition`'s claim still holds.
    package func finishPartition(_ buildID: Int64, _ partition: BuildPartition, owner: String, projection: String) async throws {
        let updated = try await connection.execute(
            """
            UPDATE \(Self.rebuildTable) SET state = ?, owner = ?, \(Self.ownerSession), heartbeat_at = UTC_TIMESTAMP(6)
            WHERE build_id = ? AND partition_no = ? AND owner_epoch = ?
            """,
            [.string(BuildPartition.State.done.rawValue), .string(owner), .int(buildID), .int(Int64(partition.number)), .int(partition.epoch)])
        guard updated == 1 else { throw Self.partitionTakenOver(buildID, partition, projection: projection) }
    }

    /// A worker whose claim was fenced off by a newer one.
    static func partitionTakenOver(_ buildID: Int64, _ partition: BuildPartition, projection: String) -> EngineError {
        EngineError(
            .inconsistentState, projection: projection,
            message: "partition \(partition.number) of build \(buildID) was taken over by another worker (this worker's claim \(partition.epoch) is fenced off): it commits nothing more")
    }

    /// Whether a build of this definition, split into `partitions`, went live at or after `since`.
    package func partitionedBuildActivated(_ definition: ProjectionDefinition, partitions: Int, since: String) async throws -> Bool {
        try await connection.query(
            """
            SELECT COUNT(*) FROM \(BuildRegistry.table) b
            WHERE b.projection = ? AND b.version = ? AND b.definition_hash = ? AND b.activated_at >= ?
              AND (SELECT COUNT(*) FROM \(Self.rebuildTable) p WHERE p.build_id = b.build_id) = ?
            """,
            [.string(definition.name), .int(Int64(definition.version)), .string(definition.definitionHash), .string(since), .int(Int64(partitions))]
        ).int(0, 0) ?? 0 > 0
    }

    /// The MySQL session of a partition's last owner.
    package func partitionOwnerSession(_ buildID: Int64, _ number: Int) async throws -> OwnerSession? {
        let result = try await connection.query(
            "SELECT owner_connection, owner_host FROM \(Self.rebuildTable) WHERE build_id = ? AND partition_no = ?", [.int(buildID), .int(Int64(number))])
        return result.int64(0, 0).map { OwnerSession(id: $0, host: result.string(0, 1)) }
    }

    /// Sets a ledger row's owner session to the connection running the statement.
    static let ownerSession = "owner_connection = CONNECTION_ID(), owner_host = (SELECT HOST FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID())"

    /// An owner's MySQL session as a ledger row names it: its id, and its client's host:port
    /// (nil in rows written before the column existed).
    package struct OwnerSession: Sendable {
        package var id: Int64
        package var host: String?

        package init(id: Int64, host: String?) {
            self.id = id
            self.host = host
        }

        /// Kills the session on `connection` if it is still the owner's (`killSession`: by id
        /// and client host:port; a row without a host, by id). Returns whether a session was
        /// killed (false: it was gone).
        @discardableResult
        package func kill(on connection: MySQLConnection) async -> Bool {
            guard let host else { return (try? await connection.execute("KILL CONNECTION ?", [.int(id)])) != nil }
            return await connection.killSession(UInt64(id), from: host)
        }
    }

    /// After the last partition: the build's own counters sum its partitions'.
    package func sumPartitions(into build: BuildRecord) async throws {
        try await connection.execute(
            """
            UPDATE \(BuildRegistry.table) SET events_applied = (SELECT COALESCE(SUM(events_applied), 0) FROM \(Self.rebuildTable) WHERE build_id = ?),
                updated_at = UTC_TIMESTAMP(6) WHERE build_id = ?
            """, [.int(build.buildID), .int(build.buildID)])
    }

    // MARK: - Live partitions

    package func livePartitions(of buildID: Int64) async throws -> [LivePartition] {
        let result = try await connection.query(
            """
            SELECT partition_no, partitions, base_snapshot, target_snapshot, round_position, events_applied, owner,
                   TIMESTAMPDIFF(MICROSECOND, heartbeat_at, UTC_TIMESTAMP(6)) / 1e6
            FROM \(Self.liveTable) WHERE build_id = ? ORDER BY partition_no
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
            prefix: "INSERT INTO \(Self.liveTable) (build_id, partition_no, partitions, base_snapshot, target_snapshot) VALUES",
            rows: (0..<count).map { [.int(build.buildID), .int(Int64($0)), .int(Int64(count)), build.baseSnapshot.map(MySQLValue.string) ?? .null, .string(build.targetSnapshot)] },
            suffix: "")
        // A heartbeat from the start: a partition whose owner freezes before its first look
        // still ages out of its lease.
        try await connection.execute("UPDATE \(Self.liveTable) SET heartbeat_at = UTC_TIMESTAMP(6) WHERE build_id = ?", [.int(build.buildID)])
    }

    /// Records that `owner` looks after a live partition now.
    package func touchLive(_ buildID: Int64, _ number: Int, owner: String) async throws {
        try await connection.execute(
            "UPDATE \(Self.liveTable) SET owner = ?, \(Self.ownerSession), heartbeat_at = UTC_TIMESTAMP(6) WHERE build_id = ? AND partition_no = ?",
            [.string(owner), .int(buildID), .int(Int64(number))])
    }

    /// Makes every live partition one checkpoint again: each has applied everything visible in
    /// `snapshot`, which becomes the build's base; the partitions' counts join the build's. One
    /// transaction, so a crash leaves either the partitions or the merged build.
    package func mergeLive(_ build: BuildRecord, snapshot: String) async throws {
        try await connection.withTransaction { connection in
            let updated = try await connection.execute(
                """
                UPDATE \(BuildRegistry.table) SET base_snapshot = ?, target_snapshot = ?, round_position = 0, rounds = rounds + 1,
                    events_applied = events_applied + (SELECT COALESCE(SUM(events_applied), 0) FROM \(Self.liveTable) WHERE build_id = ?),
                    updated_at = UTC_TIMESTAMP(6)
                WHERE build_id = ? AND round_position = 0
                """, [.string(snapshot), .string(snapshot), .int(build.buildID), .int(build.buildID)])
            guard updated == 1 else {
                throw EngineError(.inconsistentState, projection: build.projection, message: "build \(build.buildID) moved on under us while merging its live partitions")
            }
            try await connection.execute("DELETE FROM \(Self.liveTable) WHERE build_id = ?", [.int(build.buildID)])
        }
    }

    package func deleteLivePartitions(of buildID: Int64) async throws {
        try await connection.execute("DELETE FROM \(Self.liveTable) WHERE build_id = ?", [.int(buildID)])
    }
}
