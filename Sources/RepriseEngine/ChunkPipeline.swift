/// Runs a group's chunks through `ChunkApplier`'s stage -> commit -> record path, two deep:
/// while chunk N's rows and checkpoint commit in MySQL (on the MySQL connection's own thread),
/// the handlers already run on chunk N+1 against a workspace that sees chunk N's rows. Chunk N+1
/// is staged only after N is recorded, so checkpoints stay in order.
///
/// When N's commit fails, every build forgets what it holds in memory (MySQL's outcome is
/// unknown) and `ChunkRetryPolicy` decides: N runs again alone (recognized as done if its COMMIT
/// reached the server), then N+1, whose handlers had read N's rows; or the failure is recorded
/// and thrown.
final class ChunkPipeline {
    let applier: ChunkApplier
    let group: [ActiveBuild]
    let policy: ChunkRetryPolicy
    private var inFlight: (staged: ChunkApplier.StagedChunk, commit: Task<[Int], any Error>)?

    init(applier: ChunkApplier, group: [ActiveBuild]) {
        self.applier = applier
        self.group = group
        self.policy = ChunkRetryPolicy(group: group)
    }

    /// Handles `chunk`, then starts its commit once the chunk before it is recorded.
    func submit(_ chunk: ChunkApplier.Chunk) async throws {
        let counts = try await applier.handle(chunk, group: group)
        if let failed = try await settle() {
            try await commitAlone(failed.chunk, after: failed.error)
            try await commitAlone(chunk, after: nil)
            return
        }
        launch(applier.stage(chunk, counts: counts, group: group))
    }

    /// Waits for the chunk in flight and records it.
    func finish() async throws {
        if let failed = try await settle() {
            try await commitAlone(failed.chunk, after: failed.error)
        }
    }

    private func launch(_ staged: ChunkApplier.StagedChunk) {
        let applier = applier, writes = staged.writes, lastPosition = staged.chunk.lastPosition, number = staged.chunk.number
        inFlight = (staged, Task { try await applier.commit(writes, through: lastPosition, number: number) })
    }

    /// Waits for the chunk in flight. Committed: records it. Failed: every build forgets its rows
    /// in memory, and the failed chunk is returned with its error.
    private func settle() async throws -> (chunk: ChunkApplier.Chunk, error: any Error)? {
        guard let (staged, commit) = inFlight else { return nil }
        inFlight = nil
        let written: [Int]
        do {
            written = try await commit.value
        } catch {
            for build in group { build.workspace.reset() }
            return (staged.chunk, error)
        }
        applier.record(staged, written: written)
        try await applier.hooks.afterChunkCommit(staged.chunk.number)
        return nil
    }

    /// Takes `chunk` through every stage with nothing else in flight, as long as the policy allows.
    /// `earlier`: why its last attempt failed (it may have committed all the same).
    private func commitAlone(_ chunk: ChunkApplier.Chunk, after earlier: (any Error)?) async throws {
        var failure = earlier
        var failedAttempts = earlier == nil ? 0 : 1
        while true {
            if let error = failure {
                guard case .retry(let wait) = policy.decide(error, failedAttempts: failedAttempts) else {
                    await applier.recordFailure(error, group: group)
                    throw error
                }
                try await Task.sleep(for: wait)
            }
            do {
                if failure != nil { try await applier.reopenIfLost(chunk: chunk.number) }
                if failure != nil, try await applier.recordIfCommitted(chunk, group: group) {
                    try await applier.hooks.afterChunkCommit(chunk.number)
                    return
                }
                let counts = try await applier.handle(chunk, group: group)
                launch(applier.stage(chunk, counts: counts, group: group))
                guard let failed = try await settle() else { return }
                failure = failed.error
            } catch {
                for build in group { build.workspace.reset() }
                failure = error
            }
            failedAttempts += 1
        }
    }
}
