import RepriseEventSource
import RepriseEventStore
import RepriseMySQL
import ReprisePostgres
import RepriseProjection

/// What `reprise status` shows for one projection.
public struct ProjectionStatus: Sendable {
    public struct Build: Sendable {
        public var buildID: Int64
        public var version: Int
        public var state: String
        public var eventsApplied: Int64
        public var rounds: Int
        public var startedAt: String
        public var updatedAt: String
        public var lastError: String?
        /// A partitioned rebuild's partitions: state, owner, progress, seconds since the owner's last chunk.
        public var partitions: [BuildPartition] = []
    }

    public var projection: String
    public var active: Build?
    /// A rebuild or migration in progress (state building).
    public var building: [Build]
    /// Retired builds whose tables are kept (rollback targets).
    public var retired: [Build]
    /// Events committed in the store and not yet applied to the active build, and the age of the oldest.
    public var lagEvents: Int64?
    public var lagSeconds: Double?
    public var parkedStreams: Int
    /// The active build's live partitions (`reprise live --partitions N`), with each one's lag
    /// when the projection's partition key is known.
    public var livePartitions: [(partition: LivePartition, lagEvents: Int64?)] = []
}

/// Reads the registry (`reprise_builds`, `reprise_parked`) and the store's head to describe projections.
public enum ProjectionStatusReader {
    public static func read(mysql: MySQLConnection, postgres: PostgresConnection, storeSchema: EventStoreSchema) async throws -> [ProjectionStatus] {
        try await read(mysql: mysql, postgres: postgres, source: .reprise(storeSchema))
    }

    /// `definitions` (by projection name) give the partition keys for per-partition lag.
    public static func read(
        mysql: MySQLConnection, postgres: PostgresConnection, source: EventSource, definitions: [String: ProjectionDefinition] = [:]
    ) async throws -> [ProjectionStatus] {
        let store = ReadModelStore(connection: mysql)
        try await store.ensureRegistry()
        let parked = ParkedStreamStore(connection: mysql)
        try await parked.ensureTable()
        // A stream parked in the whole projection before a split waits in every live partition: count it once.
        let parkedCounts = Dictionary(grouping: try await parked.list(), by: \.projection).mapValues { Set($0.map(\.streamID)).count }
        let rows = try await mysql.query(
            """
            SELECT projection, build_id, version, state, events_applied, rounds, DATE_FORMAT(started_at, '%Y-%m-%dT%H:%i:%sZ'),
                   DATE_FORMAT(updated_at, '%Y-%m-%dT%H:%i:%sZ'), last_error, base_snapshot
            FROM \(BuildRegistry.table) WHERE state IN ('active', 'building', 'retired') ORDER BY projection, build_id
            """)
        var statuses: [String: ProjectionStatus] = [:]
        var activeSnapshots: [String: String] = [:]
        var activeBuilds: [String: Int64] = [:]
        for row in 0..<rows.rowCount {
            let projection = rows.string(row, 0) ?? ""
            let build = ProjectionStatus.Build(
                buildID: rows.int64(row, 1) ?? 0, version: rows.int(row, 2) ?? 0, state: rows.string(row, 3) ?? "",
                eventsApplied: rows.int64(row, 4) ?? 0, rounds: rows.int(row, 5) ?? 0, startedAt: rows.string(row, 6) ?? "",
                updatedAt: rows.string(row, 7) ?? "", lastError: rows.string(row, 8))
            var status = statuses[projection] ?? ProjectionStatus(projection: projection, active: nil, building: [], retired: [], parkedStreams: parkedCounts[projection] ?? 0)
            switch build.state {
            case "active":
                status.active = build
                activeSnapshots[projection] = rows.string(row, 9)
                activeBuilds[projection] = build.buildID
            case "building": status.building.append(build)
            default: status.retired.append(build)
            }
            statuses[projection] = status
        }
        for (projection, status) in statuses {
            for (index, build) in status.building.enumerated() {
                statuses[projection]?.building[index].partitions = try await store.ledger.partitions(of: build.buildID)
            }
        }
        let reader = activeSnapshots.isEmpty ? nil : EventStoreReader(connection: postgres, source: try await RebuildEngine.resolve(source, on: postgres))
        for (projection, snapshot) in activeSnapshots {
            guard let reader else { break }
            if let buildID = activeBuilds[projection], case let partitions = try await store.ledger.livePartitions(of: buildID), !partitions.isEmpty {
                // Split: the build's own checkpoint is the split point; each partition has its own.
                let keys = definitions[projection].map { RebuildEngine.partitionKeys($0, source: reader.source.source) }
                var total: Int64? = keys == nil ? nil : 0
                var oldest: Double? = nil
                for partition in partitions {
                    var lag: (events: Int64, seconds: Double)?
                    if let keys, let base = partition.baseSnapshot {
                        lag = try? await reader.lag(since: base, partition: .live(keys: keys, number: partition.number, count: partition.count))
                    }
                    statuses[projection]?.livePartitions.append((partition, lag?.events))
                    total = lag.flatMap { lag in total.map { $0 + lag.events } }
                    if let seconds = lag?.seconds { oldest = max(oldest ?? 0, seconds) }
                }
                statuses[projection]?.lagEvents = total
                statuses[projection]?.lagSeconds = total == nil ? nil : oldest
                continue
            }
            // A build checkpointed under another source mapping has no lag to report here.
            guard let lag = try? await reader.lag(since: snapshot) else { continue }
            statuses[projection]?.lagEvents = lag.events
            statuses[projection]?.lagSeconds = lag.seconds
        }
        return statuses.values.sorted { $0.projection < $1.projection }
    }
}
