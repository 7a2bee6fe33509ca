@testable import RepriseCommandLine
@testable import RepriseEngine
import Glibc
import RepriseSupport
import Testing

/// When a rebuild returns free pages to the system (docs/throughput-memory.md).
@Suite("Free pages returned after big chunks (no server)")
struct MemoryReleaseTests {
    let start = ContinuousClock.now

    @Test func theFirstTrimIsDueAndThenOnlyAfterItsSpacing() {
        #expect(MemoryRelease.isDue(now: start, last: nil, spacing: .seconds(20)))
        #expect(!MemoryRelease.isDue(now: start + .seconds(19), last: start, spacing: .seconds(20)))
        #expect(MemoryRelease.isDue(now: start + .seconds(20), last: start, spacing: .seconds(20)))
    }

    @Test func aRebuildTrimsAfterEveryBigChunkAtMostEveryTwoSecondsAndTheLiveWorkerEveryTwenty() {
        // A rebuild's chunks are bounded in bytes: free pages go back after each (measured at 10M
        // events, 20-30 MB resident above what is live within three chunks otherwise).
        #expect(RebuildOptions().chunkBounds.freePagesSpacing == .seconds(2))
        #expect(RebuildOptions().chunkBounds.freePagesSpacing == MemoryRelease.minimumInterval)
        // The live worker's chunks (no byte bound) free little each.
        #expect(ChunkBounds.fixed(100).freePagesSpacing == .seconds(20))
    }

    @Test func theChunkGatheredWhileAnotherCommitsStopsAtThreeQuartersOfTheBound() {
        let flush = RebuildOptions.defaultFlushBytes
        #expect(RebuildOptions().chunkBounds.bytesGatheredWhileCommitting == flush / 4 * 3)
        #expect(ChunkBounds.fixed(100).bytesGatheredWhileCommitting == .max, "the live worker's chunks have no byte bound")
    }

    /// The test process links `reprise-fault-injection`, not jemalloc: the glibc paths are the
    /// ones tested in process (the `reprise` executable's jemalloc: `MergeTablesTests`).
    @Test func theTestProcessRunsOnGlibcMalloc() {
        #expect(MemoryRelease.allocator == .glibc)
        #expect(RebuildSummary.allocatorJSON() == #"{"name":"glibc"}"#)
    }

    /// In a process of its own: an arena with free space serves even a big block from it, so
    /// among the suite's other tests the answer would depend on what they freed.
    @Test func bigBuffersGetMappingsOfTheirOwnAfterTheAllocatorIsConfigured() async throws {
        try #require(getenv("GLIBC_TUNABLES") == nil && getenv("REPRISE_MALLOC_TRIM") == nil, "the environment sets the allocator itself")
        await #expect(processExitsWith: .success, "a 3 MiB buffer is mapped (and unmapped when freed); below 2 MiB, blocks come from the arenas") {
            // Freeing a mapped 20 MiB block raises glibc's own threshold to 20 MiB: from then on
            // a 3 MiB buffer would come from an arena, unless the threshold was set by hand.
            let large = UnsafeMutableRawPointer.allocate(byteCount: 20 << 20, alignment: 16)
            large.storeBytes(of: 1, as: UInt8.self)
            large.deallocate()
            MemoryRelease.configureAllocator()
            guard MemoryRelease.mapsBlock(ofSize: (3 << 20) + 100) else { exit(1) }
            guard !MemoryRelease.mapsBlock(ofSize: 1 << 20) else { exit(2) }
        }
    }
}
