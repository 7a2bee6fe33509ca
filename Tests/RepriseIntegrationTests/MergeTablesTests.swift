import RepriseEngine
import RepriseProjection
import Testing

/// Merge tables (docs/merge-tables.md): tables whose rows a rebuild changes without reading
/// them. Every path their changes take to MySQL must end with the rows a rebuild that reads
/// them writes: bulk loads of keys known new, merging upserts of keys that may exist (a resumed
/// build knows no key new), and merging upserts alone (without bulk loads).
@Suite("Merge tables (real servers)")
struct MergeTablesTests {
    private static func smallChunks(_ options: inout RebuildOptions) {
        options.stepSize = 100
        options.fetchSize = 100
        options.flushBytes = 200_000
        options.flushInterval = .seconds(3_600)
        options.rowCacheBytes = 20_000
    }

    /// Seeds the store, then rebuilds the samples reading every row (merge tables off): the
    /// samples, their tables, and those tables' rows.
    private static func seededWithExpectedRows(_ environment: RebuildEnvironment, events: Int, seed: UInt64) async throws
        -> (samples: [ProjectionDefinition], tables: [String], expected: [String: [[String]]])
    {
        try await environment.seed(events: events, seed: seed)
        let samples = try RebuildEnvironment.samples()
        let tables = samples.flatMap(\.tables).map(\.name).sorted()
        _ = try await environment.engine { smallChunks(&$0); $0.mergeTables = false }.rebuild(samples.map { .file($0) })
        var expected: [String: [[String]]] = [:]
        for table in tables { expected[table] = try await environment.rows(table) }
        return (samples, tables, expected)
    }

    @Test func mergedTablesAreNeverReadAndEndAsReadOnes() async throws {
        try await RebuildEnvironment.with { environment in
            let (samples, tables, expected) = try await Self.seededWithExpectedRows(environment, events: 3_000, seed: 68)
            #expect(expected["customer_stats"]?.isEmpty == false && expected["product_sales_daily"]?.isEmpty == false)

            let unmerged = try await environment.engine { Self.smallChunks(&$0); $0.mergeTables = false }.rebuild(samples.map { .file($0) })
            let merged = try await environment.engine(Self.smallChunks).rebuild(samples.map { .file($0) })
            for table in tables { #expect(try await environment.rows(table) == expected[table], "\(table)") }
            // The tiny cache drops customers that later chunks change: read back unless merged.
            let read = unmerged.first { $0.projection == "customer_stats" }?.rowReadKeys ?? 0
            #expect(read > 0, "customer_stats: \(read) keys read back without merging")
            for name in ["customer_stats", "product_sales_daily"] {
                #expect(merged.first { $0.projection == name }?.rowReadKeys == 0, "\(name) reads no row")
            }
            // A projection that updates its rows still reads them back.
            #expect((merged.first { $0.projection == "order_summary" }?.rowReadKeys ?? 0) > 0)
            // Merged rows are counted: customers met again in later chunks; none without merging.
            #expect((merged.first { $0.projection == "customer_stats" }?.rowsMerged ?? 0) > 0)
            #expect(merged.first { $0.projection == "order_summary" }?.rowsMerged == 0)
            #expect(unmerged.allSatisfy { $0.rowsMerged == 0 }, "\(unmerged.map(\.rowsMerged))")
        }
    }

    /// A run stopped after its third chunk: the resumed build knows no key new (its filter
    /// starts empty), so every merge row goes by a merging upsert onto rows MySQL holds.
    @Test func aResumedBuildMergesIntoTheRowsItDidNotWrite() async throws {
        struct Stop: Error {}
        try await RebuildEnvironment.with { environment in
            let (samples, tables, expected) = try await Self.seededWithExpectedRows(environment, events: 3_000, seed: 69)

            var hooks = RebuildHooks()
            hooks.afterChunkCommit = { chunk in if chunk == 3 { throw Stop() } }
            await #expect(throws: Stop.self) {
                try await environment.engine(Self.smallChunks).rebuild(samples.map { .file($0) }, hooks: hooks)
            }
            let resumed = try await environment.engine(Self.smallChunks).rebuild(samples.map { .file($0) })
            #expect(resumed.allSatisfy { $0.resumed })
            for name in ["customer_stats", "product_sales_daily"] {
                let result = resumed.first { $0.projection == name }
                #expect(result?.rowsLoaded == 0 && (result?.rowsMerged ?? 0) > 0, "\(name): nothing known new, every row merged")
            }
            for table in tables { #expect(try await environment.rows(table) == expected[table], "\(table)") }
        }
    }

    /// Without bulk loads every change goes by SQL: the merge rows all by merging upserts.
    @Test func withoutBulkLoadsMergeRowsAreUpserted() async throws {
        try await RebuildEnvironment.with { environment in
            let (samples, tables, expected) = try await Self.seededWithExpectedRows(environment, events: 2_000, seed: 70)
            let merged = try await environment.engine { Self.smallChunks(&$0); $0.bulkLoad = false }.rebuild(samples.map { .file($0) })
            #expect(merged.first { $0.projection == "customer_stats" }?.rowReadKeys == 0)
            for table in tables { #expect(try await environment.rows(table) == expected[table], "\(table)") }
        }
    }

    /// `reprise rebuild --json` says how many rows went by merging upserts: in a projection of
    /// merge tables only, every row write is bulk-loaded or merged. It gives the peak memory too.
    @Test func theSummaryCountsMergedRows() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 71)
            let outcome = try runReprise(
                ["rebuild", "customer_stats", "--projections-dir", RebuildEnvironment.repositoryRoot() + "/projections",
                 "--store-schema", environment.storeSchema.schema, "--chunk-size", "200", "--json"],
                environment: environment.processVariables)
            try #require(outcome.status == 0, "\(outcome.standardError)")
            let summary = try RunSummary(outcome.standardOutput)
            #expect(summary.rowsMerged > 0 && summary.rowsLoaded > 0, "\(outcome.standardOutput)")
            #expect(summary.rowsLoaded + summary.rowsMerged == summary.rowWrites, "\(outcome.standardOutput)")
            // The process's peak resident size, for memory limits: a process this size has some.
            #expect(summary.peakResidentMiB.map { $0 > 8 && $0 < 8_192 } == true, "\(outcome.standardOutput)")
        }
    }
}
