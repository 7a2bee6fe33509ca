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
        write("arenas.dirty_decay_ms", decay)
        let arenas = read("arenas.narenas", as: UInt32(0)) ?? 1
        for arena in 0..<arenas {
            // An arena not made yet refuses (EFAULT); it takes the default above when it is made.
            write("arena.\(arena).dirty_decay_ms", decay)
        }
        write("background_thread", true)
    }

    /// Whether background threads return free pages, and the decay time of new arenas and of
    /// arena 0 (milliseconds); nil when jemalloc does not answer.
    func settings() -> JemallocSettings? {
        guard let background = read("background_thread", as: false),
            let newArenas = read("arenas.dirty_decay_ms", as: 0),
            let firstArena = read("arena.0.dirty_decay_ms", as: 0)
        else { return nil }
        return JemallocSettings(backgroundThreads: background, dirtyDecayMilliseconds: newArenas, firstArenaDirtyDecayMilliseconds: firstArena)
    }

    /// `Value`: the setting's C type (`bool`, `ssize_t`: Bool, Int).
    private func write<Value>(_ name: String, _ value: Value) {
        var value = value
        _ = reprise_mallctl_write(mallctl, name, &value, MemoryLayout<Value>.size)
    }

    /// `Value`: the setting's C type (`bool`, `ssize_t`, `unsigned`: Bool, Int, UInt32).
    private func read<Value>(_ name: String, as placeholder: Value) -> Value? {
        var value = placeholder
        guard reprise_mallctl_read(mallctl, name, &value, MemoryLayout<Value>.size) == 0 else { return nil }
        return value
    }
}

/// What a process's jemalloc runs with (`reprise rebuild --json` reports it).
package struct JemallocSettings: Sendable, Equatable {
    package var backgroundThreads: Bool
    /// New arenas' decay time.
    package var dirtyDecayMilliseconds: Int
    /// The main thread's arena's, made before the settings.
    package var firstArenaDirtyDecayMilliseconds: Int
}
