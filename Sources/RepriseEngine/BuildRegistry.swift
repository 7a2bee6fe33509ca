import RepriseMySQL
import RepriseProjection

/// The registry of builds (`reprise_builds`): which builds of a projection exist, their state,
/// their tables and their errors. A build's checkpoint columns are written by `Checkpoints`.
struct BuildRegistry: Sendable {
    let connection: MySQLConnection
    static let table = "reprise_builds"

    func ensureTable() async throws {
        try await connection.execute("""
            CREATE TABLE IF NOT EXISTS \(Self.table) (
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
    }

    private static let buildColumns =
        "build_id, projection, version, definition_hash, state, base_snapshot, target_snapshot, round_position, events_applied, rounds"

    private func record(_ result: MySQLResult, _ row: Int) throws -> BuildRecord {
        guard let id = result.int64(row, 0), let state = result.string(row, 4).flatMap(BuildRecord.State.init(rawValue:)) else {
            throw EngineError(.inconsistentState, message: "unreadable row in \(Self.table)")
        }
        return BuildRecord(
            buildID: id, projection: result.string(row, 1) ?? "", version: result.int(row, 2) ?? 0,
            definitionHash: result.string(row, 3) ?? "", state: state, baseSnapshot: result.string(row, 5),
            targetSnapshot: result.string(row, 6) ?? "", roundPosition: result.int64(row, 7) ?? 0,
            eventsApplied: result.int64(row, 8) ?? 0, rounds: result.int(row, 9) ?? 0)
    }

    func builds(of projection: String, states: [BuildRecord.State]) async throws -> [BuildRecord] {
        let placeholders = states.map { _ in "?" }.joined(separator: ", ")
        let result = try await connection.query(
            "SELECT \(Self.buildColumns) FROM \(Self.table) WHERE projection = ? AND state IN (\(placeholders)) ORDER BY build_id",
            [.string(projection)] + states.map { .string($0.rawValue) })
        return try (0..<result.rowCount).map { try record(result, $0) }
    }

    func build(_ id: Int64) async throws -> BuildRecord? {
        let result = try await connection.query("SELECT \(Self.buildColumns) FROM \(Self.table) WHERE build_id = ?", [.int(id)])
        return result.rowCount == 0 ? nil : try record(result, 0)
    }

    /// The tables a build was created with (by the names readers use).
    func tableNames(of buildID: Int64) async throws -> [String] {
        let result = try await connection.query("SELECT table_names FROM \(Self.table) WHERE build_id = ?", [.int(buildID)])
        return (result.string(0, 0) ?? "").split(separator: ",").map(String.init)
    }

    func createBuild(_ definition: ProjectionDefinition, snapshot: String) async throws -> BuildRecord {
        let result = try await connection.query(
            """
            INSERT INTO \(Self.table) (projection, version, definition_hash, state, table_names, target_snapshot, started_at, updated_at)
            VALUES (?, ?, ?, 'building', ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))
            """,
            [.string(definition.name), .int(Int64(definition.version)), .string(definition.definitionHash),
             .string(definition.tables.map(\.name).joined(separator: ",")), .string(snapshot)])
        guard let build = try await build(Int64(result.lastInsertID)) else {
            throw EngineError(.inconsistentState, projection: definition.name, message: "the new build row was not found")
        }
        return build
    }

    func setState(_ build: BuildRecord, _ state: BuildRecord.State, error: String? = nil) async throws {
        let stamp = state == .active ? ", activated_at = UTC_TIMESTAMP(6)" : state == .retired ? ", retired_at = UTC_TIMESTAMP(6)" : ""
        try await connection.execute(
            "UPDATE \(Self.table) SET state = ?, last_error = ?, updated_at = UTC_TIMESTAMP(6)\(stamp) WHERE build_id = ?",
            [.string(state.rawValue), error.map { .string($0) } ?? .null, .int(build.buildID)])
    }

    func recordError(_ buildID: Int64, _ message: String) async {
        _ = try? await connection.execute(
            "UPDATE \(Self.table) SET last_error = ?, updated_at = UTC_TIMESTAMP(6) WHERE build_id = ?",
            [.string(String(message.prefix(4_000))), .int(buildID)])
    }
}
