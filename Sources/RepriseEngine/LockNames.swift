import RepriseEventStore
import ReprisePostgres
import RepriseSupport

/// Every lock Reprise takes, named in one place. Two kinds:
/// - MySQL named locks (`GET_LOCK`): server-wide, so the name includes the read-model database;
///   at most 64 characters (a longer name keeps a readable head and a hash of the rest).
/// - PostgreSQL advisory locks: a 64-bit key hashed from the text (`PostgresAdvisoryLockKey`);
///   the texts include the store schema or read-model database for the same reason.
///
/// The texts are part of how processes of different versions coordinate: change one only with
/// every process of a deployment.
public enum LockNames {
    // MARK: MySQL named locks

    /// Held by a rebuild (or migration, rollback) of `projection` for its whole run.
    public static func rebuild(_ projection: String, database: String) -> String {
        mysqlName("rebuild", projection, database)
    }

    /// Serializes writers of a projection's live tables: the swap, an unpartitioned live worker's
    /// catch-up, the split into live partitions.
    public static func projection(_ projection: String, database: String) -> String {
        mysqlName("projection", projection, database)
    }

    /// Held while a partitioned rebuild is set up (the manifest written once).
    public static func partitionSetup(_ projection: String, database: String) -> String {
        mysqlName("partitions", projection, database)
    }

    /// Held by live partition `number`'s consumer for one catch-up; a swap takes all of them.
    public static func liveApply(_ projection: String, database: String, partition number: Int) -> String {
        mysqlName("live", "\(projection).p\(number)", database)
    }

    static func mysqlName(_ kind: String, _ projection: String, _ database: String) -> String {
        let name = "reprise.\(kind).\(database).\(projection)"
        guard name.utf8.count > 64 else { return name }
        return String(name.prefix(47)) + "." + String(FNV1a.hash(name), radix: 16)
    }

    // MARK: PostgreSQL advisory locks

    /// Held by the consumer that owns live partition `number` of `count` of `projection`.
    public static func liveOwner(_ projection: String, database: String, partition number: Int, of count: Int) -> PostgresAdvisoryLockKey {
        PostgresAdvisoryLockKey("reprise.live.\(database).\(projection).partition-\(number)-of-\(count)")
    }

    /// Held shared by every member of a consumer group of `partitions` on `queue` (counts members).
    public static func liveMembers(queue: String, database: String, partitions: Int) -> PostgresAdvisoryLockKey {
        PostgresAdvisoryLockKey("reprise.live.\(database).\(queue).members-of-\(partitions)")
    }

    /// Held by the worker filling partition `number` of partitioned rebuild `buildID`.
    public static func rebuildPartition(_ projection: String, database: String, build buildID: Int64, partition number: Int) -> PostgresAdvisoryLockKey {
        PostgresAdvisoryLockKey("reprise.rebuild.\(database).\(projection).\(buildID).partition-\(number)")
    }

    /// Held by the one worker that finishes partitioned rebuild `buildID` (merge, catch-up, swap).
    public static func rebuildFinish(_ projection: String, database: String, build buildID: Int64) -> PostgresAdvisoryLockKey {
        PostgresAdvisoryLockKey("reprise.rebuild.\(database).\(projection).\(buildID).finish")
    }

    /// The one relay of an outbox; with `shares` > 1, the relay of one share of it.
    public static func relay(_ schema: EventStoreSchema, share: Int? = nil, of shares: Int = 1) -> PostgresAdvisoryLockKey {
        relay(outbox: "\(schema.schema).\(schema.outboxTable)", share: share, of: shares)
    }

    /// The same for any outbox table, named `schema.table` (a mapped outbox: `relay --outbox`).
    public static func relay(outbox: String, share: Int? = nil, of shares: Int = 1) -> PostgresAdvisoryLockKey {
        let base = "reprise.relay.\(outbox)"
        guard let share, shares > 1 else { return PostgresAdvisoryLockKey(base) }
        return PostgresAdvisoryLockKey("\(base).share-\(share)-of-\(shares)")
    }

    /// Taken briefly by a starting relay of `outbox` while it checks the running relays' shares
    /// and announces itself.
    public static func relayJoin(outbox: String) -> PostgresAdvisoryLockKey {
        PostgresAdvisoryLockKey("reprise.relay.\(outbox).join")
    }

    /// Held by one run of job `name` (`reprise run`).
    public static func job(_ name: String) -> PostgresAdvisoryLockKey {
        PostgresAdvisoryLockKey("reprise.job.\(name)")
    }
}
