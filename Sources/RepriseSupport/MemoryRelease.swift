import CMalloc
import Glibc
import Synchronization

/// Gives memory the process freed back to the system, now and then during a long rebuild.
///
/// glibc's malloc keeps freed memory in per-thread arenas and returns it only from the top of
/// each heap. A rebuild frees whole generations of cached rows and whole chunks of staged rows,
/// allocated by several threads (handlers, decoding, the connections), while long-lived rows sit
/// between them: measured on a 10M-event rebuild, the arenas held 475 MB of which 226 MB were in
/// use, and one arena held 134 MB for 0.6 MB in use. `malloc_trim` releases the free pages inside
/// every arena (`madvise`), so the resident size follows what is live, not what the history's
/// length has left behind. It walks every free chunk and the pages it releases are faulted in
/// again when reused, so it does not run after every chunk: at most every `interval`, or sooner
/// (at most every `minimumInterval`) once the resident size passes the ceiling the caller's
/// settings imply.
package enum MemoryRelease {
    /// Whether `REPRISE_MALLOC_TRIM=0` turned it off (to compare, or where another allocator is preloaded).
    private static let enabled: Bool = {
        guard let value = getenv("REPRISE_MALLOC_TRIM") else { return true }
        return String(cString: value) != "0"
    }()

    /// When pages were last returned (process-wide: a partitioned rebuild runs several pipelines).
    private static let last = Mutex<ContinuousClock.Instant?>(nil)

    /// The longest time between two trims of a rebuild.
    package static let interval: Duration = .seconds(20)
    /// The shortest time between two trims, also above the ceiling: when live memory itself is
    /// above it, trimming cannot help and must not run after every chunk.
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

    /// Returns free pages of every malloc arena to the system when `isDue` says so. CPU work
    /// only (walks the free lists; no I/O), milliseconds to tens of them. `residentCeiling`:
    /// bytes the process's resident size should stay under (nil: only every `interval`).
    package static func returnFreePages(residentCeiling: Int? = nil) {
        guard enabled else { return }
        let now = ContinuousClock.now
        // The resident size decides only between the two intervals: not read on other chunks.
        let since = last.withLock { last in last.map { $0.duration(to: now) } }
        let undecided = since.map { $0 >= minimumInterval && $0 < interval } ?? false
        let resident = residentCeiling != nil && undecided ? residentBytes() : nil
        let due = last.withLock { last in
            guard isDue(now: now, last: last, residentBytes: resident, ceiling: residentCeiling) else { return false }
            last = now
            return true
        }
        if due { _ = malloc_trim(0) }
    }

    /// Whether a trim is due: none yet, `interval` since the last one, or `minimumInterval`
    /// since it with the resident size above the ceiling.
    package static func isDue(now: ContinuousClock.Instant, last: ContinuousClock.Instant?, residentBytes: Int?, ceiling: Int?) -> Bool {
        guard let last else { return true }
        let since = last.duration(to: now)
        if since >= interval { return true }
        guard let residentBytes, let ceiling else { return false }
        return residentBytes > ceiling && since >= minimumInterval
    }

    /// The most the process has had resident so far, in bytes (`getrusage`'s `ru_maxrss`, the
    /// kernel's high-water mark, as `/usr/bin/time` reports it); nil where it cannot be read.
    package static func peakResidentBytes() -> Int? {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0, usage.ru_maxrss > 0 else { return nil }
        return usage.ru_maxrss * 1024
    }

    /// The process's resident size in bytes (`/proc/self/statm`'s second field, in pages); nil
    /// where it cannot be read.
    package static func residentBytes() -> Int? {
        let descriptor = open("/proc/self/statm", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 128)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let fields = buffer[0..<count].split(separator: UInt8(ascii: " "))
        guard fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
