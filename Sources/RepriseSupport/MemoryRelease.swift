import CMalloc
import Glibc

/// Gives memory the process freed back to the system, between chunks of a long rebuild.
///
/// glibc's malloc keeps freed memory in per-thread arenas and returns it only from the top of
/// each heap. A rebuild frees whole generations of cached rows and whole chunks of staged rows,
/// allocated by several threads (handlers, decoding, the connections), while long-lived rows sit
/// between them: measured on a 10M-event rebuild, the arenas held 475 MB of which 226 MB were in
/// use, and one arena held 134 MB for 0.6 MB in use. `malloc_trim` releases the free pages inside
/// every arena (`madvise`), so the resident size follows what is live, not what the history's
/// length has left behind.
package enum MemoryRelease {
    /// Whether `REPRISE_MALLOC_TRIM=0` turned it off (to compare, or where another allocator is preloaded).
    private static let enabled: Bool = {
        guard let value = getenv("REPRISE_MALLOC_TRIM") else { return true }
        return String(cString: value) != "0"
    }()

    /// Returns free pages of every malloc arena to the system. CPU work only (walks the free
    /// lists; no I/O, no wait on another thread beyond each arena's lock), a few milliseconds.
    package static func returnFreePages() {
        guard enabled else { return }
        _ = malloc_trim(0)
    }
}
