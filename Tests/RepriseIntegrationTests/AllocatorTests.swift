import Foundation
import Testing

/// The `reprise` executable runs on jemalloc, set for rebuilds (docs/throughput-allocator.md):
/// its background threads return free pages a second after they are freed. The test process
/// itself keeps glibc's malloc (it links `reprise-fault-injection`, which does not link jemalloc).
@Suite("jemalloc in the reprise executable (real process, real servers)")
struct AllocatorTests {
    @Test func theRepriseExecutableRunsOnJemallocSetForRebuilds() async throws {
        let summary = try await Self.rebuildSummary(variables: [:])
        #expect(summary.allocator["name"] as? String == "jemalloc")
        #expect(summary.allocator["background_threads"] as? Bool == true)
        #expect((summary.allocator["dirty_decay_ms"] as? NSNumber)?.intValue == 1_000, "new arenas")
        #expect((summary.allocator["first_arena_dirty_decay_ms"] as? NSNumber)?.intValue == 1_000, "the main thread's arena, made before")
    }

    /// An operator's MALLOC_CONF is jemalloc's own configuration: the executable leaves it be.
    @Test func anOperatorsMallocConfWins() async throws {
        let summary = try await Self.rebuildSummary(variables: ["MALLOC_CONF": "dirty_decay_ms:5000"])
        #expect(summary.allocator["name"] as? String == "jemalloc")
        #expect(summary.allocator["background_threads"] as? Bool == false)
        #expect((summary.allocator["dirty_decay_ms"] as? NSNumber)?.intValue == 5_000)
    }

    /// `reprise rebuild --json` of one sample over a small store.
    private static func rebuildSummary(variables: [String: String]) async throws -> RunSummary {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 300, seed: 72)
            let outcome = try runReprise(
                ["rebuild", "customer_stats", "--projections-dir", RebuildEnvironment.repositoryRoot() + "/projections",
                 "--store-schema", environment.storeSchema.schema, "--json"],
                environment: environment.processVariables.merging(variables) { $1 })
            try #require(outcome.status == 0, "\(outcome.standardError)")
            return try RunSummary(outcome.standardOutput)
        }
    }
}
