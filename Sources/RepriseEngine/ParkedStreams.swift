import RepriseMySQL

/// A stream whose events wait because one of them failed (a poison event), per projection.
public struct ParkedStream: Sendable, Equatable {
    public enum Action: String, Sendable {
        /// Waiting for an operator.
        case wait
        /// Apply the stream's waiting events again (after a fix).
        case retry
        /// Drop the failing event and apply the ones after it.
        case skip
    }

    public var projection: String
    public var streamID: String
    public var buildID: Int64
    /// The position of the event that failed.
    public var position: Int64
    public var eventType: String
    public var error: String
    public var action: Action
    public var parkedAt: String
}

/// The `reprise_parked` table: parked streams, written by the live worker, acted on by `reprise parked`.
public struct ParkedStreamStore: Sendable {
    public let connection: MySQLConnection
    static let table = "reprise_parked"

    public init(connection: MySQLConnection) {
        self.connection = connection
    }

    public func ensureTable() async throws {
        try await connection.execute("""
            CREATE TABLE IF NOT EXISTS \(Self.table) (
                projection VARCHAR(64) NOT NULL,
                stream_id VARCHAR(255) NOT NULL,
                build_id BIGINT NOT NULL,
                position BIGINT NOT NULL,
                event_type VARCHAR(255) NOT NULL,
                error TEXT NOT NULL,
                action VARCHAR(8) NOT NULL DEFAULT 'wait',
                parked_at DATETIME(6) NOT NULL,
                PRIMARY KEY (projection, stream_id)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
            """)
    }

    public func list(projection: String? = nil) async throws -> [ParkedStream] {
        let result = try await connection.query(
            "SELECT projection, stream_id, build_id, position, event_type, error, action, parked_at FROM \(Self.table)"
                + (projection == nil ? "" : " WHERE projection = ?") + " ORDER BY parked_at, position",
            projection.map { [.string($0)] } ?? [])
        return (0..<result.rowCount).map { row in
            ParkedStream(
                projection: result.string(row, 0) ?? "", streamID: result.string(row, 1) ?? "", buildID: result.int64(row, 2) ?? 0,
                position: result.int64(row, 3) ?? 0, eventType: result.string(row, 4) ?? "", error: result.string(row, 5) ?? "",
                action: result.string(row, 6).flatMap(ParkedStream.Action.init(rawValue:)) ?? .wait, parkedAt: result.string(row, 7) ?? "")
        }
    }

    func park(_ stream: ParkedStream) async throws {
        try await connection.execute(
            """
            INSERT INTO \(Self.table) (projection, stream_id, build_id, position, event_type, error, action, parked_at)
            VALUES (?, ?, ?, ?, ?, ?, 'wait', UTC_TIMESTAMP(6))
            ON DUPLICATE KEY UPDATE error = VALUES(error), action = 'wait'
            """,
            [.string(stream.projection), .string(stream.streamID), .int(stream.buildID), .int(stream.position), .string(stream.eventType),
             .string(String(stream.error.prefix(4_000)))])
    }

    /// Asks the live worker to retry or skip a parked stream. Returns false when it is not parked.
    @discardableResult
    public func request(_ action: ParkedStream.Action, projection: String, streamID: String) async throws -> Bool {
        try await connection.execute(
            "UPDATE \(Self.table) SET action = ? WHERE projection = ? AND stream_id = ?",
            [.string(action.rawValue), .string(projection), .string(streamID)]) == 1
    }

    func remove(projection: String, streamID: String) async throws {
        try await connection.execute("DELETE FROM \(Self.table) WHERE projection = ? AND stream_id = ?", [.string(projection), .string(streamID)])
    }

    func setWaiting(projection: String, streamID: String, error: String) async throws {
        try await connection.execute(
            "UPDATE \(Self.table) SET action = 'wait', error = ? WHERE projection = ? AND stream_id = ?",
            [.string(String(error.prefix(4_000))), .string(projection), .string(streamID)])
    }
}
