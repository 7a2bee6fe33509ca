@testable import RepriseEngine
import Glibc
import RepriseSupport
import Testing

/// When a rebuild returns free pages to the system (docs/throughput-memory.md).
@Suite("Free pages returned by the resident size and the clock (no server)")
struct MemoryReleaseTests {
    let start = ContinuousClock.now
    let mib = 1 << 20

    @Test func theFirstTrimIsDueAndThenOnlyAfterTheInterval() {
        #expect(MemoryRelease.isDue(now: start, last: nil, residentBytes: nil, ceiling: nil))
        #expect(!MemoryRelease.isDue(now: start + .seconds(19), last: start, residentBytes: nil, ceiling: nil))
        #expect(MemoryRelease.isDue(now: start + .seconds(20), last: start, residentBytes: nil, ceiling: nil))
    }

    @Test func aboveTheCeilingATrimIsDueSoonerButNotAfterEveryChunk() {
        let ceiling = 352 * mib
        #expect(!MemoryRelease.isDue(now: start + .seconds(5), last: start, residentBytes: ceiling, ceiling: ceiling), "at the ceiling: not yet")
        #expect(MemoryRelease.isDue(now: start + .seconds(5), last: start, residentBytes: ceiling + 1, ceiling: ceiling))
        #expect(!MemoryRelease.isDue(now: start + .seconds(1), last: start, residentBytes: 2 * ceiling, ceiling: ceiling), "within the minimum interval")
        #expect(MemoryRelease.isDue(now: start + .seconds(2), last: start, residentBytes: 2 * ceiling, ceiling: ceiling))
    }

    @Test func theCeilingIsTheBudgetTheChunksAtTheCommitsPaceAndTheProcessAndOpenBoundsHaveNone() throws {
        var bounds = RebuildOptions().chunkBounds
        let flush = RebuildOptions.defaultFlushBytes
        var pace = CommitPace()
        // Before a commit was timed: two whole chunks.
        #expect(bounds.residentCeiling(pace: pace) == RebuildOptions.defaultRowCacheBytes + 2 * flush + 96 * mib)
        // Commits at 0.6 of the gathering time: the chunk committing and 0.6 of the next one.
        for _ in 0..<40 { pace.record(gathering: .seconds(5), committing: .seconds(3)) }
        let ceiling = try #require(bounds.residentCeiling(pace: pace))
        #expect(abs(ceiling - (RebuildOptions.defaultRowCacheBytes + flush * 16 / 10 + 96 * mib)) < 1 << 10)
        bounds.rowCache = RowCacheBudget(bytes: 64 * mib)
        #expect(bounds.residentCeiling(pace: pace) == ceiling + 32 * mib)
        // Commits slower than gathering: never more than two chunks.
        for _ in 0..<40 { pace.record(gathering: .seconds(1), committing: .seconds(4)) }
        #expect(bounds.residentCeiling(pace: pace) == 64 * mib + 2 * flush + 96 * mib)
        #expect(ChunkBounds.fixed(100).residentCeiling(pace: pace) == nil, "the live worker's chunks: only the interval")
    }

    @Test func theResidentSizeIsReadFromTheSystem() throws {
        let resident = try #require(MemoryRelease.residentBytes())
        // A test process holds at least its code and libraries, and far less than the machine.
        #expect(resident > 4 * mib && resident < 64 << 30, "\(resident)")
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
