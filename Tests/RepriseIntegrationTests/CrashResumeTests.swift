import Foundation
import RepriseDemo
import RepriseEngine
import RepriseLive
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
             "--chunk-size", "250", "--fetch-size", "100", "--quiet", "--json"],
            environment: extra)
    }

    @Test(arguments: ["kill-before-commit:1", "kill-before-commit:3", "kill-after-commit:2", "kill-after-commit:5", "kill-after-round:0", "kill-before-swap"])
    func killedRebuildResumesToTheSameTables(fault: String) async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 1_500, seed: 40)
            let folder = try streamCountsFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let handled = try #require(try await environment.handledEventCount(try streamCounts()))

            let crashed = try rebuild(environment, folder: folder, fault: fault)
            try #require(crashed.killedBySIGKILL, "the fault \(fault) should have killed the process with SIGKILL: signal \(crashed.signal.map(String.init) ?? "none"), \(crashed.standardError)")
            FaultLedger.record(.injected, "kill -9 of a rebuild (\(fault))")
            // Nothing half-done is visible: no live table yet (the first build never swapped).
            #expect(try await environment.mysql.query("SHOW TABLES LIKE 'stream_counts'").rowCount == 0)
            // The checkpoint survived the kill: one build, still building, with the chunks committed before it.
            let survived = try await BuildCheckpoint.only(environment)
            try #require(survived.state == "building")
            if fault != "kill-before-commit:1" {
                try #require(survived.eventsApplied > 0, "\(fault): the committed chunks' checkpoint survived")
            }

            let resumed = try rebuild(environment, folder: folder)
            try #require(resumed.status == 0, "rerun failed: \(resumed.standardError)")
            try #require(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            // The rerun continued the interrupted build rather than starting over: same build,
            // and it applied only the events behind the surviving checkpoint.
            let builds = try await environment.mysql.query("SELECT build_id, state FROM reprise_builds ORDER BY build_id")
            try #require(builds.rows.map { $0[1] } == ["active"])
            try #require(builds.int64(0, 0) == survived.buildID)
            let rerun = try RunSummary(resumed.standardOutput)
            try #require(rerun.resumed, "\(resumed.standardOutput)")
            try #require(rerun.eventsApplied == handled - survived.eventsApplied, "the rerun applies what the checkpoint lacked: \(resumed.standardOutput)")
            if survived.eventsApplied > 0 { try #require(rerun.eventsApplied < handled) }
            FaultLedger.record(.recovered, "kill -9 of a rebuild (\(fault))")
        }
    }

    /// Inside the swap: killed after the `RENAME TABLE`, before the build registry recorded it.
    /// Readers already see the whole new table; the next run finishes the bookkeeping, and then
    /// rebuilds as asked, with the events appended meanwhile.
    @Test func aKillInsideTheSwapIsFinishedByTheNextRun() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 1_500, seed: 44)
            let folder = try streamCountsFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let crashed = try rebuild(environment, folder: folder, fault: "kill-after-rename")
            try #require(crashed.killedBySIGKILL, "signal \(crashed.signal.map(String.init) ?? "none"): \(crashed.standardError)")
            FaultLedger.record(.injected, "kill -9 inside the swap (after RENAME TABLE)")
            // The rename is one statement: the live table is the complete new one, nothing in between.
            try #require(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            let survived = try await BuildCheckpoint.only(environment)
            try #require(survived.state == "building", "the registry had not recorded the swap yet")

            try await environment.seed(events: 200, seed: 45)
            let rerun = try rebuild(environment, folder: folder)
            try #require(rerun.status == 0, "\(rerun.standardError)")
            try #require(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            let builds = try await environment.mysql.query("SELECT build_id, state FROM reprise_builds ORDER BY build_id")
            let states = Dictionary(uniqueKeysWithValues: (0..<builds.rowCount).map { (builds.int64($0, 0) ?? 0, builds.string($0, 1) ?? "") })
            try #require(states.values.filter { $0 == "active" }.count == 1 && !states.values.contains("building"), "\(states)")
            try #require(["active", "retired"].contains(states[survived.buildID]), "the interrupted build was recorded as swapped: \(states)")
            FaultLedger.record(.recovered, "kill -9 inside the swap (after RENAME TABLE)")
        }
    }

    /// A concurrency guard, not a fault: the second process is refused and touches nothing.
    @Test func aSecondProcessIsRefusedWithExitCodeFour() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 100, seed: 41)
            let folder = try streamCountsFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let holder = try await MySQLConnectionForLock.hold(RebuildEngine.rebuildLockName("stream_counts", database: environment.database), url: environment.mysqlURL)
            let refused = try rebuild(environment, folder: folder)
            #expect(refused.status == 4)
            #expect(refused.standardError.contains("already running"))
            #expect(!refused.standardError.contains("reprise_local_pw"))
            #expect(try await environment.mysql.query("SHOW TABLES LIKE '%stream\\_counts%'").rowCount == 0, "the refused process built nothing")
            await holder.close()
        }
    }
}

/// The one build row of an environment, as a kill left it.
struct BuildCheckpoint {
    var buildID: Int64
    var state: String
    var eventsApplied: Int64

    static func only(_ environment: RebuildEnvironment) async throws -> BuildCheckpoint {
        let builds = try await environment.mysql.query("SELECT build_id, state, events_applied FROM reprise_builds")
        try #require(builds.rowCount == 1, "one build row after the kill")
        return BuildCheckpoint(
            buildID: try #require(builds.int64(0, 0)), state: try #require(builds.string(0, 1)), eventsApplied: try #require(builds.int64(0, 2)))
    }
}

/// What `reprise rebuild --json` said about the one projection it ran.
struct RunSummary {
    var resumed: Bool
    var eventsApplied: Int64
    var rowWrites: Int64
    var rowsLoaded: Int64
    var rowsMerged: Int64
    /// `peak_rss_mib`: the process's high-water mark (nil: null, not readable).
    var peakResidentMiB: Int?
    /// `allocator`: the malloc that served the process ("jemalloc", "glibc") and jemalloc's settings.
    var allocator: [String: Any]

    init(_ output: String, projection: Int = 0) throws {
        let line = try #require(output.split(separator: "\n").last { $0.hasPrefix("{") }, "no JSON summary in: \(output)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let projections = try #require(object["projections"] as? [[String: Any]])
        try #require(projections.count > projection)
        resumed = try #require(projections[projection]["resumed"] as? Bool)
        eventsApplied = try #require((projections[projection]["events_applied"] as? NSNumber)?.int64Value)
        rowWrites = try #require((projections[projection]["row_writes"] as? NSNumber)?.int64Value)
        rowsLoaded = try #require((projections[projection]["rows_loaded"] as? NSNumber)?.int64Value)
        rowsMerged = try #require((projections[projection]["rows_merged"] as? NSNumber)?.int64Value)
        peakResidentMiB = (object["peak_rss_mib"] as? NSNumber)?.intValue
        allocator = try #require(object["allocator"] as? [String: Any], "no allocator in: \(output)")
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

/// The seed of a kill series: REPRISE_FAULT_SEED replays a reported one; printed either way.
func killSeriesSeed(_ series: String) -> UInt64 {
    let seed = ProcessInfo.processInfo.environment["REPRISE_FAULT_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 1...UInt64(UInt32.max))
    print("\(series) seed: \(seed) (replay with REPRISE_FAULT_SEED=\(seed))")
    return seed
}

/// Twenty kill -9s at points drawn from a seeded generator (the seed is printed, so a failure can
/// be replayed), each followed by a resume, then one clean run: the tables equal the expected rows.
@Suite("Seeded kill -9 series (real process, real servers)")
struct SeededKillSeriesTests {
    @Test func twentyKillsAndResumesEndInTheSameTables() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_500, seed: 42)
            let folder = try streamCountsFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let seed = killSeriesSeed("kill series")
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
                if outcome.killedBySIGKILL {
                    kills += 1
                    FaultLedger.record(.injected, "kill -9 of a rebuild at a seeded chunk boundary (stream_counts)")
                } else {
                    try #require(outcome.status == 0 && outcome.signal == nil, "seed \(seed), \(point): status \(outcome.status), \(outcome.standardError)")
                }
            }
            let final = try runReprise(
                ["rebuild", "stream_counts", "--projections-dir", folder, "--store-schema", environment.storeSchema.schema, "--quiet"],
                environment: environment.processVariables)
            try #require(final.status == 0, "seed \(seed): \(final.standardError)")
            try #require(kills == 20, "seed \(seed): only \(kills) kills in \(attempts) runs")
            try #require(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)), "seed \(seed)")
            // Every killed build was resumed and finished, or replaced: none is left half-built.
            try #require(try await environment.mysql.query("SELECT COUNT(*) FROM reprise_builds WHERE state = 'building'").int(0, 0) == 0)
            print("kill series: \(kills) kills, \(kills) recoveries verified")
            FaultLedger.record(.recovered, "kill -9 of a rebuild at a seeded chunk boundary (stream_counts)", count: kills)
        }
    }

    /// The shipped samples (three projections, several tables' worth of handlers, `for_each`) built
    /// together and killed at seeded points: inside a chunk's transaction or right after its commit
    /// with a chunk size drawn per run (so the kills land at changing event positions, not at fixed
    /// multiples), after the bulk read or a catch-up round, before the swap and inside it (after the RENAME). Events are appended
    /// between runs, so resumed builds run catch-up rounds that the next kill may hit. The end
    /// result, continued from the builds' checkpoints by a live catch-up, is compared with the
    /// golden rows folded from the raw events.
    @Test func killsOnTheShippedSamplesEndInTheGoldenRows() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 3_000, seed: 43)
            let seed = killSeriesSeed("sample kill series")
            var random = SeededGenerator(seed: seed)
            let samples = try RebuildEnvironment.samples().map(\.name).sorted()
            try #require(samples == ["category_sales_daily", "country_revenue_daily", "customer_stats", "order_summary", "product_sales_daily"])
            func run(_ point: String?, chunkSize: UInt64) throws -> ProcessOutcome {
                var variables = environment.processVariables
                if let point { variables["REPRISE_FAULT"] = point }
                return try runReprise(
                    ["rebuild"] + samples + ["--projections-dir", RebuildEnvironment.repositoryRoot() + "/projections",
                     "--store-schema", environment.storeSchema.schema, "--chunk-size", String(chunkSize), "--fetch-size", "97", "--quiet"],
                    environment: variables)
            }
            var kills: [String: Int] = [:], attempts = 0, appendSeed: UInt64 = 1_000
            while kills.values.reduce(0, +) < 12 && attempts < 60 {
                attempts += 1
                let chunkSize = 37 + random.next() % 300
                let point: String
                switch random.next() % 7 {
                case 0, 1: point = "kill-before-commit:\(1 + random.next() % 8)"
                case 2, 3: point = "kill-after-commit:\(1 + random.next() % 8)"
                case 4: point = "kill-after-round:\(random.next() % 3)"
                case 5: point = "kill-before-swap"
                default: point = "kill-after-rename"
                }
                let outcome = try run(point, chunkSize: chunkSize)
                if outcome.killedBySIGKILL {
                    let kind = String(point.prefix { $0 != ":" })
                    kills[kind, default: 0] += 1
                    FaultLedger.record(.injected, "kill -9 of the shipped samples' rebuild at a seeded point (\(kind))")
                } else {
                    try #require(outcome.status == 0 && outcome.signal == nil, "seed \(seed), \(point), chunk \(chunkSize): \(outcome.standardError)")
                }
                // New events between runs: the resumed build catches them up in rounds of its own.
                let appended = Int(random.next() % 150)
                if appended > 0 {
                    try await environment.seed(events: appended, seed: appendSeed)
                    appendSeed += 1
                }
            }
            print("sample kill series (seed \(seed)): \(kills) in \(attempts) runs")
            try #require(kills.values.reduce(0, +) == 12, "seed \(seed): only \(kills) kills in \(attempts) runs")
            let final = try run(nil, chunkSize: 250)
            try #require(final.status == 0, "seed \(seed): \(final.standardError)")
            // A resumed build whose rounds were done swaps at its recorded snapshot; the events
            // appended after it are the live worker's. Continue the way `reprise live` does, from
            // each build's checkpoint: nothing may be lost or applied twice across the hand-over.
            let runner = try await LiveProjectionRunner.open(
                projections: try RebuildEnvironment.samples().map { .file($0) }, postgresURL: TestServers.postgresURL,
                mysqlURL: environment.mysqlURL, source: .reprise(environment.storeSchema))
            do {
                try await waitUntil("the live catch-up to reach the head") { try await runner.catchUp().allSatisfy { $0.eventsApplied == 0 } }
            } catch {
                await runner.close()
                throw error
            }
            await runner.close()
            let golden = try await GoldenRows.tables(environment)
            for table in samples {
                let rows = try await environment.rows(table), expected = golden[table] ?? []
                try #require(rows == expected, "seed \(seed): \(table): \(rowDifference(rows, expected))")
            }
            try #require(try await environment.mysql.query("SELECT COUNT(*) FROM reprise_builds WHERE state = 'building'").int(0, 0) == 0)
            for (kind, count) in kills {
                FaultLedger.record(.recovered, "kill -9 of the shipped samples' rebuild at a seeded point (\(kind))", count: count)
            }
        }
    }
}

/// What differs between two sorted row sets, briefly: for a failure message.
func rowDifference(_ actual: [[String]], _ expected: [[String]]) -> String {
    let actualSet = Set(actual), expectedSet = Set(expected)
    let extra = actual.filter { !expectedSet.contains($0) }, missing = expected.filter { !actualSet.contains($0) }
    return "\(actual.count) rows, \(expected.count) expected; not expected: \(extra.count) \(extra.prefix(3)); missing: \(missing.count) \(missing.prefix(3))"
}
