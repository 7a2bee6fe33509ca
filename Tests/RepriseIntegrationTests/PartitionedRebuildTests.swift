import Foundation
import RepriseEngine
import RepriseMySQL
import RepriseProjection
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Partitioned rebuilds: several `reprise rebuild --partitions N` processes share one build.
@Suite("Partitions: rebuild workers sharing a build (real servers)", .serialized)
struct PartitionedRebuildTests {
    /// A projections folder with the two samples that declare a partition key.
    static func folder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.uniqueName("partitioned")).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for name in projections {
            try FileManager.default.copyItem(atPath: RebuildEnvironment.repositoryRoot() + "/projections/\(name).yml", toPath: folder + "/\(name).yml")
        }
        return folder
    }

    static func arguments(_ environment: RebuildEnvironment, folder: String, worker: String) -> [String] {
        ["rebuild"] + projections + ["--partitions", "4", "--worker", worker, "--projections-dir", folder,
         "--store-schema", environment.storeSchema.schema, "--chunk-size", "100", "--fetch-size", "100", "--quiet"]
    }

    /// The same projections rebuilt by one ordinary process into a database of their own.
    static func reference(_ environment: RebuildEnvironment, folder: String) async throws -> [String: [[String]]] {
        let admin = try await TestServers.mysql()
        let database = environment.database + "_ref"
        try await admin.execute("CREATE DATABASE \(database) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        let url = RebuildEnvironment.mysqlURL(database: database)
        let definitions = try projections.map { try ProjectionFileParser.load(path: folder + "/\($0).yml") }
        _ = try await RebuildEngine(postgresURL: TestServers.postgresURL, mysqlURL: url, storeSchema: environment.storeSchema).rebuild(definitions.map { .file($0) })
        let connection = try await MySQLConnection.connect(url: url)
        var tables: [String: [[String]]] = [:]
        for table in projections {
            tables[table] = try await RebuildEnvironment.rows(table, on: connection)
        }
        await connection.close()
        try await admin.execute("DROP DATABASE \(database)")
        await admin.close()
        return tables
    }

    /// The two samples that declare a partition key.
    static let projections = ["order_summary", "customer_stats"]

    /// Every row of both samples' live tables.
    static func tables(_ environment: RebuildEnvironment) async throws -> [String: [[String]]] {
        var tables: [String: [[String]]] = [:]
        for table in projections { tables[table] = try await environment.rows(table) }
        return tables
    }

    /// The tables equal one ordinary rebuild's, and the manifest adds up (see `checkManifest`).
    static func checkAgainstSingleRebuild(_ environment: RebuildEnvironment, folder: String) async throws {
        #expect(try await tables(environment) == (try await reference(environment, folder: folder)))
        try await checkManifest(environment)
    }

    /// Every partition done, and together they applied each handled event once.
    static func checkManifest(_ environment: RebuildEnvironment) async throws {
        let partitions = try await environment.mysql.query(
            "SELECT b.projection, COUNT(*), SUM(p.state = 'done'), SUM(p.events_applied) FROM reprise_build_partitions p JOIN reprise_builds b USING (build_id) WHERE b.state = 'active' GROUP BY b.projection ORDER BY b.projection")
        #expect(partitions.rowCount == 2)
        for row in 0..<partitions.rowCount {
            let projection = partitions.string(row, 0) ?? ""
            #expect(partitions.int(row, 1) == 4 && partitions.int(row, 2) == 4, "\(projection): every partition done")
            let definition = try ProjectionFileParser.load(path: RebuildEnvironment.repositoryRoot() + "/projections/\(projection).yml")
            let handled = try await environment.handledEventCount(definition)
            #expect(partitions.int64(row, 3) == handled, "\(projection): each handled event applied once over all partitions")
        }
    }

    @Test func fourWorkersBuildTheTablesOfASingleOne() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 4_000, seed: 200)
        let folder = try Self.folder()
        // The first worker starts the build and pauses after its first chunk, so the three others
        // (which only join: `--join`) certainly take partitions of it; then it goes on.
        var first = environment.processVariables
        first["REPRISE_FAULT"] = "stop-after-commit:1"
        let starter = try BackgroundProcess(Self.arguments(environment, folder: folder, worker: "w1"), environment: first)
        try await ServerFaultTests.waitForPause(starter)
        let joiners = try (2...4).map {
            try BackgroundProcess(Self.arguments(environment, folder: folder, worker: "w\($0)") + ["--join", "30"], environment: environment.processVariables)
        }
        try await waitUntil("a joining worker to take a partition") {
            try await environment.mysql.query("SELECT COUNT(DISTINCT owner) FROM reprise_build_partitions WHERE owner IS NOT NULL").int(0, 0) ?? 0 >= 2
        }
        starter.signal(SIGCONT)
        let workers = [starter] + joiners
        var outcomes: [ProcessOutcome] = []
        for worker in workers { outcomes.append(try await worker.finish()) }
        for outcome in outcomes { #expect(outcome.status == 0, "\(outcome.standardError)") }
        try await Self.checkAgainstSingleRebuild(environment, folder: folder)
        let owners = try await environment.mysql.query("SELECT COUNT(DISTINCT owner) FROM reprise_build_partitions").int(0, 0) ?? 0
        #expect(owners >= 2, "the partitions were shared between workers")
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    @Test func aWorkerKilledMidPartitionIsReplacedAndNothingIsLostOrDoubled() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 4_000, seed: 201)
        let folder = try Self.folder()
        var faulty = environment.processVariables
        faulty["REPRISE_FAULT"] = "kill-after-commit:3"
        let killed = try runReprise(Self.arguments(environment, folder: folder, worker: "doomed"), environment: faulty)
        #expect(killed.killedBySignal, "\(killed.standardError)")
        let running = try await environment.mysql.query("SELECT partition_no, round_position FROM reprise_build_partitions WHERE state = 'running' AND owner = 'doomed'")
        #expect(running.rowCount == 1 && (running.int64(0, 1) ?? 0) > 0, "the dead worker left a partition with a checkpoint")
        FaultLedger.record(.injected, "kill -9 of a partitioned rebuild worker")
        // Operators see the partitions: owner, state, progress, lease age.
        let status = try runReprise(["status", "--store-schema", environment.storeSchema.schema], environment: environment.processVariables)
        #expect(status.status == 0, "\(status.standardError)")
        #expect(status.standardOutput.contains("partitions:") && status.standardOutput.contains("running") && status.standardOutput.contains("doomed"), "\(status.standardOutput)")

        let successors = try (1...2).map { try BackgroundProcess(Self.arguments(environment, folder: folder, worker: "s\($0)"), environment: environment.processVariables) }
        for successor in successors {
            let outcome = try await successor.finish()
            #expect(outcome.status == 0, "\(outcome.standardError)")
        }
        try await Self.checkAgainstSingleRebuild(environment, folder: folder)
        FaultLedger.record(.recovered, "kill -9 of a partitioned rebuild worker")
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    @Test func aFrozenWorkersPartitionIsTakenOverWhenItsLeaseExpires() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 4_000, seed: 203)
        let folder = try Self.folder()
        // w1 freezes (SIGSTOP) right after committing its first chunk: alive, silent, holding its locks.
        var frozen = environment.processVariables
        frozen["REPRISE_FAULT"] = "stop-after-commit:1"
        let sleeper = try BackgroundProcess(Self.arguments(environment, folder: folder, worker: "w1"), environment: frozen)
        try await ServerFaultTests.waitForPause(sleeper)
        FaultLedger.record(.injected, "partitioned rebuild worker frozen mid-partition")
        let helper = try BackgroundProcess(
            Self.arguments(environment, folder: folder, worker: "w2").filter { $0 != "--quiet" } + ["--lease-seconds", "2"],
            environment: environment.processVariables)
        let helped = try await helper.finish()
        #expect(helped.status == 0, "\(helped.standardError)")
        #expect(helped.standardError.contains("lease expired, taking it over"), "\(helped.standardError)")
        // The frozen worker wakes up fenced off: its sessions are gone, it applies nothing more.
        sleeper.signal(SIGCONT)
        let woke = try await sleeper.finish()
        #expect(woke.status != 0, "the fenced worker stops with an error: \(woke.standardError)")
        try await Self.checkAgainstSingleRebuild(environment, folder: folder)
        FaultLedger.record(.recovered, "partitioned rebuild worker frozen mid-partition")
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    @Test func aJoinWorkerWithNothingToJoinExitsCleanly() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 200, seed: 202)
        let folder = try Self.folder()
        let outcome = try runReprise(Self.arguments(environment, folder: folder, worker: "late").filter { $0 != "--quiet" } + ["--join", "0.5"], environment: environment.processVariables)
        #expect(outcome.status == 0, "\(outcome.standardError)")
        #expect(outcome.standardOutput.contains("nothing to join"), "\(outcome.standardOutput)")
        #expect(try await environment.mysql.query("SELECT COUNT(*) FROM reprise_builds").int(0, 0) == 0, "a joiner never starts a build")
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    @Test func aProjectionWithoutAPartitionKeyIsRefused() async throws {
        let environment = try await RebuildEnvironment.make()
        let outcome = try runReprise(
            ["rebuild", "product_sales_daily", "--partitions", "2", "--store-schema", environment.storeSchema.schema, "--quiet"],
            environment: environment.processVariables)
        #expect(outcome.status == 1)
        #expect(outcome.standardError.contains("declares no partition_key"), "\(outcome.standardError)")
        await environment.tearDown()
    }
}
