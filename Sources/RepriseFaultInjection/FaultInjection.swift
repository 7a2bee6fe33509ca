import RepriseCommandLine
import RepriseEngine
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Test-only fault injection, read by the `reprise-fault-injection` binary (never by `reprise`):
/// `REPRISE_FAULT=kill-before-commit:N | kill-after-commit:N | kill-after-round:N |
/// kill-before-indexes:N (before the N-th ALTER TABLE adding indexes, from 0) | kill-before-swap | kill-after-rename | kill-before-ack:N | kill-after-confirm:N` makes the process SIGKILL itself at that point, the way a crash would, so crash-and-resume can be tested on the real binary;
/// `stop-before-commit:N | stop-after-commit:N` makes it SIGSTOP itself there.
enum FaultInjection {
    /// The hooks for the spec in REPRISE_FAULT (none when it is unset).
    static func hooks() -> CommandLineHooks {
        CommandLineHooks(rebuild: rebuildHooks(), liveBeforeAck: liveBeforeAck(), replayAfterConfirm: replayAfterConfirm())
    }

    static func rebuildHooks() -> RebuildHooks {
        var hooks = RebuildHooks()
        guard let spec = getenv("REPRISE_FAULT").map({ String(cString: $0) }), !spec.isEmpty else { return hooks }
        let parts = spec.split(separator: ":", maxSplits: 1).map(String.init)
        let number = parts.count > 1 ? Int(parts[1]) ?? 0 : 0
        switch parts[0] {
        case "kill-before-commit": hooks.beforeChunkCommit = { chunk in if chunk == number { die() } }
        case "kill-after-commit": hooks.afterChunkCommit = { chunk in if chunk == number { die() } }
        case "kill-after-round": hooks.afterRound = { round in if round == number { die() } }
        case "kill-before-indexes": hooks.beforeIndexBuild = { alter in if alter == number { die() } }
        case "kill-before-swap": hooks.beforeSwap = { die() }
        case "kill-after-rename": hooks.afterSwapRename = { die() }
        // SIGSTOP: the test does something to a server meanwhile (restart, terminate a backend), then SIGCONT.
        // Once: a chunk that is retried after the fault passes the same point again.
        case "stop-before-commit":
            let once = Once()
            hooks.beforeChunkCommit = { chunk in if chunk == number && once.first() { pause() } }
        case "stop-after-commit":
            let once = Once()
            hooks.afterChunkCommit = { chunk in if chunk == number && once.first() { pause() } }
        default: warn("warning: unknown REPRISE_FAULT '\(spec)' ignored\n")
        }
        return hooks
    }

    /// `kill-before-ack:N`: the live worker dies after the MySQL commit of batch N, before its ack.
    static func liveBeforeAck() -> (@Sendable (Int) async -> Void)? {
        guard let spec = getenv("REPRISE_FAULT").map({ String(cString: $0) }), spec.hasPrefix("kill-before-ack:"),
            let number = Int(spec.dropFirst("kill-before-ack:".count))
        else { return nil }
        return { batch in if batch == number { die() } }
    }

    /// `kill-after-confirm:N`: `reprise replay` dies after the broker confirmed batch N, before its position is saved.
    static func replayAfterConfirm() -> (@Sendable (Int) async throws -> Void)? {
        guard let spec = getenv("REPRISE_FAULT").map({ String(cString: $0) }), spec.hasPrefix("kill-after-confirm:"),
            let number = Int(spec.dropFirst("kill-after-confirm:".count))
        else { return nil }
        return { batch in if batch == number { die() } }
    }

    // `raise`, not `kill(getpid(), …)`: a signal sent to the process is taken by whichever
    // thread the kernel picks, and the calling thread may run on meanwhile. A worker told to
    // stop after commit 1 was seen (under load) frozen inside chunk 2's transaction, its row
    // locks blocking the other worker the test wanted to see take over. `raise` signals the
    // calling thread, which stops (or dies) before it returns from the call.
    private static func die() {
        raise(SIGKILL)
    }

    private static func pause() {
        raise(SIGSTOP)
    }

    /// True the first time only.
    final class Once: Sendable {
        private let fired = Mutex(false)
        func first() -> Bool { fired.withLock { fired in defer { fired = true }; return !fired } }
    }
}

private func warn(_ text: String) {
    var bytes = Array(text.utf8)
    _ = write(STDERR_FILENO, &bytes, bytes.count)
}
