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
}

extension PostgresConnection {
    /// Takes a session-level advisory lock if free; returns false when another session holds it.
    public func tryAdvisoryLock(_ key: PostgresAdvisoryLockKey) throws(PostgresError) -> Bool {
        try query("SELECT pg_try_advisory_lock($1)", [.int(key.value)]).bool(0, 0) ?? false
    }

    /// Waits for a session-level advisory lock (blocks this connection only).
    public func advisoryLock(_ key: PostgresAdvisoryLockKey) throws(PostgresError) {
        try execute("SELECT pg_advisory_lock($1)", [.int(key.value)])
    }

    /// Releases a session-level advisory lock; returns false if this session did not hold it.
    @discardableResult
    public func advisoryUnlock(_ key: PostgresAdvisoryLockKey) throws(PostgresError) -> Bool {
        try query("SELECT pg_advisory_unlock($1)", [.int(key.value)]).bool(0, 0) ?? false
    }
}
