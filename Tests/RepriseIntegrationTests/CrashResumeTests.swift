import Foundation
import RepriseDemo
import RepriseEngine
import Testing

/// kill -9 of the real `reprise rebuild` process at chosen points, then a plain rerun: the
/// tables must equal those of an uninterrupted rebuild, with nothing lost or applied twice.
@Suite("Crash and resume (real process, real servers)", .serialized)
struct CrashResumeTests {
    private func rebuild(_ environment: RebuildEnvironment, folder: String, fault: String? = nil) throws -> ProcessOutcome {
        var extra = environment.processVariables
        if let fault { extra["REPRISE_FAULT"] = fault }
        return try runReprise(
            ["rebuild", "stream_counts", "--projections-dir", folder, "--store-schema", environment.storeSchema.schema,
             "--chunk-size", "250", "--fetch-size", "100", "--quiet"],
            environment: extra)
    }

    @Test(arguments: ["kill-before-commit:1", "kill-before-commit:3", "kill-after-commit:2", "kill-after-commit:5", "kill-after-round:0", "kill-before-swap"])
    func killedRebuildResumesToTheSameTables(fault: String) async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 1_500, seed: 40)
        let folder = try streamCountsFolder()

        let crashed = try rebuild(environment, folder: folder, fault: fault)
        #expect(crashed.killedBySignal, "the fault \(fault) should have killed the process: \(crashed.standardError)")
        // Nothing half-done is visible: no live table yet (the first build never swapped).
        #expect(try await environment.mysql.query("SHOW TABLES LIKE 'stream_counts'").rowCount == 0)

        let resumed = try rebuild(environment, folder: folder)
        #expect(resumed.status == 0, "rerun failed: \(resumed.standardError)")
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        // The rerun continued the interrupted build rather than starting over.
        let builds = try await environment.mysql.query("SELECT state FROM reprise_builds ORDER BY build_id")
        #expect(builds.rows.map { $0[0] } == ["active"])
        FaultLedger.record(.injected, "kill -9 of a rebuild (\(fault))")
        FaultLedger.record(.recovered, "kill -9 of a rebuild (\(fault))")
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    @Test func aSecondProcessIsRefusedWithExitCodeFour() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 100, seed: 41)
        let folder = try streamCountsFolder()
        let holder = try await MySQLConnectionForLock.hold(RebuildEngine.rebuildLockName("stream_counts", database: environment.database), url: environment.mysqlURL)
        let refused = try rebuild(environment, folder: folder)
        #expect(refused.status == 4)
        FaultLedger.record(.injected, "second concurrent rebuild process")
        FaultLedger.record(.recovered, "second concurrent rebuild process")
        #expect(refused.standardError.contains("already running"))
        #expect(!refused.standardError.contains("reprise_local_pw"))
        await holder.close()
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }
}

import RepriseMySQL

enum MySQLConnectionForLock {
    static func hold(_ name: String, url: String) async throws -> MySQLConnection {
        let connection = try await MySQLConnection.connect(url: url)
        guard try await connection.getLock(name) else { throw TestSetupError("could not take \(name)") }
        return connection
    }
}

/// Twenty kill -9s at points drawn from a seeded generator (the seed is printed, so a failure can
/// be replayed), each followed by a resume, then one clean run: the tables equal the expected rows.
@Suite("Seeded kill -9 series (real process, real servers)")
struct SeededKillSeriesTests {
    @Test func twentyKillsAndResumesEndInTheSameTables() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 2_500, seed: 42)
        let folder = try streamCountsFolder()
        // REPRISE_FAULT_SEED replays a reported series.
        let seed = ProcessInfo.processInfo.environment["REPRISE_FAULT_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
        print("kill series seed: \(seed)")
        var random = SeededGenerator(seed: seed)
        var kills = 0, attempts = 0
        // A drawn point past the end of a (resumed) build lets that run finish; keep drawing until 20 kills.
        while kills < 20 && attempts < 100 {
            attempts += 1
            let point = ["kill-before-commit", "kill-after-commit"][Int(random.next() % 2)] + ":\(1 + random.next() % 10)"
            let outcome = try runReprise(
                ["rebuild", "stream_counts", "--projections-dir", folder, "--store-schema", environment.storeSchema.schema,
                 "--chunk-size", "200", "--fetch-size", "100", "--quiet"],
                environment: ["REPRISE_POSTGRES_URL": TestServers.postgresURL, "REPRISE_MYSQL_URL": environment.mysqlURL, "REPRISE_FAULT": point])
            if outcome.killedBySignal { kills += 1 } else { #expect(outcome.status == 0, "seed \(seed), \(point): \(outcome.standardError)") }
        }
        let final = try runReprise(
            ["rebuild", "stream_counts", "--projections-dir", folder, "--store-schema", environment.storeSchema.schema, "--quiet"],
            environment: environment.processVariables)
        #expect(final.status == 0, "seed \(seed): \(final.standardError)")
        #expect(kills == 20, "seed \(seed): only \(kills) kills in \(attempts) runs")
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)), "seed \(seed)")
        // Every killed build was resumed and finished, or replaced: none is left half-built.
        #expect(try await environment.mysql.query("SELECT COUNT(*) FROM reprise_builds WHERE state = 'building'").int(0, 0) == 0)
        print("kill series: \(kills) kills, \(kills) recoveries verified")
        FaultLedger.record(.injected, "kill -9 of a rebuild at a seeded point (seed \(seed))", count: kills)
        FaultLedger.record(.recovered, "kill -9 of a rebuild at a seeded point (seed \(seed))", count: kills)
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }
}
