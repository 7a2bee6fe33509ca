import RepriseEventSource
import RepriseMySQL
import ReprisePostgres

/// Live partitions: how several `reprise live --partitions N` consumers share an active build.
///
/// Each live partition has its own round (`reprise_live_partitions`), advanced in the same MySQL
/// transactions as its rows, so partitions never wait for each other. The build's own checkpoint
/// stays at the split until the partitions are *merged*: every partition is caught up to one
/// snapshot, which becomes the build's base, in one transaction. Whoever needs a single
/// checkpoint merges first: an unpartitioned live worker (only when no partitioned consumer
/// owns a partition), a consumer group of another size, and a rollback to a retired build.
///
/// Locks:
/// - *owner* (PostgreSQL advisory, held by a consumer for as long as it owns the partition):
///   one consumer per partition; a dead consumer's session takes its locks along.
/// - *apply* (MySQL `GET_LOCK`, held for one catch-up): a swap or rollback takes every apply
///   lock of the active build, so no partition writes the live tables while they are renamed.
public enum LivePartitions {
    public static func ownerLockKey(projection: String, database: String, number: Int, count: Int) -> PostgresAdvisoryLockKey {
        PostgresAdvisoryLockKey("reprise.live.\(database).\(projection).partition-\(number)-of-\(count)")
    }

    /// A live partition whose owner is alive but silent: nothing committed or looked at for
    /// longer than the lease, in every projection of the group.
    public struct SilentOwner: Sendable {
        public var partition: Int
        public var owner: String
        public var silentSeconds: Double
    }

    /// Fences off the owners of live partitions (of `count`, for `projections`) silent for more
    /// than `leaseSeconds`: their PostgreSQL sessions holding the owner locks end (so every
    /// partition of a frozen process becomes claimable) and their MySQL connections are killed
    /// (an open chunk rolls back; a late commit fails the checkpoint's compare-and-set).
    /// Partitions in `skip` (this process's own) are not looked at.
    public static func expireSilentOwners(
        projections: [String], count: Int, skip: Set<Int>, leaseSeconds: Int, database: String,
        mysql: MySQLConnection, postgres: PostgresConnection
    ) async throws -> [SilentOwner] {
        let placeholders = projections.map { _ in "?" }.joined(separator: ", ")
        let rows = try await mysql.query(
            """
            SELECT p.partition_no, MIN(TIMESTAMPDIFF(MICROSECOND, p.heartbeat_at, UTC_TIMESTAMP(6)) / 1e6), COUNT(*),
                   MAX(p.owner), GROUP_CONCAT(DISTINCT p.owner_connection)
            FROM \(ReadModelStore.livePartitionsTable) p JOIN \(ReadModelStore.registryTable) b USING (build_id)
            WHERE b.state = 'active' AND b.projection IN (\(placeholders)) AND p.partitions = ? AND p.heartbeat_at IS NOT NULL
            GROUP BY p.partition_no
            """, projections.map { .string($0) } + [.int(Int64(count))])
        var expired: [SilentOwner] = []
        for row in 0..<rows.rowCount {
            guard let number = rows.int(row, 0), !skip.contains(number), rows.int(row, 2) == projections.count,
                let silent = rows.string(row, 1).flatMap(Double.init), silent > Double(leaseSeconds)
            else { continue }
            var terminated = 0
            for projection in projections {
                terminated += try await postgres.terminateAdvisoryLockHolders(
                    ownerLockKey(projection: projection, database: database, number: number, count: count))
            }
            // Killed even when no session held the owner locks any more (fencing another partition
            // of the same frozen process ended it): its chunk connections may still hold this
            // partition's apply lock. A live owner always holds its locks, so none is hit.
            for connection in (rows.string(row, 4) ?? "").split(separator: ",").compactMap({ Int64($0) }) {
                // Gone already, or reused by nobody: MariaDB connection ids only grow.
                _ = try? await mysql.execute("KILL CONNECTION \(connection)")
            }
            if terminated > 0 { expired.append(SilentOwner(partition: number, owner: rows.string(row, 3) ?? "?", silentSeconds: silent)) }
        }
        return expired
    }

    /// How many partitions a consumer takes when `members` consumers share `partitions`:
    /// ceil(partitions / members), at most `maxPartitions`.
    public static func fairShare(partitions: Int, members: Int, maxPartitions: Int?) -> Int {
        let share = (partitions + max(members, 1) - 1) / max(members, 1)
        return min(share, maxPartitions ?? share)
    }

    public static func applyLockName(projection: String, database: String, number: Int) -> String {
        RebuildEngine.lockName("live", "\(projection).p\(number)", database)
    }

    /// Takes the apply locks of every live partition of `build` (none when it is not split).
    /// Returns the names taken; the caller releases them.
    static func takeApplyLocks(of build: BuildRecord, store: ReadModelStore, locks: MySQLConnection, database: String, timeoutSeconds: Int) async throws -> [String] {
        var taken: [String] = []
        for partition in try await store.livePartitions(of: build.buildID) {
            let name = applyLockName(projection: build.projection, database: database, number: partition.number)
            guard try await locks.getLock(name, timeoutSeconds: timeoutSeconds) else {
                for held in taken { _ = try? await locks.releaseLock(held) }
                throw EngineError(.locked, projection: build.projection, message: "could not take \(name) (live partition \(partition.number)) within \(timeoutSeconds)s")
            }
            taken.append(name)
        }
        return taken
    }

    /// The record a live partition's consumer works on: the build, with the partition's round.
    package static func record(_ build: BuildRecord, partition: LivePartition) -> BuildRecord {
        var record = build
        record.livePartition = partition
        record.baseSnapshot = partition.baseSnapshot
        record.targetSnapshot = partition.targetSnapshot
        record.roundPosition = partition.roundPosition
        record.partition = nil
        return record
    }

    /// Merges the live partitions of `build` back into one checkpoint (see the type's notes).
    /// With `checkOwners`, refuses while a consumer owns any partition. Returns the merged build
    /// record, or `build` unchanged when it was not split.
    package static func merge(
        _ build: BuildRecord, runnable: RunnableProjection, checkOwners: Bool, writesLiveTables: Bool, parkedStreams: Set<String>,
        store: ReadModelStore, reader: EventStoreReader, snapshots: EventStoreReader, database: String,
        chunkSize: Int, fetchSize: Int, cacheLimit: Int
    ) async throws -> BuildRecord {
        let partitions = try await store.livePartitions(of: build.buildID)
        guard let count = partitions.first?.count else { return build }
        // A stream parked in one partition has had the other partitions' share of its events
        // applied: after a merge no single position would say which of its events still wait.
        if let waiting = try await ParkedStreamStore(connection: store.connection).partitionScoped(projection: build.projection).first {
            throw EngineError(
                .invalidRequest, projection: build.projection,
                message: "stream \(waiting.streamID) is parked in live partition \(waiting.livePartition) of \(build.projection): release it first (`reprise parked retry|skip \(build.projection) \(waiting.streamID)` while the partitioned consumers run), then merge")
        }
        var owned: [PostgresAdvisoryLockKey] = []
        defer {
            let control = snapshots.connection, keys = owned
            Task { for key in keys { _ = try? await control.advisoryUnlock(key) } }
        }
        if checkOwners {
            for partition in partitions {
                let key = ownerLockKey(projection: build.projection, database: database, number: partition.number, count: count)
                guard try await snapshots.connection.tryAdvisoryLock(key) else {
                    throw EngineError(
                        .locked, projection: build.projection,
                        message: "build \(build.buildID) is split into \(count) live partitions and `reprise live --partitions \(count)` consumers own them; stop them first, or run the live worker with --partitions \(count)")
                }
                owned.append(key)
            }
        }
        let snapshot = try await snapshots.currentSnapshot()
        let keys = RebuildEngine.partitionKeys(runnable.definition, source: reader.source.source)
        let applier = ChunkApplier(store: store, hooks: RebuildHooks())
        let eventTypes = Array(runnable.definition.eventTypes).sorted()
        var chunkNumber = 0
        for partition in partitions {
            let part = ActiveBuild(record: record(build, partition: partition), runnable: runnable, fresh: false, cacheLimit: cacheLimit)
            part.writesLiveTables = writesLiveTables
            part.parkedStreams = parkedStreams
            part.partitionSpec = .live(keys: keys, number: partition.number, count: count)
            let decoders = ChunkApplier.decoders(for: [part])
            // A round not begun reads straight up to the common snapshot; one in progress is
            // finished first, then one more round reaches it.
            while part.record.baseSnapshot != snapshot || part.record.targetSnapshot != snapshot {
                if part.record.roundPosition == 0, part.record.targetSnapshot != snapshot {
                    try await store.retarget(part.record, snapshot: snapshot)
                    part.record.targetSnapshot = snapshot
                }
                _ = try await applier.readRound(
                    [part], reader: reader, eventTypes: eventTypes, decoders: decoders, fetchSize: fetchSize, chunkSize: chunkSize,
                    chunkNumber: &chunkNumber)
                try await applier.closeRound([part], nextSnapshot: snapshot)
            }
        }
        try await store.mergeLive(build, snapshot: snapshot)
        guard let merged = try await store.build(build.buildID) else {
            throw EngineError(.inconsistentState, projection: build.projection, message: "build \(build.buildID) disappeared while merging its live partitions")
        }
        return merged
    }
}
