import RepriseEngine
import RepriseMySQL
import RepriseProjection
import Synchronization
import Testing

/// A fault a test throws from a hook: not transient, so the rebuild stops (as a crash would).
private struct InjectedStop: Error {}

/// Chunks of a rebuild gather many steps of events and write each changed row once
/// (docs/throughput-io.md): the row-writes counter, crash and resume between steps, and a
/// retried commit of a many-step chunk.
@Suite("Chunks that gather steps (real servers)")
struct ChunkFlushTests {
    /// Steps of 100 events, chunks bounded only by bytes and time (here: never reached).
    private static func gathering(_ options: inout RebuildOptions) {
        options.stepSize = 100
        options.fetchSize = 100
        options.flushBytes = 1 << 30
        options.flushInterval = .seconds(3_600)
    }

    /// A `beforeChunkCommit` hook that holds chunk 1's commit until `waited` yields (the handlers
    /// waited for it), or 30 s have passed.
    private static func holdingChunk1(until waited: AsyncStream<Void>) -> @Sendable (Int) async throws -> Void {
        { chunk in
            guard chunk == 1 else { return }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { for await _ in waited { return } }
                group.addTask { try? await Task.sleep(for: .seconds(30)) }
                await group.next()
                group.cancelAll()
            }
        }
    }

    /// Steps of 100 events; a chunk ends after about 250 changed rows of stream_counts.
    private static func smallChunks(_ options: inout RebuildOptions) {
        gathering(&options)
        options.flushBytes = 60_000
    }

    @Test func aRowChangedInManyStepsIsWrittenOncePerChunk() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 60)
            let commits = Atomic<Int>(0)
            var hooks = RebuildHooks()
            hooks.afterChunkCommit = { _ in commits.add(1, ordering: .relaxed) }
            let gathered = try await environment.engine(Self.gathering).rebuild([.file(try streamCounts())], hooks: hooks)
            let expected = try await expectedStreamCounts(environment)
            try #require(try await environment.rows("stream_counts") == expected)
            // Twenty steps, one chunk: every row written exactly once.
            #expect(commits.load(ordering: .relaxed) == 1)
            #expect(gathered[0].rowsWritten == Int64(expected.count))
            // A fresh build: every row is new to its table and goes by bulk load.
            #expect(gathered[0].rowsLoaded == Int64(expected.count))
            #expect(gathered[0].tableRows["stream_counts"] == Int64(expected.count))

            // The same events in chunks of one step each write a stream's row once per chunk it appears in.
            let perStep = try await environment.engine { Self.gathering(&$0); $0.chunkSize = 100 }.rebuild([.file(try streamCounts())])
            #expect(try await environment.rows("stream_counts") == expected)
            #expect(perStep[0].rowsWritten > gathered[0].rowsWritten)
            // Each row is bulk-loaded by the chunk that first writes it, upserted by the later ones.
            #expect(perStep[0].rowsLoaded == Int64(expected.count))
        }
    }

    /// A chunk whose commit has ended is recorded at the next step, while the chunk after it is
    /// still gathered: its rows go to the cache and its staged copies are freed then, not when
    /// the next chunk ends (the two chunks' rows were held together for a whole chunk).
    @Test func aCommittedChunkIsRecordedWhileTheNextOneIsGathered() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 66)
            let committed = Atomic<Bool>(false)
            let handledWhenRecorded = Mutex<[Int: Int]>([:])
            // Chunks of five steps of 100 events. The handler of event 601 (the second step of
            // chunk 2) waits until chunk 1's transaction has ended.
            let projection = PausingStreamCounts(pauseAt: 601) { committed.load(ordering: .relaxed) }
            var hooks = RebuildHooks()
            hooks.afterCommitStatement = { chunk in if chunk == 1 { committed.store(true, ordering: .relaxed) } }
            hooks.afterChunkCommit = { chunk in
                let handled = projection.handled.value
                handledWhenRecorded.withLock { $0[chunk] = handled }
            }
            let results = try await environment.engine { Self.gathering(&$0); $0.chunkSize = 500 }.rebuild([.code(projection)], hooks: hooks)
            #expect(results[0].swapped)
            #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            // Recorded after the step of events 501-600 or 601-700, not once chunk 2 ended (1,000).
            let recorded = handledWhenRecorded.withLock { $0 }
            let first = try #require(recorded[1])
            #expect(first > 500 && first <= 700, "chunk 1 recorded after \(first) events")
        }
    }

    /// A commit slower than the gathering: once the chunk being gathered holds three quarters of
    /// the byte bound, the handlers wait for the commit, so two whole chunks are never held at
    /// once (docs/throughput-10m.md: the slow commits made a long rebuild's highest resident sizes).
    @Test func theHandlersWaitForASlowCommitOnceTheNextChunkHoldsThreeQuartersOfTheBound() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 67)
            let waits = Mutex<[(chunk: Int, bytes: Int)]>([])
            let (waited, signal) = AsyncStream<Void>.makeStream()
            var hooks = RebuildHooks()
            hooks.gatheringWaitsForCommit = { chunk, bytes in
                waits.withLock { $0.append((chunk, bytes)) }
                signal.yield()
            }
            // Chunk 1's commit holds until the handlers wait for it. Without the wait they would
            // gather chunk 2 to its whole bound and wait only to stage it: then the commit goes
            // on after 30 s, and the test fails below.
            hooks.beforeChunkCommit = Self.holdingChunk1(until: waited)
            let results = try await environment.engine(Self.smallChunks).rebuild([.file(try streamCounts())], hooks: hooks)
            signal.finish()
            #expect(results[0].swapped)
            #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            let first = try #require(waits.withLock { $0.first }, "the handlers never waited for chunk 1's commit")
            #expect(first.chunk == 1)
            // The bound is 60,000 bytes; three quarters of it: 45,000.
            #expect(first.bytes >= 45_000, "waited with \(first.bytes) bytes gathered")
        }
    }

    /// A chunk that waited for the commit before it ends as soon as that commit ends: MySQL
    /// starts its commit at once instead of waiting while the handlers gather the rest of the
    /// bound, and two chunks held together stay within twice three quarters of it.
    @Test func aChunkThatWaitedForACommitEndsWhenThatCommitEnds() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 68)
            let mysql = environment.mysql
            let handledAtWait = Mutex<Int?>(nil)
            let appliedThroughChunk2 = Mutex<Int64?>(nil)
            let (waited, signal) = AsyncStream<Void>.makeStream()
            let projection = PausingStreamCounts(pauseAt: .max) { true }
            var hooks = RebuildHooks()
            hooks.gatheringWaitsForCommit = { chunk, _ in
                if chunk == 1 { handledAtWait.withLock { $0 = projection.handled.value } }
                signal.yield()
            }
            hooks.beforeChunkCommit = Self.holdingChunk1(until: waited)
            hooks.afterChunkCommit = { chunk in
                guard chunk == 2 else { return }
                let applied = try await mysql.query("SELECT events_applied FROM reprise_builds").int64(0, 0)
                appliedThroughChunk2.withLock { $0 = applied }
            }
            let results = try await environment.engine(Self.smallChunks).rebuild([.code(projection)], hooks: hooks)
            signal.finish()
            #expect(results[0].swapped)
            #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            let atWait = try #require(handledAtWait.withLock { $0 }, "the handlers never waited for chunk 1's commit")
            // Chunk 2 holds exactly the events handled when the handlers waited: it was staged
            // right after chunk 1 was recorded, not gathered on to the whole bound.
            #expect(appliedThroughChunk2.withLock { $0 } == Int64(atWait))
        }
    }

    /// The shipped samples built with every row upserted and with new rows bulk-loaded end in
    /// the same tables, value for value.
    @Test func bulkLoadedRowsEqualUpsertedRows() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 3_000, seed: 64)
            let samples = try RebuildEnvironment.samples()
            let tables = samples.flatMap(\.tables).map(\.name).sorted()
            let upserted = try await environment.engine { Self.smallChunks(&$0); $0.bulkLoad = false }.rebuild(samples.map { .file($0) })
            #expect(upserted.allSatisfy { $0.rowsLoaded == 0 })
            var expected: [String: [[String]]] = [:]
            for table in tables { expected[table] = try await environment.rows(table) }
            let loaded = try await environment.engine(Self.smallChunks).rebuild(samples.map { .file($0) })
            #expect(loaded.allSatisfy { $0.rowsLoaded > 0 })
            for table in tables {
                #expect(try await environment.rows(table) == expected[table], "\(table)")
            }
        }
    }

    /// A row cache of ten rows: rows evicted between steps are read back in one query per table
    /// per step (never one per row), and keys never written cost no query. (`stream_counts` is a
    /// merge table, never read: read back here with merge tables off.)
    @Test func aSmallRowCacheReadsEvictedRowsBackPerStepNotPerRow() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 65)
            let results = try await environment.engine { Self.smallChunks(&$0); $0.rowCacheLimit = 10; $0.mergeTables = false }
                .rebuild([.file(try streamCounts())])
            try #require(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            #expect(results[0].rowReadQueries > 0, "evicted rows were read back")
            #expect(results[0].rowReadQueries <= 20, "at most one query per step of 100 events: \(results[0].rowReadQueries)")
        }
    }

    @Test func chunksEndAtTheBoundOfChangedRows() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 61)
            let commits = Atomic<Int>(0)
            var hooks = RebuildHooks()
            hooks.afterChunkCommit = { _ in commits.add(1, ordering: .relaxed) }
            let results = try await environment.engine(Self.smallChunks).rebuild([.file(try streamCounts())], hooks: hooks)
            try #require(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            let chunks = commits.load(ordering: .relaxed)
            #expect(chunks > 1, "the byte bound ended chunks")
            #expect(chunks < 20, "chunks gathered several steps of 100 events")
            #expect(results[0].eventsApplied == 2_000)
        }
    }

    /// Stopped right after chunk 1 committed, while the next chunk's steps were being gathered
    /// (and, second case, inside chunk 2's transaction): the next run resumes from chunk 1's
    /// checkpoint, and nothing is lost or applied twice.
    @Test(arguments: ["after-commit", "before-commit"])
    func aStopBetweenChunksResumesWithNothingLostOrDoubled(point: String) async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 62)
            let definition = try streamCounts()
            let handled = try #require(try await environment.handledEventCount(definition))
            var hooks = RebuildHooks()
            if point == "after-commit" {
                hooks.afterChunkCommit = { chunk in if chunk == 1 { throw InjectedStop() } }
            } else {
                hooks.beforeChunkCommit = { chunk in if chunk == 2 { throw InjectedStop() } }
            }
            await #expect(throws: InjectedStop.self) {
                try await environment.engine(Self.smallChunks).rebuild([.file(definition)], hooks: hooks)
            }
            let survived = try await BuildCheckpoint.only(environment)
            try #require(survived.state == "building")
            try #require(survived.eventsApplied > 0 && survived.eventsApplied < handled, "chunk 1 committed: \(survived.eventsApplied)")
            // The green table holds chunk 1's rows exactly: the later steps' rows never reached it.
            let green = try await environment.mysql.query("SELECT COALESCE(SUM(events), 0) FROM stream_counts__\(survived.buildID)").int64(0, 0)
            #expect(green == survived.eventsApplied)

            let resumed = try await environment.engine(Self.smallChunks).rebuild([.file(definition)])
            try #require(resumed[0].resumed)
            #expect(resumed[0].eventsApplied == handled - survived.eventsApplied)
            try #require(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            let recorded = try await environment.mysql.query("SELECT events_applied FROM reprise_builds WHERE state = 'active'").int64(0, 0)
            #expect(recorded == handled)
        }
    }

    /// A many-step chunk whose transaction fails (rolled back) or whose COMMIT answer is lost is
    /// written again from its staged rows, or recognized as committed: counted once either way.
    @Test(arguments: ["rolled-back", "answer-lost"])
    func aFailedCommitOfAManyStepChunkIsWrittenOnce(fault: String) async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 63)
            let fired = Atomic<Int>(0)
            let lost = MySQLError(code: .connectionLost, message: "the connection dropped (fault test)")
            var hooks = RebuildHooks()
            if fault == "rolled-back" {
                hooks.beforeChunkCommit = { chunk in if chunk == 2, fired.add(1, ordering: .relaxed).oldValue == 0 { throw lost } }
            } else {
                hooks.afterCommitStatement = { chunk in if chunk == 2, fired.add(1, ordering: .relaxed).oldValue == 0 { throw lost } }
            }
            let definition = try streamCounts()
            let results = try await environment.engine(Self.smallChunks).rebuild([.file(definition)], hooks: hooks)
            try #require(fired.load(ordering: .relaxed) >= 1, "the fault fired")
            try #require(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            let handled = try await environment.handledEventCount(definition)
            #expect(results[0].eventsApplied == handled)
            let recorded = try await environment.mysql.query("SELECT events_applied FROM reprise_builds WHERE state = 'active'").int64(0, 0)
            #expect(recorded == handled)
        }
    }
}

/// `stream_counts` in Swift that counts the events it handles; at event `pauseAt` it waits
/// until `resume` says so.
private struct PausingStreamCounts: Projection {
    private let counts = StreamCountsInSwift()
    let handled = HandledEvents()
    let pauseAt: Int
    let resume: @Sendable () -> Bool

    init(pauseAt: Int, resume: @escaping @Sendable () -> Bool) {
        self.pauseAt = pauseAt
        self.resume = resume
    }

    var definition: ProjectionDefinition { counts.definition }

    func handle(_ event: ProjectionEvent, rows: ProjectionRows) async throws {
        if handled.add() == pauseAt { try await waitUntil("the pause at event \(pauseAt) to end") { resume() } }
        try await counts.handle(event, rows: rows)
    }
}

/// Events handled so far, readable from hooks.
final class HandledEvents: Sendable {
    private let count = Atomic<Int>(0)

    /// Counts one more event; returns the count.
    func add() -> Int { count.add(1, ordering: .relaxed).newValue }
    var value: Int { count.load(ordering: .relaxed) }
}
