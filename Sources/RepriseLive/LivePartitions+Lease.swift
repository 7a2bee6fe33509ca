import RepriseEngine
import RepriseMySQL
import ReprisePostgres

/// The consumer-group side of live partitions (`reprise live --partitions N`): how many
/// partitions a consumer takes, and the fencing of owners that went silent. The engine keeps the
/// rest of `LivePartitions` (split, merge, apply locks), which a rebuild's swap needs too.
extension LivePartitions {
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
                   MAX(p.owner), GROUP_CONCAT(DISTINCT CONCAT_WS(' ', p.owner_connection, p.owner_host))
            FROM \(PartitionLedger.liveTable) p JOIN \(BuildRegistry.table) b USING (build_id)
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
            for session in (rows.string(row, 4) ?? "").split(separator: ",") {
                // "id host:port" (the host is missing in rows written before it was recorded).
                let parts = session.split(separator: " ", maxSplits: 1).map(String.init)
                guard let id = parts.first.flatMap({ Int64($0) }) else { continue }
                await PartitionLedger.OwnerSession(id: id, host: parts.count > 1 ? parts[1] : nil).kill(on: mysql)
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

    /// How many partitions the member at `rank` (0-based, of `members`) takes: the first
    /// `partitions % members` members take one more than the rest, so the shares add up to
    /// `partitions` (4 partitions, 3 members: 2, 1, 1) and nobody idles while another holds a
    /// surplus. At most `maxPartitions`.
    public static func fairShare(partitions: Int, members: Int, rank: Int, maxPartitions: Int?) -> Int {
        let members = max(members, 1)
        let share = partitions / members + (min(max(rank, 0), members - 1) < partitions % members ? 1 : 0)
        return min(share, maxPartitions ?? share)
    }
}
