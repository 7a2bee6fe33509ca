@testable import RepriseEngine
import RepriseProjection
import Testing

@Suite("Row workspace (no server)")
struct RowWorkspaceTests {
    let table = TableDefinition(
        name: "t", columns: [ColumnDefinition(name: "id", type: .bigint, nullable: false), ColumnDefinition(name: "n", type: .bigint)],
        primaryKey: ["id"])

    private func key(_ id: Int64) -> RowKey { RowKey([.int(id)]) }

    @Test func aKeyFilterNeverForgetsAnInsertedKey() {
        var filter = KeyFilter()
        for id in 0..<50_000 { filter.insert(key(Int64(id))) }
        #expect((0..<50_000).allSatisfy { filter.mightContain(key(Int64($0))) })
        let falsePositives = (50_000..<60_000).filter { filter.mightContain(key(Int64($0))) }.count
        #expect(falsePositives < 100, "\(falsePositives) false positives in 10,000")
    }

    @Test func anAnswerGivenInAChunkDoesNotChangeWithinIt() {
        let workspace = RowWorkspace(tables: [table], freshTables: true, cacheLimit: 4)
        workspace.put("t", key(1), [.int(1), .int(1)])
        workspace.commitOverlay()
        workspace.put("t", key(2), [.int(2), .int(1)])
        workspace.put("t", key(3), [.int(3), .int(1)])
        workspace.commitOverlay()  // the cache turned a generation: the table is no longer complete
        guard case .absent = workspace.lookup("t", key(99)) else { Issue.record("a key never written is absent"); return }
        // Many writes later in the same chunk may make the filter say "maybe" for 99: the answer stays.
        for id in 1_000..<200_000 { workspace.put("t", key(Int64(id)), [.int(Int64(id)), .null]) }
        if case .absent = workspace.lookup("t", key(99)) {} else { Issue.record("the answer for 99 changed within the chunk") }
    }

    @Test func hotRowsSurviveGenerationsAndColdOnesAreAskedFor() {
        let workspace = RowWorkspace(tables: [table], freshTables: false, cacheLimit: 10)
        workspace.put("t", key(1), [.int(1), .int(7)])
        workspace.commitOverlay()
        for round in 0..<5 {
            for id in 0..<6 { workspace.put("t", key(Int64(100 + round * 10 + id)), [.int(0), .null]) }
            _ = workspace.lookup("t", key(1))  // in use: promoted every chunk
            workspace.commitOverlay()
        }
        if case .present(let row) = workspace.lookup("t", key(1)) { #expect(row[1] == .int(7)) } else { Issue.record("the hot row was evicted") }
        if case .unknown = workspace.lookup("t", key(100)) {} else { Issue.record("a cold row should be asked for again") }
    }
}
