import Foundation
import RepriseEngine
import RepriseMySQL
import RepriseProjection
import Synchronization
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

    /// Worker w1, started with `fault` (a `stop-…` point), once it has stopped itself there.
    static func frozenWorker(_ environment: RebuildEnvironment, folder: String, at fault: String) async throws -> BackgroundProcess {
        var frozen = environment.processVariables
        frozen["REPRISE_FAULT"] = fault
        let sleeper = try BackgroundProcess(arguments(environment, folder: folder, worker: "w1"), environment: frozen)
        try await ServerFaultTests.waitForPause(sleeper)
        return sleeper
    }

    /// The expected rows of both samples, folded from the raw events by `GoldenRows` (no engine
    /// code: a single-process run of the same engine would share its bugs). `folder` holds the
    /// copies of the shipped samples the workers ran.
    static func reference(_ environment: RebuildEnvironment, folder: String) async throws -> [String: [[String]]] {
        let golden = try await GoldenRows.tables(environment)
        return golden.filter { projections.contains($0.key) }
    }

    /// The two samples that declare a partition key.
    static let projections = ["order_summary", "customer_stats"]

    /// Every row of both samples' live tables.
    static func tables(_ environment: RebuildEnvironment) async throws -> [String: [[String]]] {
        var tables: [String: [[String]]] = [:]
        for table in projections { tables[table] = try await environment.rows(table) }
        return tables
    }

    /// The tables equal the golden rows, and the manifest adds up (see `checkManifest`).
    static func checkAgainstGoldenRows(_ environment: RebuildEnvironment, folder: String) async throws {
        try #require(try await tables(environment) == (try await reference(environment, folder: folder)))
        try await checkManifest(environment)
    }

    /// Every partition done, and together they applied each handled event once.
    static func checkManifest(_ environment: RebuildEnvironment) async throws {
        let partitions = try await environment.mysql.query(
            "SELECT b.projection, COUNT(*), SUM(p.state = 'done'), SUM(p.events_applied) FROM reprise_build_partitions p JOIN reprise_builds b USING (build_id) WHERE b.state = 'active' GROUP BY b.projection ORDER BY b.projection")
        try #require(partitions.rowCount == 2)
        for row in 0..<partitions.rowCount {
            let projection = partitions.string(row, 0) ?? ""
            try #require(partitions.int(row, 1) == 4 && partitions.int(row, 2) == 4, "\(projection): every partition done")
            let definition = try ProjectionFileParser.load(path: RebuildEnvironment.repositoryRoot() + "/projections/\(projection).yml")
            let handled = try await environment.handledEventCount(definition)
            try #require(partitions.int64(row, 3) == handled, "\(projection): each handled event applied once over all partitions")
        }
    }

    @Test func fourWorkersBuildTheTablesOfASingleOne() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 4_000, seed: 200)
            let folder = try Self.folder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
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
            try await Self.checkAgainstGoldenRows(environment, folder: folder)
            let owners = try await environment.mysql.query("SELECT COUNT(DISTINCT owner) FROM reprise_build_partitions").int(0, 0) ?? 0
            #expect(owners >= 2, "the partitions were shared between workers")
        }
    }

    @Test func aWorkerKilledMidPartitionIsReplacedAndNothingIsLostOrDoubled() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 4_000, seed: 201)
            let folder = try Self.folder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            var faulty = environment.processVariables
            faulty["REPRISE_FAULT"] = "kill-after-commit:3"
            let killed = try runReprise(Self.arguments(environment, folder: folder, worker: "doomed"), environment: faulty)
            try #require(killed.killedBySIGKILL, "killed with SIGKILL: \(killed.standardError)")
            FaultLedger.record(.injected, "kill -9 of a partitioned rebuild worker")
            let running = try await environment.mysql.query("SELECT partition_no, round_position FROM reprise_build_partitions WHERE state = 'running' AND owner = 'doomed'")
            try #require(running.rowCount == 1 && (running.int64(0, 1) ?? 0) > 0, "the dead worker left a partition with a checkpoint")
            // Operators see the partitions: owner, state, progress, lease age.
            let status = try runReprise(["status", "--store-schema", environment.storeSchema.schema], environment: environment.processVariables)
            #expect(status.status == 0, "\(status.standardError)")
            #expect(status.standardOutput.contains("partitions:") && status.standardOutput.contains("running") && status.standardOutput.contains("doomed"), "\(status.standardOutput)")

            let successors = try (1...2).map { try BackgroundProcess(Self.arguments(environment, folder: folder, worker: "s\($0)"), environment: environment.processVariables) }
            for successor in successors {
                let outcome = try await successor.finish()
                try #require(outcome.status == 0, "\(outcome.standardError)")
            }
            try await Self.checkAgainstGoldenRows(environment, folder: folder)
            FaultLedger.record(.recovered, "kill -9 of a partitioned rebuild worker")
        }
    }

    @Test func aFrozenWorkersPartitionIsTakenOverWhenItsLeaseExpires() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 4_000, seed: 203)
            let folder = try Self.folder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            // w1 freezes (SIGSTOP) right after committing its first chunk: alive, silent, holding its locks.
            let sleeper = try await Self.frozenWorker(environment, folder: folder, at: "stop-after-commit:1")
            FaultLedger.record(.injected, "partitioned rebuild worker frozen mid-partition")
            let helper = try BackgroundProcess(
                Self.arguments(environment, folder: folder, worker: "w2").filter { $0 != "--quiet" } + ["--lease-seconds", "2"],
                environment: environment.processVariables)
            let helped = try await helper.finish()
            try #require(helped.status == 0, "\(helped.standardError)")
            try #require(helped.standardError.contains("lease expired, taking it over"), "\(helped.standardError)")
            // Its 2 s lease is under twice the default --flush-seconds: said (its 100-event chunks commit far more often).
            #expect(helped.standardError.contains("--lease-seconds 2 is under twice --flush-seconds (10)"), "\(helped.standardError)")
            // The frozen worker wakes up fenced off: its sessions are gone, it applies nothing more.
            sleeper.signal(SIGCONT)
            let woke = try await sleeper.finish()
            try #require(woke.status != 0 && woke.signal == nil, "the fenced worker stops with an error: \(woke.standardError)")
            try await Self.checkAgainstGoldenRows(environment, folder: folder)
            FaultLedger.record(.recovered, "partitioned rebuild worker frozen mid-partition")
        }
    }

    /// A worker frozen inside a chunk's transaction keeps that transaction's row locks, and
    /// another worker's chunk may wait on them (seen: a replacing load waiting on the gap after a
    /// page's last key). That worker is inside its own partition, where it never looked at
    /// leases; now, when its chunk fails, it fences off owners silent past their lease before it
    /// writes the chunk again. Here the failure is certain: once w1's 2 s lease has run out, the
    /// test kills w2's session inside w2's first chunk.
    @Test func aWorkerWhoseChunkFailedFencesOffAnOwnerSilentPastItsLeaseBeforeTheRedo() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 4_000, seed: 204)
            let folder = try Self.folder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let sleeper = try await Self.frozenWorker(environment, folder: folder, at: "stop-before-commit:1")
            FaultLedger.record(.injected, "partitioned rebuild worker frozen inside a chunk's transaction")

            let log = Mutex<[String]>([])
            let once = FireOnce()
            let mysql = environment.mysql, database = environment.database
            var hooks = RebuildHooks()
            hooks.beforeChunkCommit = { chunk in
                guard chunk == 1, await once.fire() else { return }
                log.withLock { $0.append("w2 commits chunk 1") }
                try await waitUntil("w1's lease to run out") {
                    try await mysql.query(
                        "SELECT COUNT(*) FROM reprise_build_partitions WHERE owner = 'w1' AND heartbeat_at < UTC_TIMESTAMP(6) - INTERVAL 3 SECOND"
                    ).int(0, 0) == 1
                }
                let w1 = try await mysql.query("SELECT owner_connection FROM reprise_build_partitions WHERE owner = 'w1'").int64(0, 0) ?? 0
                let w2 = try await mysql.query(
                    """
                    SELECT t.trx_mysql_thread_id FROM information_schema.INNODB_TRX t
                    JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id WHERE p.DB = ? AND p.ID <> ?
                    """, [.string(database), .int(w1)])
                try #require(w2.rowCount == 1, "w2's chunk transaction")
                try await mysql.execute("KILL CONNECTION ?", [.int(w2.int64(0, 0) ?? 0)])
            }
            hooks.afterChunkCommit = { chunk in log.withLock { $0.append("w2 recorded chunk \(chunk)") } }
            let projections = try Self.projections.map { name in
                RunnableProjection.file(try ProjectionFileParser.load(path: folder + "/\(name).yml"))
            }
            let results = try await environment.engine { $0.chunkSize = 100; $0.fetchSize = 100; $0.leaseSeconds = 2 }
                .rebuildPartitioned(projections, partitions: 4, worker: "w2", hooks: hooks) { progress in
                    if case .fencedOff(_, let owner, _, let chunk) = progress.phase {
                        log.withLock { $0.append("w2 fenced off \(owner) before redoing chunk \(chunk)") }
                    }
                }
            #expect(results.allSatisfy { $0.swapped })
            let events = log.withLock { $0 }
            let fenced = try #require(events.firstIndex(of: "w2 fenced off w1 before redoing chunk 1"), "\(events)")
            let recorded = try #require(events.firstIndex(of: "w2 recorded chunk 1"), "\(events)")
            #expect(events.contains("w2 commits chunk 1"), "the fault fired: \(events)")
            #expect(fenced < recorded, "fenced off before the chunk was written again: \(events)")

            sleeper.signal(SIGCONT)
            let woke = try await sleeper.finish()
            try #require(woke.status != 0 && woke.signal == nil, "the fenced worker stops with an error: \(woke.standardError)")
            try await Self.checkAgainstGoldenRows(environment, folder: folder)
            FaultLedger.record(.recovered, "partitioned rebuild worker frozen inside a chunk's transaction")
        }
    }

    /// A lease expiry kills the owner's MySQL session, which the ledger names by its id and its
    /// client host:port: a restarted MariaDB numbers its sessions from 1 again, so by then the id
    /// alone may name another session. Here w1's row is given a bystander's id (its host:port
    /// stays w1's), as a restart could have done: the partition is taken over, and the bystander
    /// lives on.
    @Test func aLeaseExpiryKillsTheOwnersSessionAndNotAnotherWithItsID() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 205)
            let folder = try Self.folder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let sleeper = try await Self.frozenWorker(environment, folder: folder, at: "stop-after-commit:1")
            let bystander = try await MySQLConnection.connect(url: environment.mysqlURL)
            try await environment.mysql.execute(
                "UPDATE reprise_build_partitions SET owner_connection = ? WHERE owner = 'w1'", [.int(Int64(await bystander.connectionID))])
            let helper = try BackgroundProcess(
                Self.arguments(environment, folder: folder, worker: "w2") + ["--lease-seconds", "2"], environment: environment.processVariables)
            let helped = try await helper.finish()
            try #require(helped.status == 0, "\(helped.standardError)")
            #expect(helped.standardError.contains("lease expired, taking it over"), "\(helped.standardError)")
            #expect(try await bystander.query("SELECT 1").int(0, 0) == 1, "the bystander's session was not killed")
            await bystander.close()
            sleeper.signal(SIGCONT)
            let woke = try await sleeper.finish()
            try #require(woke.status != 0 && woke.signal == nil, "the fenced worker stops with an error: \(woke.standardError)")
            try await Self.checkAgainstGoldenRows(environment, folder: folder)
        }
    }

    @Test func aJoinWorkerWithNothingToJoinExitsCleanly() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 200, seed: 202)
            let folder = try Self.folder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let outcome = try runReprise(Self.arguments(environment, folder: folder, worker: "late").filter { $0 != "--quiet" } + ["--join", "0.5"], environment: environment.processVariables)
            #expect(outcome.status == 0, "\(outcome.standardError)")
            #expect(outcome.standardOutput.contains("nothing to join"), "\(outcome.standardOutput)")
            #expect(try await environment.mysql.query("SELECT COUNT(*) FROM reprise_builds").int(0, 0) == 0, "a joiner never starts a build")
        }
    }

    @Test func aProjectionWithoutAPartitionKeyIsRefused() async throws {
        try await RebuildEnvironment.with { environment in
            let outcome = try runReprise(
                ["rebuild", "product_sales_daily", "--partitions", "2", "--store-schema", environment.storeSchema.schema, "--quiet"],
                environment: environment.processVariables)
            #expect(outcome.status == 1)
            #expect(outcome.standardError.contains("declares no partition_key"), "\(outcome.standardError)")
        }
    }
}
