@testable import RepriseEngine
import RepriseProjection
import Testing

/// The row cache bounded in bytes over the projections read together (docs/throughput-memory.md).
@Suite("Row cache bounded in bytes (no server)")
struct RowCacheBudgetTests {
    let table = TableDefinition(
        name: "t", columns: [ColumnDefinition(name: "id", type: .bigint, nullable: false), ColumnDefinition(name: "n", type: .bigint)],
        primaryKey: ["id"])

    private func key(_ id: Int64) -> RowKey { RowKey([.int(id)]) }
    private func row(_ id: Int64) -> [ProjectionValue] { [.int(id), .int(id * 10)] }
    /// The most a row of these tests takes in the cache (ids past 255 take their full 8 bytes).
    private var rowBytes: Int { RowGeneration.cachedBytes(key(1_000), row(1_000)) }

    /// Commits rows `ids` as one chunk, then ends the step as the pipeline does. By default the
    /// generations hold their whole share (as once their rows are used again): the budget's tests.
    private func commit(
        _ ids: some Sequence<Int64>, _ workspace: RowWorkspace, _ budget: RowCacheBudget, _ sizing: GenerationSizing = GenerationSizing(halvings: 0)
    ) {
        for id in ids { workspace.put("t", key(id), row(id)) }
        workspace.commitOverlay()
        workspace.endStep()
        budget.turnIfFull([workspace], sizing: sizing)
    }

    @Test func rowsPastTheBoundAreDroppedOldestFirst() {
        let workspace = RowWorkspace(tables: [table], freshTables: false, cacheLimit: .max)
        let budget = RowCacheBudget(bytes: 100 * rowBytes)
        for chunk in Int64(0)..<10 { commit(chunk * 25..<(chunk + 1) * 25, workspace, budget) }
        // 250 rows committed, 100 rows' worth of bytes allowed.
        #expect(workspace.cachedBytes <= 100 * rowBytes)
        if case .present(let newest) = workspace.lookup("t", key(249)) { #expect(newest == row(249)) } else { Issue.record("the newest row was dropped") }
        if case .unknown = workspace.lookup("t", key(0)) {} else { Issue.record("the oldest row should have been dropped") }
        let kept = (Int64(0)..<250).filter { if case .present = workspace.lookup("t", key($0)) { true } else { false } }
        #expect(kept.count >= 50 && kept.count <= 100, "\(kept.count) rows kept")
        // What is kept is the most recent rows: no kept row is older than a dropped one.
        #expect(kept == Array((kept.first ?? 0)..<250))
    }

    @Test func theWrittenKeyFiltersTakeTheirShareOfTheBudget() {
        // A fresh build's tables have a written-key filter (1 MiB to start); with a budget of
        // 4 MiB, the cached rows may take only what the filter leaves.
        let workspace = RowWorkspace(tables: [table], freshTables: true, cacheLimit: .max)
        let budget = RowCacheBudget(bytes: 4 << 20)
        #expect(workspace.filterBytes == 1 << 20)
        var peak = 0
        for chunk in Int64(0)..<2_000 {
            commit(chunk * 25..<(chunk + 1) * 25, workspace, budget)
            peak = max(peak, workspace.cachedBytes + workspace.filterBytes)
        }
        // Rows and filter together stay within the budget (give or take the last chunk).
        #expect(peak <= (4 << 20) + 25 * rowBytes, "\(peak) bytes held for a budget of \(4 << 20)")
        #expect(peak >= 3 << 20, "the cache should use what the filter leaves, held \(peak)")
    }

    @Test func rowsInUseSurviveTurns() {
        let workspace = RowWorkspace(tables: [table], freshTables: false, cacheLimit: .max)
        let budget = RowCacheBudget(bytes: 40 * rowBytes)
        commit([7], workspace, budget)
        for chunk in Int64(1)...20 {
            _ = workspace.lookup("t", key(7))  // used every chunk
            commit(chunk * 100..<chunk * 100 + 10, workspace, budget)
        }
        if case .present(let hot) = workspace.lookup("t", key(7)) { #expect(hot == row(7)) } else { Issue.record("a row used every chunk was dropped") }
        if case .unknown = workspace.lookup("t", key(100)) {} else { Issue.record("a row unused for many chunks should be dropped") }
    }

    @Test func dirtyAndCommittingRowsAreNeverDropped() {
        let workspace = RowWorkspace(tables: [table], freshTables: false, cacheLimit: .max)
        let budget = RowCacheBudget(bytes: 4 * rowBytes)
        for id in Int64(0)..<50 { workspace.put("t", key(id), row(id)) }
        workspace.stageOverlay()  // committing
        for id in Int64(50)..<100 { workspace.put("t", key(id), row(id)) }  // the chunk being gathered
        workspace.endStep()
        budget.turnIfFull([workspace], sizing: GenerationSizing(halvings: 0))
        for _ in 0..<3 { workspace.turnGeneration() }
        for id in Int64(0)..<100 {
            guard case .present(let found) = workspace.lookup("t", key(id)) else { Issue.record("row \(id) was dropped before it was written"); return }
            #expect(found == row(id))
        }
        workspace.commitPending()
        budget.turnIfFull([workspace], sizing: GenerationSizing(halvings: 0))
        workspace.turnGeneration()
        workspace.turnGeneration()
        // Rows new to MySQL stay as the fresh rows until the next chunk is recorded, whatever the turns.
        #expect(!workspace.isUnknown(0, key(0)), "a fresh row was dropped before the next chunk was recorded")
        workspace.stageOverlay()
        workspace.commitPending()
        // Committed rows may go now; the last chunk's stay.
        if case .unknown = workspace.lookup("t", key(0)) {} else { Issue.record("a committed row past the bound should be dropped") }
        if case .present = workspace.lookup("t", key(99)) {} else { Issue.record("a row of the last chunk was dropped") }
    }

    @Test func newRowsStayOneChunkUnlessUsedAndNoCopyOutlivesANewerOne() {
        let workspace = RowWorkspace(tables: [table], freshTables: false, cacheLimit: .max)
        // Chunk 1: rows 0..<10, which MySQL did not hold (looked up: unknown, read back: absent).
        workspace.remember("t", fetched: [:], requested: Set((0..<10).map(key)))
        for id in Int64(0)..<10 { workspace.put("t", key(id), row(id)) }
        workspace.stageOverlay()
        workspace.commitPending()
        #expect(workspace.freshBytes > 0, "new rows are held as the fresh rows")
        // Chunk 2 uses row 3 (it moves to the generations) and rewrites row 4 with a new value.
        guard case .present = workspace.lookup("t", key(3)) else { Issue.record("a fresh row is not found"); return }
        if case .present = workspace.lookup("t", key(4)) {} else { Issue.record("a fresh row is not found") }
        workspace.put("t", key(4), [.int(4), .int(-4)])
        workspace.stageOverlay()
        workspace.commitPending()
        // The rows of chunk 1 not used since are dropped; the used one and the rewritten one stay.
        if case .unknown = workspace.lookup("t", key(5)) {} else { Issue.record("an unused fresh row should be dropped at the next chunk") }
        if case .present(let used) = workspace.lookup("t", key(3)) { #expect(used == row(3)) } else { Issue.record("a used row was dropped") }
        if case .present(let rewritten) = workspace.lookup("t", key(4)) { #expect(rewritten == [.int(4), .int(-4)]) } else { Issue.record("the rewritten row was dropped") }
        // Turns drop the generations; no older copy of row 4 may come back.
        workspace.turnGeneration()
        workspace.turnGeneration()
        workspace.stageOverlay()
        workspace.commitPending()
        if case .unknown = workspace.lookup("t", key(4)) {} else { Issue.record("row 4 should be dropped, not an older copy found") }
    }

    @Test func aNewTablesRowDroppedWithItsFreshRowsIsNeverTakenForAbsent() {
        // A build's own table starts complete (a miss means absent) until a row of it is dropped.
        let workspace = RowWorkspace(tables: [table], freshTables: true, cacheLimit: .max)
        for id in Int64(0)..<5 { workspace.put("t", key(id), row(id)) }
        workspace.stageOverlay()
        workspace.commitPending()
        for id in Int64(5)..<10 { workspace.put("t", key(id), row(id)) }
        workspace.stageOverlay()
        workspace.commitPending()  // rows 0..<5, unused, are dropped here
        guard case .unknown = workspace.lookup("t", key(2)) else { Issue.record("a row MySQL holds was taken for absent or kept"); return }
        if case .absent = workspace.lookup("t", key(1_000)) {} else { Issue.record("a key never written is absent (the filter says so)") }
    }

    @Test func aMissAfterEvictionTakesTheRowReadBack() {
        let workspace = RowWorkspace(tables: [table], freshTables: true, cacheLimit: .max)
        let budget = RowCacheBudget(bytes: 10 * rowBytes)
        commit(0..<20, workspace, budget)
        commit(20..<40, workspace, budget)
        guard case .unknown = workspace.lookup("t", key(3)) else { Issue.record("row 3 should have been evicted"); return }
        // The build wrote key 3, so the filter cannot say absent: the chunk reads it and remembers it.
        workspace.remember("t", fetched: [key(3): row(3)], requested: [key(3), key(1_000)])
        if case .present(let back) = workspace.lookup("t", key(3)) { #expect(back == row(3)) } else { Issue.record("the row read back is not known") }
        if case .absent = workspace.lookup("t", key(1_000)) {} else { Issue.record("a key read and not found is absent") }
    }

    @Test func theBoundIsSharedByTheGroupAndAQuietProjectionAgesOut() {
        let busy = RowWorkspace(tables: [table], freshTables: false, cacheLimit: .max)
        let quiet = RowWorkspace(tables: [table], freshTables: false, cacheLimit: .max)
        let budget = RowCacheBudget(bytes: 60 * rowBytes)
        let sizing = GenerationSizing(halvings: 0)
        for id in Int64(0)..<20 { quiet.put("t", key(id), row(id)) }
        quiet.commitOverlay()
        for chunk in Int64(1)...10 {
            for id in chunk * 100..<chunk * 100 + 20 { busy.put("t", key(id), row(id)) }
            busy.commitOverlay()
            budget.turnIfFull([busy, quiet], sizing: sizing)
            #expect(busy.cachedBytes + quiet.cachedBytes <= 60 * rowBytes + 20 * rowBytes)
        }
        #expect(quiet.cachedBytes == 0, "the quiet projection's unused rows aged out")
        if case .present = busy.lookup("t", key(1_000)) {} else { Issue.record("the busy projection's newest row was dropped") }
    }

    // MARK: the generations sized by use (GenerationSizing, DroppedKeys)

    @Test func rowsNeverUsedAgainKeepTheGenerationsAtAnEighthFromTheStart() {
        let workspace = RowWorkspace(tables: [table], freshTables: false, cacheLimit: .max)
        let budget = RowCacheBudget(bytes: 20_000 * rowBytes)
        let sizing = GenerationSizing()
        var held: [Int] = []
        for chunk in Int64(0)..<80 {
            commit(chunk * 2_000..<(chunk + 1) * 2_000, workspace, budget, sizing)
            held.append(workspace.cachedBytes)
        }
        #expect(sizing.halvings == GenerationSizing.maxHalvings)
        // Young and old together under a quarter of the budget (each turn at half the eighth),
        // plus the chunk committed last: from the first chunk on, not only once judged.
        let most = held.max() ?? 0
        #expect(most <= 20_000 * rowBytes / 4 + 2_000 * rowBytes, "held \(most) bytes at most")
        // With the whole share the cache fills its budget: the test would not tell the difference otherwise.
        let whole = RowWorkspace(tables: [table], freshTables: false, cacheLimit: .max)
        var wholePeak = 0
        for chunk in Int64(0)..<80 {
            commit(chunk * 2_000..<(chunk + 1) * 2_000, whole, budget)  // a sizing with the whole share each turn
            wholePeak = max(wholePeak, whole.cachedBytes)
        }
        #expect(wholePeak >= 20_000 * rowBytes / 2, "a cache with its whole share should hold over half its budget, held \(wholePeak)")
    }

    @Test func rowsUsedAgainTwoChunksLaterGrowTheGenerationsToTheWholeShareAndAreThenKept() {
        let workspace = RowWorkspace(tables: [table], freshTables: false, cacheLimit: .max)
        let budget = RowCacheBudget(bytes: 20_000 * rowBytes)
        let sizing = GenerationSizing()
        var readsByChunk: [Int] = []
        for chunk in Int64(0)..<80 {
            // Every chunk uses again the rows of the chunk two before: past what the small
            // generations hold, so only the rows read back that they dropped tell of it.
            var reads = 0
            if chunk >= 2 {
                var requested = Set<RowKey>()
                for id in (chunk - 2) * 2_000..<(chunk - 1) * 2_000 {
                    if case .unknown = workspace.lookup("t", key(id)) { requested.insert(key(id)) }
                }
                reads = requested.count
                // Read back from MySQL, as the prefetch does.
                workspace.remember("t", fetched: Dictionary(uniqueKeysWithValues: requested.map { ($0, row(0)) }), requested: requested)
            }
            readsByChunk.append(reads)
            commit(chunk * 2_000..<(chunk + 1) * 2_000, workspace, budget, sizing)
        }
        #expect(sizing.halvings == 0)
        let firstWithoutReads = readsByChunk.indices.dropFirst(2).first { readsByChunk[$0] == 0 } ?? readsByChunk.count
        #expect(firstWithoutReads <= 10, "the whole share should come back within a few turns: \(readsByChunk.prefix(12))")
        #expect(readsByChunk[firstWithoutReads...].allSatisfy { $0 == 0 }, "rows used two chunks later should stay cached once grown: \(readsByChunk)")
    }

    @Test func theGenerationsStartAtAnEighthAndComeBackWholeAtOnceWhenTheirRowsServe() {
        let sizing = GenerationSizing()
        #expect(sizing.halvings == GenerationSizing.maxHalvings, "an eighth until a turn says otherwise")
        sizing.judge(oldRows: 999, usedAgain: 500)
        #expect(sizing.halvings == GenerationSizing.maxHalvings, "too few rows to judge")
        sizing.judge(oldRows: 10_000, usedAgain: 100)
        #expect(sizing.halvings == GenerationSizing.maxHalvings, "1% used again: between the two shares it stays")
        sizing.judge(oldRows: 10_000, usedAgain: 101)
        #expect(sizing.halvings == 0, "over 1%: the whole share at once")
        sizing.judge(oldRows: 10_000, usedAgain: 10)
        #expect(sizing.halvings == 0, "0.1% used again: kept")
        sizing.judge(oldRows: 10_000, usedAgain: 9)
        #expect(sizing.halvings == GenerationSizing.maxHalvings, "under 0.1%: an eighth")
    }

    @Test func droppedKeysAreKnownPerTableForEightToSixteenTurns() {
        let generation = RowGeneration(tables: 2)
        for id in Int64(0)..<1_000 { generation.store(0, key(id), row(id)) }
        var dropped = DroppedKeys()
        dropped.note(generation, tables: 2)
        #expect((Int64(0)..<1_000).allSatisfy { dropped.mightContain(0, key($0)) }, "a Bloom filter has no false negatives")
        let otherTable = (Int64(0)..<1_000).filter { dropped.mightContain(1, key($0)) }.count
        let otherKeys = (Int64(5_000)..<6_000).filter { dropped.mightContain(0, key($0)) }.count
        #expect(otherTable < 50 && otherKeys < 50, "about 2% false positives: \(otherTable), \(otherKeys)")
        // Later turns drop other keys; the first ones are forgotten once two filters have filled after them.
        let later = RowGeneration(tables: 2)
        for id in Int64(10_000)..<10_100 { later.store(0, key(id), row(id)) }
        for _ in 1..<(2 * DroppedKeys.turnsPerFilter) { dropped.note(later, tables: 2) }
        #expect((Int64(0)..<1_000).allSatisfy { dropped.mightContain(0, key($0)) }, "still within sixteen turns")
        dropped.note(later, tables: 2)
        let remembered = (Int64(0)..<1_000).filter { dropped.mightContain(0, key($0)) }.count
        #expect(remembered < 50, "forgotten after sixteen turns, \(remembered) still found")
        dropped.removeAll()
        #expect(!dropped.mightContain(0, key(10_000)))
    }
}
