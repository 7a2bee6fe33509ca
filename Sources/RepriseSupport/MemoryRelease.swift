import CMalloc
import Glibc
import Synchronization

/// Gives memory the process freed back to the system, now and then during a long rebuild.
///
/// Two allocators are known: jemalloc, which the `reprise` executables link (`CJemalloc`), and
/// glibc's malloc, which every other process of these modules keeps (the tests, a team's own
/// executable that does not link jemalloc). Which one serves the process is found at run time.
///
/// jemalloc returns the pages freed longer than its decay time ago on a background thread; a
/// rebuild sets that time (`JemallocControl`) and needs no walk of its own.
/// Measured against glibc's malloc at 1M and 10M events (docs/throughput-allocator.md): the
/// decoding took 25 s instead of 60 s at 10M (events allocated on the reading thread, freed on
/// the handlers'), and the resident sizes were lower at both sizes.
///
/// With glibc's malloc:
/// glibc's malloc keeps freed memory in per-thread arenas and returns it only from the top of
/// each heap. A rebuild frees whole generations of cached rows and whole chunks of staged rows,
/// allocated by several threads (handlers, decoding, the connections), while long-lived rows sit
/// between them: measured on a 10M-event rebuild, the arenas held 475 MB of which 226 MB were in
/// use, and one arena held 134 MB for 0.6 MB in use. `malloc_trim` releases the free pages inside
/// every arena (`madvise`), so the resident size follows what is live, not what the history's
/// length has left behind. It walks every free chunk (15-35 ms at 10M events) and the pages it
/// releases are faulted in again when reused: a rebuild runs it after each big chunk, at most
/// every `minimumInterval`; the live worker, whose chunks free little, every `interval`.
package enum MemoryRelease {
    /// Whether `REPRISE_MALLOC_TRIM=0` turned it off (to compare: either allocator as it starts, no trims).
    private static let enabled: Bool = {
        guard let value = getenv("REPRISE_MALLOC_TRIM") else { return true }
        return String(cString: value) != "0"
    }()

    /// jemalloc's control interface, when jemalloc serves this process's malloc.
    private static let jemalloc = JemallocControl.ofProcess()

    /// The process's allocator.
    package enum Allocator: String, Sendable, Equatable {
        case glibc
        case jemalloc
    }

    package static var allocator: Allocator { jemalloc == nil ? .glibc : .jemalloc }

    /// The settings jemalloc runs with (`JemallocControl`); nil under glibc's malloc.
    package static var jemallocSettings: JemallocSettings? { jemalloc?.settings() }

    /// When pages were last returned (process-wide: a partitioned rebuild runs several pipelines).
    private static let last = Mutex<ContinuousClock.Instant?>(nil)

    /// The time between two trims of the live worker.
    package static let interval: Duration = .seconds(20)
    /// The shortest time between two trims of a rebuild (its chunks may be small and quick).
    package static let minimumInterval: Duration = .seconds(2)

    /// Blocks from this size up get a mapping of their own, unmapped when freed.
    package static let mappedBlockBytes = 2 << 20
    /// Free memory at the top of an arena beyond this is returned when it grows there.
    package static let heapTopSlackBytes = 8 << 20

    /// Sets glibc's thresholds for a long rebuild, once, at process start (before the threads).
    ///
    /// By default glibc raises its mmap threshold to the size of every mapped block freed, up to
    /// 32 MiB: after the first chunks, the cache's and the chunks' big dictionary and array
    /// buffers (megabytes each, replaced as they grow and freed whole at each chunk and
    /// generation) come from the arenas, where the rows allocated between them keep the space
    /// they leave from being returned. Measured on a 10M-event rebuild (docs/throughput-memory.md):
    /// 486 MB held by the arenas for 229-288 MB in use. A fixed 2 MiB threshold gives those
    /// buffers mappings of their own, returned whole when freed; the 8 MiB trim threshold keeps
    /// the arenas from shrinking and growing again at every chunk (a threshold set by hand is no
    /// longer raised either, and the 128 KiB default cost about 8% more CPU). Left alone when
    /// `GLIBC_TUNABLES` sets malloc tunables (the operator's choice wins) or `REPRISE_MALLOC_TRIM=0`.
    package static func configureAllocator() {
        guard enabled else { return }
        if let jemalloc {
            // `MALLOC_CONF` configures jemalloc: the operator's choice wins.
            if getenv("MALLOC_CONF") == nil { jemalloc.configureForRebuilds() }
            return
        }
        if let tunables = getenv("GLIBC_TUNABLES"), String(cString: tunables).contains("glibc.malloc.") { return }
        _ = mallopt(M_MMAP_THRESHOLD, Int32(mappedBlockBytes))
        _ = mallopt(M_TRIM_THRESHOLD, Int32(heapTopSlackBytes))
    }

    /// Whether a block of `bytes` now gets a mapping of its own (for tests). A mapped block
    /// spans whole pages less its 16-byte header; an arena's block is 8 past a multiple of 16.
    package static func mapsBlock(ofSize bytes: Int) -> Bool {
        guard let block = malloc(bytes) else { return false }
        defer { free(block) }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        return malloc_usable_size(block) % page == page - 16
    }

    /// Returns free pages of every malloc arena to the system, unless it did so less than
    /// `spacing` ago (process-wide). CPU work only (walks the free lists; no I/O), milliseconds
    /// to tens of them.
    package static func returnFreePages(atMostEvery spacing: Duration = interval) {
        // jemalloc's background threads return free pages after their decay time.
        guard enabled, jemalloc == nil else { return }
        let now = ContinuousClock.now
        let due = last.withLock { last in
            guard isDue(now: now, last: last, spacing: spacing) else { return false }
            last = now
            return true
        }
        if due { _ = malloc_trim(0) }
    }

    /// Whether a trim is due: none yet, or `spacing` since the last one.
    package static func isDue(now: ContinuousClock.Instant, last: ContinuousClock.Instant?, spacing: Duration) -> Bool {
        guard let last else { return true }
        return last.duration(to: now) >= spacing
    }

    /// The most the process has had resident so far, in bytes (`getrusage`'s `ru_maxrss`, the
    /// kernel's high-water mark, as `/usr/bin/time` reports it); nil where it cannot be read.
    package static func peakResidentBytes() -> Int? {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0, usage.ru_maxrss > 0 else { return nil }
        return usage.ru_maxrss * 1024
    }
}
