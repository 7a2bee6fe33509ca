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
/// again when reused, so it runs at most once per `interval`, not after every chunk.
package enum MemoryRelease {
    /// Whether `REPRISE_MALLOC_TRIM=0` turned it off (to compare, or where another allocator is preloaded).
    private static let enabled: Bool = {
        guard let value = getenv("REPRISE_MALLOC_TRIM") else { return true }
        return String(cString: value) != "0"
    }()

    /// When pages were last returned (process-wide: a partitioned rebuild runs several pipelines).
    private static let last = Mutex<ContinuousClock.Instant?>(nil)

    /// Returns free pages of every malloc arena to the system, unless that was done less than
    /// `interval` ago. CPU work only (walks the free lists; no I/O), milliseconds to tens of them.
    package static func returnFreePages(atMostEvery interval: Duration = .seconds(20)) {
        guard enabled else { return }
        let now = ContinuousClock.now
        let due = last.withLock { last in
            guard last.map({ $0.duration(to: now) >= interval }) ?? true else { return false }
            last = now
            return true
        }
        if due { _ = malloc_trim(0) }
    }
}
