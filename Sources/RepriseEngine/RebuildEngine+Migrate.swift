import RepriseMySQL

/// Why a migration was refused before any work: the projection has no active version to migrate
/// from, or the definition does not raise the version.
public struct MigrationRefused: Error, Sendable, CustomStringConvertible {
    public var projection: String
    public var description: String
}

/// A finished migration: the version and build that were active before, and the rebuild that
/// replaced them.
public struct MigrationResult: Sendable {
    public var fromVersion: Int
    public var fromBuildID: Int64
    public var rebuild: RebuildResult
}

extension RebuildEngine {
    /// A projection schema migration (v1 -> v2): the definition must raise the version of the
    /// active build; the new version is then built beside it from the event store, caught up,
    /// checked and swapped in like any rebuild, while the live worker keeps the active version
    /// current and follows the swap. The previous build stays for `rollback` as retention allows.
    public func migrate(
        _ runnable: RunnableProjection,
        hooks: RebuildHooks = RebuildHooks(),
        progress: @escaping @Sendable (RebuildProgress) -> Void = { _ in }
    ) async throws -> MigrationResult {
        let definition = runnable.definition
        let connection = try await MySQLConnection.connect(url: mysqlURL)
        let active: BuildRecord?
        do {
            let store = ReadModelStore(connection: connection)
            try await store.ensureRegistry()
            active = try await store.builds(of: definition.name, states: [.active]).last
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
        guard let active else {
            throw MigrationRefused(
                projection: definition.name,
                description: "\(definition.name) has no active version yet: use `reprise rebuild \(definition.name)`")
        }
        guard definition.version > active.version else {
            throw MigrationRefused(
                projection: definition.name,
                description: "the file says version \(definition.version) and version \(active.version) is active: raise `version` in the file to migrate, or use `reprise rebuild` to rebuild the same version")
        }
        let results = try await rebuild([runnable], hooks: hooks, progress: progress)
        return MigrationResult(fromVersion: active.version, fromBuildID: active.buildID, rebuild: results[0])
    }
}
