import RepriseMySQL

/// The MySQL side of the engine, on one connection: the registry of builds, the partition
/// ledgers, the checkpoints and the read-model tables, each its own type. The engine is the
/// only caller; it decides transactions (`connection.withTransaction`).
///
/// ```swift
/// let store = ReadModelStore(connection: mysql)
/// try await store.ensureRegistry()
/// let building = try await store.registry.builds(of: "orders", states: [.building])
/// ```
package struct ReadModelStore: Sendable {
    package let connection: MySQLConnection

    package var registry: BuildRegistry { BuildRegistry(connection: connection) }
    package var ledger: PartitionLedger { PartitionLedger(connection: connection) }
    package var checkpoints: Checkpoints { Checkpoints(connection: connection) }
    package var tables: ReadModelTables { ReadModelTables(connection: connection) }

    /// Creates Reprise's own tables: the registry and the partition ledgers (idempotent).
    package func ensureRegistry() async throws {
        try await registry.ensureTable()
        try await ledger.ensureTables()
        try await ensureRepairs()
    }
}
