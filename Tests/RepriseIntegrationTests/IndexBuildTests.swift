import Foundation
import RepriseEngine
import RepriseMySQL
import RepriseProjection
import Synchronization
import Testing

/// A new build's green tables are bulk-filled with their primary key only; the declared secondary
/// indexes are added after the first round, before catch-up, checks and swap, and exactly once
/// whatever interrupted the build.
@Suite("Secondary indexes built after the bulk phase (real servers)", .serialized)
struct IndexBuildTests {
    /// Secondary indexes of a table, by name, each with its columns in key order (PRIMARY left out).
    static func indexes(_ table: String, on connection: MySQLConnection) async throws -> [String: [String]] {
        let result = try await connection.query(
            "SELECT index_name, column_name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = ? AND index_name <> 'PRIMARY' ORDER BY index_name, seq_in_index",
            [.string(table)])
        var indexes: [String: [String]] = [:]
        for row in 0..<result.rowCount { indexes[result.string(row, 0) ?? "", default: []].append(result.string(row, 1) ?? "") }
        return indexes
    }

    /// What the projection files declare: `ix_N` for the N-th entry of `indexes:`.
    static func declared(_ table: TableDefinition) -> [String: [String]] {
        Dictionary(uniqueKeysWithValues: table.indexes.enumerated().map { ("ix_\($0.offset + 1)", $0.element) })
    }

    /// Secondary indexes of every green table (`<table>__<build>`) of the database.
    static func greenIndexes(on connection: MySQLConnection) async throws -> [String] {
        let result = try await connection.query(
            "SELECT DISTINCT CONCAT(table_name, '.', index_name) FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name LIKE '%\\_\\_%' AND index_name <> 'PRIMARY'")
        return (0..<result.rowCount).compactMap { result.string($0, 0) }
    }

    static func checkLiveIndexes(_ definitions: [ProjectionDefinition], _ environment: RebuildEnvironment) async throws {
        for definition in definitions {
            for table in definition.tables {
                let live = try await indexes(table.name, on: environment.mysql)
                try #require(live == declared(table), "\(table.name): \(live)")
            }
        }
    }

    /// The samples' tables: during the bulk chunks no green table has a secondary index; after
    /// the rebuild the live tables have exactly the declared ones, each added once.
    @Test func greenTablesAreBulkFilledWithoutSecondaryIndexesAndSwappedInWithThem() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 3_000, seed: 61)
            let samples = try RebuildEnvironment.samples()
            try #require(samples.contains { $0.tables.contains { !$0.indexes.isEmpty } })
            let observer = try await MySQLConnection.connect(url: environment.mysqlURL)
            let bulkChunks = Atomic<Int>(0), indexesBuilt = Atomic<Bool>(false)
            let seenDuringBulk = Mutex<[String]>([])
            let announced = Mutex<[String]>([])
            var hooks = RebuildHooks()
            hooks.beforeChunkCommit = { _ in
                guard !indexesBuilt.load(ordering: .relaxed) else { return }
                bulkChunks.add(1, ordering: .relaxed)
                let seen = try await Self.greenIndexes(on: observer)
                seenDuringBulk.withLock { $0 += seen }
            }
            hooks.afterRound = { round in
                // The whole first round is in the tables: still no secondary index.
                guard round == 0 else { return }
                let seen = try await Self.greenIndexes(on: observer)
                seenDuringBulk.withLock { $0 += seen }
            }
            hooks.beforeIndexBuild = { _ in indexesBuilt.store(true, ordering: .relaxed) }
            let results = try await environment.engine { $0.chunkSize = 400 }.rebuild(samples.map { .file($0) }, hooks: hooks) { progress in
                if case .buildingIndexes(let table, let indexes) = progress.phase { announced.withLock { $0.append("\(table): \(indexes)") } }
            }
            await observer.close()
            try #require(results.allSatisfy { $0.swapped })
            try #require(bulkChunks.load(ordering: .relaxed) > 1, "several chunks were committed during the bulk phase")
            try #require(seenDuringBulk.withLock { $0 }.isEmpty, "secondary indexes during the bulk phase: \(seenDuringBulk.withLock { $0 })")
            try await Self.checkLiveIndexes(samples, environment)
            // One announcement (and one ALTER) per table with indexes.
            let tablesWithIndexes = samples.flatMap(\.tables).filter { !$0.indexes.isEmpty }.count
            try #require(announced.withLock { $0.count } == tablesWithIndexes, "\(announced.withLock { $0 })")

            // A second rebuild: its own green tables start without them again; the retired build keeps its.
            seenDuringBulk.withLock { $0 = [] }
            let second = try await environment.engine().rebuild(samples.map { .file($0) })
            try #require(second.allSatisfy { $0.swapped })
            try await Self.checkLiveIndexes(samples, environment)
            for (result, definition) in zip(results, samples) {
                for table in definition.tables {
                    let retired = try await Self.indexes("\(table.name)__\(result.buildID)", on: environment.mysql)
                    try #require(retired == Self.declared(table), "retired \(table.name)__\(result.buildID): \(retired)")
                }
            }
            let golden = try await GoldenRows.tables(environment)
            for definition in samples { try #require(try await environment.rows(definition.name) == golden[definition.name] ?? []) }
        }
    }

    /// A build whose tables already have their indexes (created by an older version of Reprise,
    /// which declared them in CREATE TABLE) resumes without adding any.
    @Test func tablesThatAlreadyHaveTheirIndexesGetNoneAdded() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 1_500, seed: 62)
            let definition = try #require(try RebuildEnvironment.samples().first { $0.name == "order_summary" })
            struct Stop: Error {}
            var stopping = RebuildHooks()
            stopping.afterRound = { round in if round == 0 { throw Stop() } }
            await #expect(throws: (any Error).self) { _ = try await environment.engine().rebuild([.file(definition)], hooks: stopping) }
            let build = try #require(try await environment.mysql.query("SELECT build_id FROM reprise_builds WHERE state = 'building'").int64(0, 0))
            let green = "order_summary__\(build)"
            try #require(try await Self.indexes(green, on: environment.mysql).isEmpty)
            // What an older version created: the same indexes, declared with the table.
            try await environment.mysql.execute("ALTER TABLE \(green) ADD KEY ix_1 (customer_id), ADD KEY ix_2 (status, created_at)")

            let alters = Atomic<Int>(0)
            var hooks = RebuildHooks()
            hooks.beforeIndexBuild = { _ in alters.add(1, ordering: .relaxed) }
            let results = try await environment.engine().rebuild([.file(definition)], hooks: hooks)
            try #require(results[0].resumed && results[0].swapped)
            try #require(alters.load(ordering: .relaxed) == 0, "nothing was missing")
            try await Self.checkLiveIndexes([definition], environment)
            try #require(try await environment.rows("order_summary") == (try await GoldenRows.tables(environment))["order_summary"] ?? [])
        }
    }

    /// kill -9 of the real process after the last chunk of the bulk phase. One ALTER at a time:
    /// before the first (no table has its indexes) or before the second (one has). Two at once:
    /// as the second starts, while the first may still run (none or one table has them; an
    /// interrupted ALTER adds nothing). A plain rerun resumes the build and ends with exactly the
    /// declared indexes and the golden rows.
    @Test(arguments: [(alter: 0, at: 1), (alter: 1, at: 1), (alter: 1, at: 2)])
    func aBuildKilledBeforeItsIndexesResumesWithThem(alter: Int, at indexBuilds: Int) async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 63)
            let samples = try RebuildEnvironment.samples()
            let names = samples.map(\.name)
            func run(_ fault: String?) throws -> ProcessOutcome {
                var variables = environment.processVariables
                if let fault { variables["REPRISE_FAULT"] = fault }
                return try runReprise(
                    ["rebuild"] + names + ["--projections-dir", RebuildEnvironment.repositoryRoot() + "/projections",
                     "--store-schema", environment.storeSchema.schema, "--chunk-size", "300", "--index-builds", "\(indexBuilds)", "--quiet", "--json"],
                    environment: variables)
            }
            let crashed = try run("kill-before-indexes:\(alter)")
            try #require(crashed.killedBySIGKILL, "signal \(crashed.signal.map(String.init) ?? "none"): \(crashed.standardError)")
            FaultLedger.record(.injected, "kill -9 of a rebuild before its index build")
            // Every event of the first round is committed, and exactly `alter` tables have their indexes.
            let building = try await environment.mysql.query("SELECT build_id, projection, events_applied FROM reprise_builds WHERE state = 'building'")
            try #require(building.rowCount == samples.count)
            var withIndexes = 0
            for row in 0..<building.rowCount {
                let definition = try #require(samples.first { $0.name == building.string(row, 1) })
                try #require(building.int64(row, 2) == (try await environment.handledEventCount(definition)), "the bulk phase was complete")
                for table in definition.tables where !table.indexes.isEmpty {
                    let present = try await Self.indexes("\(table.name)__\(building.int64(row, 0) ?? 0)", on: environment.mysql)
                    if present == Self.declared(table) { withIndexes += 1 } else { try #require(present.isEmpty, "\(table.name): \(present)") }
                }
            }
            if indexBuilds == 1 { try #require(withIndexes == alter) } else { try #require(withIndexes <= alter, "\(withIndexes) tables") }

            let resumed = try run(nil)
            try #require(resumed.status == 0, "rerun failed: \(resumed.standardError)")
            try #require(try RunSummary(resumed.standardOutput).resumed)
            try await Self.checkLiveIndexes(samples, environment)
            let golden = try await GoldenRows.tables(environment)
            for name in names {
                let rows = try await environment.rows(name)
                try #require(rows == golden[name] ?? [], "\(name): \(rowDifference(rows, golden[name] ?? []))")
            }
            FaultLedger.record(.recovered, "kill -9 of a rebuild before its index build")
        }
    }

    /// Two ALTERs at once by default, each on a connection of its own: the hook before each of
    /// the first two waits until the other has started too (one after the other, the first
    /// would wait in vain and fail the rebuild).
    @Test func twoTablesGetTheirIndexesAtOnce() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 65)
            let samples = try RebuildEnvironment.samples()
            try #require(samples.flatMap(\.tables).filter { !$0.indexes.isEmpty }.count >= 2)
            let started = Atomic<Int>(0)
            var hooks = RebuildHooks()
            hooks.beforeIndexBuild = { alter in
                guard alter < 2 else { return }
                started.add(1, ordering: .relaxed)
                try await waitUntil("ALTER \(1 - alter) to start beside ALTER \(alter)") { started.load(ordering: .relaxed) == 2 }
            }
            let results = try await environment.engine().rebuild(samples.map { .file($0) }, hooks: hooks)
            try #require(results.allSatisfy { $0.swapped })
            try await Self.checkLiveIndexes(samples, environment)
            let golden = try await GoldenRows.tables(environment)
            for definition in samples { try #require(try await environment.rows(definition.name) == golden[definition.name] ?? []) }
        }
    }

    /// A partitioned rebuild adds the indexes once, after every partition is done.
    @Test func aPartitionedRebuildAddsTheIndexesOnceAfterItsPartitions() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 3_000, seed: 64)
            let samples = try RebuildEnvironment.samples().filter { PartitionedRebuildTests.projections.contains($0.name) }
            try #require(samples.count == 2)
            let observer = try await MySQLConnection.connect(url: environment.mysqlURL)
            let alters = Atomic<Int>(0), partitionChunks = Atomic<Int>(0)
            let seenInPartitions = Mutex<[String]>([])
            var hooks = RebuildHooks()
            hooks.beforeChunkCommit = { _ in
                // The projections are built in turn: the tables of a build with a partition not done have none.
                let unfinished = try await observer.query(
                    "SELECT DISTINCT build_id FROM reprise_build_partitions WHERE state <> 'done'")
                for row in 0..<unfinished.rowCount {
                    partitionChunks.add(1, ordering: .relaxed)
                    let suffix = "__\(unfinished.int64(row, 0) ?? 0)"
                    let seen = try await Self.greenIndexes(on: observer).filter { $0.components(separatedBy: ".")[0].hasSuffix(suffix) }
                    seenInPartitions.withLock { $0 += seen }
                }
            }
            hooks.beforeIndexBuild = { _ in alters.add(1, ordering: .relaxed) }
            let results = try await environment.engine { $0.chunkSize = 200 }.rebuildPartitioned(
                samples.map { .file($0) }, partitions: 3, worker: "w1", hooks: hooks)
            await observer.close()
            try #require(results.allSatisfy { $0.swapped && $0.partitionsApplied.count == 3 })
            // The partitions' figures are summed into the result (new rows go by bulk load).
            #expect(results.allSatisfy { $0.rowsLoaded > 0 && $0.rowsLoaded <= $0.rowsWritten }, "\(results.map { ($0.rowsLoaded, $0.rowsWritten) })")
            try #require(partitionChunks.load(ordering: .relaxed) > 3)
            try #require(seenInPartitions.withLock { $0 }.isEmpty, "\(seenInPartitions.withLock { $0 })")
            try #require(alters.load(ordering: .relaxed) == samples.flatMap(\.tables).filter { !$0.indexes.isEmpty }.count, "one ALTER per table, not per partition")
            try await Self.checkLiveIndexes(samples, environment)
            let golden = try await GoldenRows.tables(environment)
            for definition in samples { try #require(try await environment.rows(definition.name) == golden[definition.name] ?? []) }
        }
    }
}
