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
    /// "" when the stream waits in the whole projection; "p/N" when it waits in live partition
    /// p of N only (the other partitions apply their share of its events).
    public var livePartition: String = ""

    package init(
        projection: String, streamID: String, buildID: Int64, position: Int64, eventType: String, error: String, action: Action,
        parkedAt: String, livePartition: String = ""
    ) {
        self.projection = projection
        self.streamID = streamID
        self.buildID = buildID
        self.position = position
        self.eventType = eventType
        self.error = error
        self.action = action
        self.parkedAt = parkedAt
        self.livePartition = livePartition
    }

    /// The scope of live partition `number` of `count`.
    public static func scope(partition number: Int, of count: Int) -> String { "\(number)/\(count)" }
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
                live_partition VARCHAR(16) NOT NULL DEFAULT '',
                PRIMARY KEY (projection, stream_id, live_partition)
            ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
            """)
        // Tables made before live partitions existed get the scope column.
        try await SchemaColumns.add(
            "live_partition", to: Self.table,
            as: "ADD COLUMN live_partition VARCHAR(16) NOT NULL DEFAULT '', DROP PRIMARY KEY, ADD PRIMARY KEY (projection, stream_id, live_partition)",
            on: connection)
    }

    /// With `scope`, only the streams parked in that live partition.
    public func list(projection: String? = nil, scope: String) async throws -> [ParkedStream] {
        try await list(projection: projection).filter { $0.livePartition == scope }
    }

    /// The streams of the projection that wait in one live partition only.
    func partitionScoped(projection: String) async throws -> [ParkedStream] {
        try await list(projection: projection).filter { !$0.livePartition.isEmpty }
    }

    /// When a build is split into live partitions, a stream parked in the whole projection
    /// waits in every partition; each releases its own share of the stream's events.
    package func scopeToPartitions(projection: String, count: Int) async throws {
        for number in 0..<count {
            try await connection.execute(
                """
                INSERT IGNORE INTO \(Self.table) (projection, stream_id, build_id, position, event_type, error, action, parked_at, live_partition)
                SELECT projection, stream_id, build_id, position, event_type, error, action, parked_at, ? FROM \(Self.table)
                WHERE projection = ? AND live_partition = ''
                """, [.string(ParkedStream.scope(partition: number, of: count)), .string(projection)])
        }
        try await connection.execute("DELETE FROM \(Self.table) WHERE projection = ? AND live_partition = ''", [.string(projection)])
    }

    public func list(projection: String? = nil) async throws -> [ParkedStream] {
        let result = try await connection.query(
            "SELECT projection, stream_id, build_id, position, event_type, error, action, parked_at, live_partition FROM \(Self.table)"
                + (projection == nil ? "" : " WHERE projection = ?") + " ORDER BY parked_at, position",
            projection.map { [.string($0)] } ?? [])
        return (0..<result.rowCount).map { row in
            ParkedStream(
                projection: result.string(row, 0) ?? "", streamID: result.string(row, 1) ?? "", buildID: result.int64(row, 2) ?? 0,
                position: result.int64(row, 3) ?? 0, eventType: result.string(row, 4) ?? "", error: result.string(row, 5) ?? "",
                action: result.string(row, 6).flatMap(ParkedStream.Action.init(rawValue:)) ?? .wait, parkedAt: result.string(row, 7) ?? "",
                livePartition: result.string(row, 8) ?? "")
        }
    }

    package func park(_ stream: ParkedStream) async throws {
        try await connection.execute(
            """
            INSERT INTO \(Self.table) (projection, stream_id, build_id, position, event_type, error, action, parked_at, live_partition)
            VALUES (?, ?, ?, ?, ?, ?, 'wait', UTC_TIMESTAMP(6), ?)
            ON DUPLICATE KEY UPDATE error = VALUES(error), action = 'wait'
            """,
            [.string(stream.projection), .string(stream.streamID), .int(stream.buildID), .int(stream.position), .string(stream.eventType),
             .string(String(stream.error.prefix(4_000))), .string(stream.livePartition)])
    }

    /// Asks the live worker to retry or skip a parked stream (in every live partition it waits
    /// in). Returns false when it is not parked.
    @discardableResult
    public func request(_ action: ParkedStream.Action, projection: String, streamID: String) async throws -> Bool {
        try await connection.execute(
            "UPDATE \(Self.table) SET action = ? WHERE projection = ? AND stream_id = ?",
            [.string(action.rawValue), .string(projection), .string(streamID)]) >= 1
    }

    package func remove(projection: String, streamID: String, scope: String) async throws {
        try await connection.execute(
            "DELETE FROM \(Self.table) WHERE projection = ? AND stream_id = ? AND live_partition = ?", [.string(projection), .string(streamID), .string(scope)])
    }

    package func setWaiting(projection: String, streamID: String, scope: String, error: String) async throws {
        try await connection.execute(
            "UPDATE \(Self.table) SET action = 'wait', error = ? WHERE projection = ? AND stream_id = ? AND live_partition = ?",
            [.string(String(error.prefix(4_000))), .string(projection), .string(streamID), .string(scope)])
    }
}
