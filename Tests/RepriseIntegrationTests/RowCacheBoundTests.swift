import RepriseEngine
import Testing

/// A rebuild whose row cache is far smaller than its rows (docs/throughput-memory.md): rows are
/// dropped and read back, and the tables end exactly as with a cache that holds everything.
@Suite("Row cache bounded in bytes (real servers)")
struct RowCacheBoundTests {
    /// Merge tables off: their rows (the customers, the product days) are never read, and this
    /// suite is about rows dropped from the cache and read back (docs/merge-tables.md).
    private static func steps(_ options: inout RebuildOptions) {
        options.mergeTables = false
        options.stepSize = 100
        options.fetchSize = 100
        options.flushBytes = 200_000
        options.flushInterval = .seconds(3_600)
    }

    @Test func aTinyCacheBuildsTheSameRowsAsABigOne() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 3_000, seed: 66)
            let samples = try RebuildEnvironment.samples()
            let tables = samples.flatMap(\.tables).map(\.name).sorted()
            let big = try await environment.engine { Self.steps(&$0); $0.rowCacheBytes = 1 << 30 }.rebuild(samples.map { .file($0) })
            var expected: [String: [[String]]] = [:]
            for table in tables { expected[table] = try await environment.rows(table) }
            #expect(expected.values.contains { !$0.isEmpty })

            for readAhead in [false, true] {
                let tiny = try await environment.engine { Self.steps(&$0); $0.rowCacheBytes = 20_000; $0.readAhead = readAhead }
                    .rebuild(samples.map { .file($0) })
                for table in tables {
                    #expect(try await environment.rows(table) == expected[table], "\(table), read-ahead \(readAhead)")
                }
                let readBig = big.reduce(0) { $0 + $1.rowReadKeys }, readTiny = tiny.reduce(0) { $0 + $1.rowReadKeys }
                #expect(readTiny > readBig, "evicted rows were read back: \(readTiny) keys read, \(readBig) with the big cache")
                #expect(tiny.reduce(0) { $0 + $1.rowReadQueries } <= 30 * 5 * 3, "at most one query per table per step and stage")
                // With read-ahead, the projections without lookups read most of those rows while the step before ran.
                let ahead = tiny.reduce(0) { $0 + $1.rowReadKeysAhead }
                if readAhead {
                    #expect(ahead > 0 && ahead <= readTiny, "\(ahead) of \(readTiny) keys read ahead of their step")
                } else {
                    #expect(ahead == 0)
                }
            }
        }
    }

    /// A run stopped right after a chunk commits, while the next step's rows are being read
    /// ahead: the reads are dropped with the step, and the resumed run ends with the same rows as
    /// a run with a cache that holds everything.
    @Test func aStopWhileRowsAreReadAheadResumesToTheSameRows() async throws {
        struct Stop: Error {}
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 3_000, seed: 67)
            let samples = try RebuildEnvironment.samples()
            let tables = samples.flatMap(\.tables).map(\.name).sorted()
            _ = try await environment.engine { Self.steps(&$0); $0.rowCacheBytes = 1 << 30 }.rebuild(samples.map { .file($0) })
            var expected: [String: [[String]]] = [:]
            for table in tables { expected[table] = try await environment.rows(table) }

            var hooks = RebuildHooks()
            hooks.afterChunkCommit = { chunk in if chunk == 3 { throw Stop() } }
            await #expect(throws: Stop.self) {
                try await environment.engine { Self.steps(&$0); $0.rowCacheBytes = 20_000; $0.readAhead = true }.rebuild(samples.map { .file($0) }, hooks: hooks)
            }
            let resumed = try await environment.engine { Self.steps(&$0); $0.rowCacheBytes = 20_000; $0.readAhead = true }.rebuild(samples.map { .file($0) })
            #expect(resumed.allSatisfy { $0.resumed })
            #expect(resumed.reduce(0) { $0 + $1.rowReadKeysAhead } > 0)
            for table in tables {
                #expect(try await environment.rows(table) == expected[table], "\(table)")
            }
        }
    }
}
