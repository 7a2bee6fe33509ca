import CMalloc

/// jemalloc's control interface (`mallctl`), for the settings a long rebuild needs.
///
/// The `reprise` executables link jemalloc (`CJemalloc`), so it serves their malloc; other
/// processes of these modules (a team's own executable, the tests) may keep glibc's.
/// `MemoryRelease` finds out which at run time.
package struct JemallocControl: Sendable {
    private let mallctl: reprise_mallctl_fn

    /// jemalloc returns a free page after this long. Its default, 10 s, held 20-30 MB more at
    /// the peaks of the three samples' rebuilds (docs/throughput-allocator.md).
    package static let dirtyDecayMilliseconds = 1_000

    /// The control of the jemalloc that serves this process's malloc; nil under another allocator.
    static func ofProcess() -> JemallocControl? {
        reprise_jemalloc_mallctl().map(JemallocControl.init(mallctl:))
    }

    /// Free pages go back after `dirtyDecayMilliseconds`, returned by jemalloc's background
    /// threads (one per arena in use, at most one per core), so no chunk waits for it. Called
    /// before this process's threads make arenas of their own; the arenas already made (the
    /// main thread's) are set one by one.
    func configureForRebuilds() {
        let decay = Self.dirtyDecayMilliseconds
        _ = reprise_mallctl_write_ssize(mallctl, "arenas.dirty_decay_ms", decay)
        var arenas: UInt32 = 0
        if reprise_mallctl_read_unsigned(mallctl, "arenas.narenas", &arenas) != 0 { arenas = 1 }
        for arena in 0..<max(1, arenas) {
            // An arena not made yet refuses (EFAULT); it takes the default above when it is made.
            _ = reprise_mallctl_write_ssize(mallctl, "arena.\(arena).dirty_decay_ms", decay)
        }
        _ = reprise_mallctl_write_bool(mallctl, "background_thread", true)
    }

    /// Whether background threads return free pages, and the decay time of new arenas and of
    /// arena 0 (milliseconds); nil when jemalloc does not answer.
    func settings() -> (backgroundThreads: Bool, newArenasDecay: Int, firstArenaDecay: Int)? {
        var background = false
        var newArenas = -1, firstArena = -1
        guard reprise_mallctl_read_bool(mallctl, "background_thread", &background) == 0,
            reprise_mallctl_read_ssize(mallctl, "arenas.dirty_decay_ms", &newArenas) == 0,
            reprise_mallctl_read_ssize(mallctl, "arena.0.dirty_decay_ms", &firstArena) == 0
        else { return nil }
        return (background, newArenas, firstArena)
    }
}
