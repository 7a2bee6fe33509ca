import Foundation
@testable import RepriseCommandLine
import RepriseEngine
import Testing

/// `rebuild` and `migrate` take the same build settings, on the command line and in job files.
@Suite("Build settings shared by rebuild and migrate (no server)")
struct BuildTuningOptionsTests {
    private let tuned = [
        "--chunk-size", "700", "--flush-mib", "8", "--flush-seconds", "2.5", "--no-bulk-load", "--no-merge-tables", "--read-ahead",
        "--fetch-size", "300", "--row-cache-mib", "4", "--index-builds", "1", "--keep-retired", "3",
    ]

    private func expectTuned(_ options: RebuildOptions, _ command: String) {
        #expect(options.chunkSize == 700, "\(command)")
        #expect(options.flushBytes == 8 << 20, "\(command)")
        #expect(options.flushInterval == .milliseconds(2_500), "\(command)")
        #expect(!options.bulkLoad && !options.mergeTables && options.readAhead, "\(command)")
        #expect(options.fetchSize == 300 && options.rowCacheBytes == 4 << 20, "\(command)")
        #expect(options.indexBuilds == 1 && options.keepRetiredBuilds == 3, "\(command)")
    }

    @Test func migrateTakesTheSettingsOfRebuild() throws {
        let migrate = try MigrateCommand.parse(["order_summary"] + tuned)
        expectTuned(migrate.tuning.rebuildOptions, "migrate")
        let rebuild = try RebuildCommand.parse(["order_summary"] + tuned)
        expectTuned(rebuild.tuning.rebuildOptions, "rebuild")
    }

    @Test func theDefaultsAreTheEnginesDefaults() throws {
        let options = try MigrateCommand.parse(["order_summary"]).tuning.rebuildOptions
        let engine = RebuildOptions()
        #expect(options.chunkSize == nil && options.flushBytes == engine.flushBytes && options.flushInterval == engine.flushInterval)
        #expect(options.rowCacheBytes == engine.rowCacheBytes && options.rowCacheLimit == engine.rowCacheLimit)
        #expect(options.indexBuilds == engine.indexBuilds && options.fetchSize == engine.fetchSize && options.keepRetiredBuilds == engine.keepRetiredBuilds)
        #expect(options.bulkLoad && options.mergeTables && !options.readAhead)
    }

    @Test(arguments: [["--index-builds", "0"], ["--flush-mib", "0"], ["--row-cache-mib", "0"], ["--keep-retired", "-1"], ["--chunk-size", "0"]])
    func migrateRefusesWhatRebuildRefuses(_ bad: [String]) {
        #expect(throws: (any Error).self, "migrate \(bad)") { try MigrateCommand.parse(["order_summary"] + bad) }
        #expect(throws: (any Error).self, "rebuild \(bad)") { try RebuildCommand.parse(["order_summary"] + bad) }
    }

    @Test func aMigrateJobAcceptsTheBuildSettings() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("migrate-\(UUID().uuidString).yml").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try """
            job: migrate-tuned
            run: migrate
            projections: [order_summary]
            settings: { flush_mib: 16, row_cache_mib: 8, index_builds: 1, no_bulk_load: true, keep_retired: 2 }
            connections: { postgres: PG_URL, mysql: MY_URL }
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let job = try JobFile.load(path: path)
        let arguments = try job.arguments { ["PG_URL": "postgresql://u@127.0.0.1/db", "MY_URL": "mysql://u@127.0.0.1/db"][$0] }
        let command = try #require(try RepriseCommand.parseAsRoot(arguments) as? MigrateCommand, "\(arguments)")
        let options = command.tuning.rebuildOptions
        #expect(options.flushBytes == 16 << 20 && options.rowCacheBytes == 8 << 20 && options.indexBuilds == 1)
        #expect(!options.bulkLoad && options.keepRetiredBuilds == 2)
    }

    @Test func aLeaseShorterThanTwoFlushIntervalsIsWarnedAbout() {
        #expect(RebuildCommand.leaseWarning(leaseSeconds: 120, flushSeconds: 10) == nil)
        #expect(RebuildCommand.leaseWarning(leaseSeconds: 20, flushSeconds: 10) == nil)
        let warning = RebuildCommand.leaseWarning(leaseSeconds: 2, flushSeconds: 10)
        #expect(warning?.contains("--lease-seconds 2 is under twice --flush-seconds (10)") == true, "\(warning ?? "none")")
        #expect(warning?.contains("give --flush-seconds 1 or less") == true, "\(warning ?? "none")")
        #expect(RebuildCommand.leaseWarning(leaseSeconds: 3, flushSeconds: 2.5)?.contains("give --flush-seconds 1.5 or less") == true)
    }

    @Test func migrateAndRebuildJobsAcceptExactlyTheBuildSettings() {
        // The job files' list is written by hand: it must name every option of the group, and only those.
        let options = Set(BuildTuningOptions.helpMessage(columns: 400).split(separator: "\n").compactMap { line -> String? in
            let words = line.split(separator: " ")
            guard let first = words.first, first.hasPrefix("--"), first != "--help" else { return nil }
            return String(first.dropFirst(2)).replacing("-", with: "_")
        })
        #expect(options == JobFile.buildTuning, "options \(options.sorted()) against job settings \(JobFile.buildTuning.sorted())")
        #expect(JobFile.buildTuning.isSubset(of: JobFile.allowedSettings[.migrate] ?? []))
        #expect(JobFile.buildTuning.isSubset(of: JobFile.allowedSettings[.rebuild] ?? []))
    }
}
