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

    /// A new build's written-key filters grow by the build's outlook (docs/throughput.md): once a
    /// segment is full, the next one is sized for the keys the rest of the build writes, where
    /// doubling segments held up to twice the bits. The first segment is made small here (1,600
    /// keys instead of 838,860) so that a history of 12,000 events outgrows it as 10M events
    /// outgrow 1 MiB; the rows are those of a build whose filters never grew.
    @Test func theWrittenKeyFiltersGrowForTheKeysTheRestOfTheBuildWrites() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 12_000, seed: 68)
            let samples = try RebuildEnvironment.samples()
            let tables = samples.flatMap(\.tables).map(\.name).sorted()
            _ = try await environment.engine { Self.steps(&$0); $0.mergeTables = true }.rebuild(samples.map { .file($0) })
            var expected: [String: [[String]]] = [:]
            for table in tables { expected[table] = try await environment.rows(table) }

            let small = try await environment.engine { Self.steps(&$0); $0.mergeTables = true; $0.writtenKeyFilterFirstKeys = 1_600 }
                .rebuild(samples.map { .file($0) })
            for table in tables { #expect(try await environment.rows(table) == expected[table], "\(table)") }
            // Segments of 1,600, 3,200, 6,400... keys (10 bits each) until they hold `keys`.
            func doubledBytes(_ keys: Int64) -> Int {
                var segment = 1_600, held = 1_600, bytes = 2_000
                while held < keys { segment *= 2; held += segment; bytes += segment * 10 / 8 }
                return bytes
            }
            // The order table is the one that outgrows its first segment in this history (4,030 keys).
            let orders = try #require(small.first { $0.projection == "order_summary" })
            let keys = orders.tableRows.values.reduce(0, +)
            #expect(keys > 1_600, "order_summary outgrows its first segment: \(keys) keys")
            #expect(orders.writtenKeyFilterBytes < doubledBytes(keys), "order_summary: \(orders.writtenKeyFilterBytes) bytes for \(keys) keys")
            for result in small {
                let keys = Int(result.tableRows.values.reduce(0, +)), tables = result.tableRows.count
                // Each table's first segment, then about 10 bits a key, with room for the rate to move.
                #expect(result.writtenKeyFilterBytes <= tables * 2_512 + keys * 10 / 8 * 14 / 10, "\(result.projection): \(result.writtenKeyFilterBytes) bytes for \(keys) keys")
            }
        }
    }
}
