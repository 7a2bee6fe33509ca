import RepriseSupport

/// A key for PostgreSQL advisory locks, derived from a name so that every process that
/// names the same resource ("rebuild:order_summary") agrees on the key.
public struct PostgresAdvisoryLockKey: Hashable, Sendable, CustomStringConvertible {
    public let name: String
    public let value: Int64

    public init(_ name: String) {
        self.name = name
        value = Int64(bitPattern: FNV1a.hash(name))
    }

    public var description: String { "\(name) (\(value))" }

    /// How `pg_locks` shows the key: `classid` holds its high 32 bits, `objid` its low 32 bits.
    public var classID: Int64 { Int64(UInt32(truncatingIfNeeded: value >> 32)) }
    public var objectID: Int64 { Int64(UInt32(truncatingIfNeeded: value)) }
}

extension PostgresConnection {
    /// Takes a session-level advisory lock if free; returns false when another session holds it.
    public func tryAdvisoryLock(_ key: PostgresAdvisoryLockKey) async throws(PostgresError) -> Bool {
        try await query("SELECT pg_try_advisory_lock($1)", [.int(key.value)]).bool(0, 0) ?? false
    }

    /// Waits for a session-level advisory lock (blocks this connection only; cancelling the
    /// task ends the wait). Prefer `withAdvisoryLock`, which releases what it took.
    public func advisoryLock(_ key: PostgresAdvisoryLockKey) async throws(PostgresError) {
        try await execute("SELECT pg_advisory_lock($1)", [.int(key.value)])
    }

    /// Takes a session-level advisory lock in shared mode (many sessions may hold it at once).
    public func advisoryLockShared(_ key: PostgresAdvisoryLockKey) async throws(PostgresError) {
        try await execute("SELECT pg_advisory_lock_shared($1)", [.int(key.value)])
    }

    @discardableResult
    public func advisoryUnlockShared(_ key: PostgresAdvisoryLockKey) throws(PostgresError) -> Bool {
        try run("SELECT pg_advisory_unlock_shared($1)", [.int(key.value)]).bool(0, 0) ?? false
    }

    /// How many sessions hold `key` in shared (or exclusive) mode: counting a group's members.
    public func advisoryLockHolders(_ key: PostgresAdvisoryLockKey, shared: Bool) async throws(PostgresError) -> Int {
        try await query("SELECT count(*) FROM pg_locks WHERE \(Self.holders) AND mode = $3", [.int(key.classID), .int(key.objectID), .text(shared ? "ShareLock" : "ExclusiveLock")])
            .int(0, 0) ?? 0
    }

    /// This session's place among the sessions holding `key` (by backend pid), and how many hold
    /// it: members of a group agree on who is first without talking to each other.
    public func advisoryLockHolderRank(_ key: PostgresAdvisoryLockKey, shared: Bool) async throws(PostgresError) -> (rank: Int, count: Int) {
        let result = try await query(
            "SELECT count(*) FILTER (WHERE pid < pg_backend_pid()), count(*) FROM pg_locks WHERE \(Self.holders) AND mode = $3",
            [.int(key.classID), .int(key.objectID), .text(shared ? "ShareLock" : "ExclusiveLock")])
        return (result.int(0, 0) ?? 0, result.int(0, 1) ?? 0)
    }

    /// Ends the sessions holding an advisory lock (a frozen owner whose lease expired); returns
    /// how many. Needs the right to signal them (the same role, or `pg_signal_backend`).
    @discardableResult
    public func terminateAdvisoryLockHolders(_ key: PostgresAdvisoryLockKey) async throws(PostgresError) -> Int {
        try await query("SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE \(Self.holders) AND pid <> pg_backend_pid()",
                  [.int(key.classID), .int(key.objectID)]).int(0, 0) ?? 0
    }

    /// The `pg_locks` rows of a bigint advisory key ($1 = classid, its high half; $2 = objid,
    /// its low half) granted in this database.
    private static let holders = """
        locktype = 'advisory' AND granted AND objsubid = 1 AND classid = $1::bigint::oid AND objid = $2::bigint::oid
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """

    /// Releases a session-level advisory lock; returns false if this session did not hold it.
    /// Runs in a cancelled task too (cleanup).
    @discardableResult
    public func advisoryUnlock(_ key: PostgresAdvisoryLockKey) throws(PostgresError) -> Bool {
        try run("SELECT pg_advisory_unlock($1)", [.int(key.value)]).bool(0, 0) ?? false
    }

    /// Runs `body` holding the session-level advisory lock `key`, waiting for it (a cancelled
    /// task stops waiting). The lock is released when `body` returns or throws, before this
    /// returns; a failing release is thrown when `body` succeeded (when `body` threw, its error
    /// wins: the release failed because the session broke, and the lock went with it).
    public func withAdvisoryLock<Result>(
        _ key: PostgresAdvisoryLockKey, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> sending Result
    ) async throws -> sending Result {
        try await advisoryLock(key)
        return try await withCleanup(body, cleanup: { try await self.advisoryUnlock(key) })
    }
}
