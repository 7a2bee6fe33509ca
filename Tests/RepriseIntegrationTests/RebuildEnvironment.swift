import Foundation
import RepriseDemo
import RepriseEngine
import RepriseEventStore
import RepriseMySQL
import RepriseProjection
import ReprisePostgres

#if canImport(Glibc)
import Glibc
#endif

/// An isolated world for one rebuild test: its own event store schema in PostgreSQL and its own
/// MySQL database, so tests run in parallel without seeing each other.
struct RebuildEnvironment {
    let storeSchema: EventStoreSchema
    let database: String
    let postgres: PostgresConnection
    let mysql: MySQLConnection
    let mysqlURL: String

    static func make() async throws -> RebuildEnvironment {
        let postgres = try await TestServers.postgres()
        let schema = try EventStoreSchema(schema: TestServers.uniqueName("rb"))
        try await EventStore(schema: schema).initialize(on: postgres)
        let admin = try await TestServers.mysql()
        let database = TestServers.uniqueName("rm")
        try await admin.execute("CREATE DATABASE \(database) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        await admin.close()
        let url = Self.mysqlURL(database: database)
        return RebuildEnvironment(
            storeSchema: schema, database: database, postgres: postgres, mysql: try await MySQLConnection.connect(url: url), mysqlURL: url)
    }

    static func mysqlURL(database: String) -> String {
        let base = TestServers.mysqlURL
        guard let slash = base.lastIndex(of: "/") else { return base }
        return String(base[...slash]) + database
    }

    var store: EventStore { EventStore(schema: storeSchema) }

    func engine(_ configure: (inout RebuildOptions) -> Void = { _ in }) -> RebuildEngine {
        var options = RebuildOptions()
        configure(&options)
        return RebuildEngine(postgresURL: TestServers.postgresURL, mysqlURL: mysqlURL, storeSchema: storeSchema, options: options)
    }

    func seed(events: Int, seed: UInt64) async throws {
        _ = try await DemoSeeder(store: store, batchSize: 1_000).seed(events: events, seed: seed, on: postgres)
    }

    /// Every row of a table, as text, sorted: a value to compare whole tables with.
    func rows(_ table: String) async throws -> [[String]] {
        try await Self.rows(table, on: mysql)
    }

    /// Every row of a table on `connection`, as text, sorted.
    static func rows(_ table: String, on connection: MySQLConnection) async throws -> [[String]] {
        let result = try await connection.query("SELECT * FROM \(MySQLIdentifier.quote(table))")
        return result.rows.map { $0.map { $0 ?? "NULL" } }.sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// Outbox rows not yet published.
    func unpublishedCount() async throws -> Int? {
        try await postgres.query("SELECT count(*) FROM \(storeSchema.qualifiedOutbox) WHERE published_at IS NULL").int(0, 0)
    }

    /// Events in the store of the types `definition` handles.
    func handledEventCount(_ definition: ProjectionDefinition) async throws -> Int64? {
        try await postgres.query(
            "SELECT count(*) FROM \(storeSchema.qualifiedEvents) WHERE event_type = ANY($1::text[])",
            [.text(PostgresArrayLiteral.text(definition.eventTypes.sorted()))]).int64(0, 0)
    }

    /// The URLs a `reprise` child process needs for this environment.
    var processVariables: [String: String] {
        ["REPRISE_POSTGRES_URL": TestServers.postgresURL, "REPRISE_MYSQL_URL": mysqlURL]
    }

    func tearDown() async {
        _ = try? await postgres.execute("DROP SCHEMA \(PostgresIdentifier.quote(storeSchema.schema)) CASCADE")
        _ = try? await mysql.execute("DROP DATABASE \(database)")
        await postgres.close()
        await mysql.close()
    }

    /// The sample projections shipped in `projections/`.
    static func samples() throws -> [ProjectionDefinition] {
        try ProjectionFileParser.loadDirectory(repositoryRoot() + "/projections")
    }

    static func repositoryRoot() -> String {
        // Tests/RepriseIntegrationTests/RebuildEnvironment.swift -> repository root
        var path = #filePath.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        path.removeLast(3)
        return path.joined(separator: "/")
    }

    /// The `reprise` executable built next to the test binary; `reprise-fault-injection` (the
    /// same command line with the REPRISE_FAULT crash points) when the child's environment sets REPRISE_FAULT.
    static func repriseBinary(environment: [String: String] = [:]) -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let executable = length > 0 ? String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        var parts = executable.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        // …/debug/RepriseIntegrationTestsPackageTests.xctest or …/debug/<runner>: the binary sits in debug/.
        while let last = parts.last, last != "debug" && last != "release" && !parts.isEmpty { parts.removeLast() }
        let faults = environment["REPRISE_FAULT"] ?? ProcessInfo.processInfo.environment["REPRISE_FAULT"]
        return parts.joined(separator: "/") + (faults == nil ? "/reprise" : "/reprise-fault-injection")
    }
}
