import RepriseSupport
import Synchronization

/// Runs a group's events through `ChunkApplier`'s stage -> commit -> record path, two deep:
/// events are handled in steps into the chunk being gathered (its rows stay in the builds'
/// overlays, each row once however many events change it); when `ChunkBounds` ends the chunk,
/// its rows and checkpoint commit in one MySQL transaction (on the MySQL connection's own
/// thread) while the handlers already gather the next chunk against a workspace that sees the
/// committing rows. A chunk is staged only after the one before it is recorded, so checkpoints
/// stay in order. A chunk that has committed is recorded at the next step, not when the
/// chunk after it ends: its rows move to the cache and its staged copies are freed while the
/// next chunk is still gathered, so the two chunks' rows are held together only while a commit
/// runs (docs/throughput-10m.md: with the changes beside it, 10M peaks of 303-365 MB became 252-263).
///
/// When a chunk's commit fails, `ChunkRetryPolicy` decides: the same staged rows are written
/// again (recognized as done if the COMMIT reached the server; the rows are final values, so a
/// second attempt writes what the first would have), or every build forgets what it holds in
/// memory and the failure is recorded and thrown. The chunk being gathered builds on the staged
/// one and stays valid while it is retried.
final class ChunkPipeline {
    let applier: ChunkApplier
    let group: [ActiveBuild]
    let policy: ChunkRetryPolicy
    let bounds: ChunkBounds
    /// Rows a committed chunk must have written before free memory is returned to the system.
    static let rowsWorthReleasing = 10_000
    /// The number of the last chunk staged in this run.
    private(set) var chunkNumber: Int
    private var open: ChunkApplier.OpenChunk?
    private var inFlight: (staged: ChunkApplier.StagedChunk, commit: Task<[Int], any Error>, committed: CommitCompletion)?
    /// Whether the group's cache generations have been serving rows again (judged at each turn).
    private let generationSizing = GenerationSizing()
    /// The step submitted last, handled when the next one arrives.
    private var waiting: [ProjectionEvent]?
    /// Per build, the rows of `waiting` being read (`ReadAhead`).
    private var readAheads: [ReadAhead?] = []

    init(applier: ChunkApplier, group: [ActiveBuild], bounds: ChunkBounds, chunkNumber: Int) {
        self.applier = applier
        self.group = group
        self.policy = ChunkRetryPolicy(group: group)
        self.bounds = bounds
        self.chunkNumber = chunkNumber
    }

    /// Takes a step of events and handles it; with read-ahead, it is handled when the step after
    /// it arrives (or at `finish`), so that its handlers run while the next step's rows are read
    /// (`ReadAhead`).
    func submit(_ events: [ProjectionEvent]) async throws {
        guard !events.isEmpty else { return }
        guard applier.readsAhead else { return try await handle(events, next: nil) }
        guard let step = waiting else {
            waiting = events
            return
        }
        waiting = events
        try await handle(step, next: events)
    }

    /// Handles a step of events into the chunk being gathered; ends the chunk when a bound is
    /// reached. After a failure here nothing more is handled: the step waiting is dropped.
    private func handle(_ events: [ProjectionEvent], next: [ProjectionEvent]?) async throws {
        do {
            try await handleStep(events, next: next)
        } catch {
            waiting = nil
            for ahead in readAheads { await ahead?.discard() }
            readAheads = []
            throw error
        }
    }

    private func handleStep(_ events: [ProjectionEvent], next: [ProjectionEvent]?) async throws {
        let counts: [Int]
        do {
            let taken = readAheads
            readAheads = []
            (counts, readAheads) = try await applier.handle(events, group: group, next: next, readAheads: taken)
        } catch {
            // `handle` dropped every build's overlay: the whole chunk being gathered.
            open = nil
            throw error
        }
        var chunk = open ?? ChunkApplier.OpenChunk(builds: group.count)
        chunk.add(events, counts: counts)
        open = chunk
        for build in group { build.workspace.endStep() }
        // Recording the chunk in flight and turning the cache leave the chunk being gathered as it is.
        let gathered = dirtyBytes
        var waitedForCommit = false
        if let flight = inFlight {
            if flight.committed.isMarked {
                try await settle()
            } else if gathered >= bounds.bytesGatheredWhileCommitting {
                // A commit slower than the gathering: the handlers wait for it rather than hold
                // two whole chunks (the committing chunk's rows stay until it ends). Then this
                // chunk ends at once: MySQL, the slower side, commits it while the handlers
                // gather the next, instead of waiting for them to gather the rest of the bound.
                await applier.hooks.gatheringWaitsForCommit(flight.staged.number, gathered)
                try await settle()
                waitedForCommit = true
            }
        }
        bounds.rowCache.turnIfFull(group.lazy.map(\.workspace), sizing: generationSizing)
        if waitedForCommit || chunk.events >= bounds.maxEvents || gathered >= bounds.maxBytes
            || bounds.maxAge.map({ chunk.opened.duration(to: .now) >= $0 }) ?? false
        {
            try await endChunk()
        }
    }

    /// Changed rows held by the chunk being gathered, over the group.
    private var dirtyBytes: Int { group.reduce(0) { $0 + $1.workspace.overlayBytes } }

    /// Stages the chunk being gathered (once the one in flight is recorded) and starts its commit.
    func endChunk() async throws {
        guard let chunk = open else { return }
        open = nil
        try await settle()
        chunkNumber += 1
        let staged = applier.stage(chunk, number: chunkNumber, group: group, bulkLoadNewRows: bounds.bulkLoadNewRows)
        let applier = applier, writes = staged.writes, lastPosition = staged.lastPosition, number = staged.number
        let committed = CommitCompletion()
        let commit = Task { try await applier.commit(writes, through: lastPosition, number: number, committed: committed) }
        inFlight = (staged, commit, committed)
    }

    /// Handles the step waiting, commits the chunk being gathered and waits for every commit.
    func finish() async throws {
        if let step = waiting {
            waiting = nil
            try await handle(step, next: nil)
        }
        try await endChunk()
        try await settle()
    }

    /// After a failure elsewhere (reading or decoding events): the step waiting is handled, as
    /// it would have been before the failure without the read-ahead; the chunk being gathered is
    /// dropped (its events are applied again from the checkpoint by the next run); the chunk in
    /// flight is committed and recorded, or forgotten.
    func abandon() async {
        if let step = waiting {
            waiting = nil
            try? await handle(step, next: nil)
        }
        for ahead in readAheads { await ahead?.discard() }
        readAheads = []
        if open != nil {
            for build in group { build.workspace.discardOverlay() }
            open = nil
        }
        try? await settle()
    }

    /// Waits for the chunk in flight and records it; a failed commit is written again as long as
    /// the policy allows. Then, after a big chunk, free memory goes back to the system: only
    /// once the staged chunk is gone (`settleInFlight` holds it), or its rows would still be
    /// live and stay resident (measured: half of a chunk's memory was freed after the trim).
    private func settle() async throws {
        guard try await settleInFlight() else { return }
        // Small chunks (a live catch-up) free too little to be worth the walk.
        MemoryRelease.returnFreePages(atMostEvery: bounds.freePagesSpacing)
    }

    /// `settle` without the memory release; true when a chunk was recorded that wrote at least
    /// `rowsWorthReleasing` rows.
    private func settleInFlight() async throws -> Bool {
        guard let (staged, commit, _) = inFlight else { return false }
        inFlight = nil
        var outcome = await commit.result
        var failedAttempts = 0
        while true {
            switch outcome {
            case .success(let written):
                applier.record(staged, written: written)
                try await applier.hooks.afterChunkCommit(staged.number)
                return staged.writes.reduce(0, { $0 + $1.rowCount }) >= Self.rowsWorthReleasing
            case .failure(let error):
                failedAttempts += 1
                guard case .retry(let wait) = policy.decide(error, failedAttempts: failedAttempts) else {
                    // MySQL's outcome is unknown: memory must not claim anything.
                    for build in group { build.workspace.reset() }
                    open = nil
                    await applier.recordFailure(error, group: group)
                    throw error
                }
                do {
                    try await Task.sleep(for: wait)
                    try await applier.reopenIfLost(chunk: staged.number)
                    try await applier.beforeRedo?(staged.number)
                    if try await applier.recordIfCommitted(staged) {
                        try await applier.hooks.afterChunkCommit(staged.number)
                        return false
                    }
                    outcome = .success(try await applier.commit(staged.writes, through: staged.lastPosition, number: staged.number))
                } catch {
                    outcome = .failure(error)
                }
            }
        }
    }
}

/// Marked by a chunk's commit once its transaction committed, so the pipeline can tell between
/// steps, without waiting, that the chunk is ready to be recorded.
final class CommitCompletion: Sendable {
    private let marked = Atomic<Bool>(false)

    func mark() { marked.store(true, ordering: .releasing) }
    var isMarked: Bool { marked.load(ordering: .acquiring) }
}
