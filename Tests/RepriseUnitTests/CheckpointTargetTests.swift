@testable import RepriseEngine
import Testing

@Suite("Checkpoint targets (no server)")
struct CheckpointTargetTests {
    private let build = BuildRecord(
        buildID: 7, projection: "orders", version: 1, definitionHash: "h", state: .building, baseSnapshot: nil,
        targetSnapshot: "100:100:", roundPosition: 40, eventsApplied: 40, rounds: 0)

    @Test func aRecordNamesTheRowThatKeepsItsProgress() {
        #expect(build.checkpoint == .build(build))
        #expect(build.checkpoint.table == BuildRegistry.table)

        var partitioned = build
        partitioned.partition = BuildPartition(number: 2, count: 4, state: .running, roundPosition: 40, eventsApplied: 9)
        #expect(partitioned.checkpoint == .partition(partitioned, number: 2))
        #expect(partitioned.checkpoint.table == PartitionLedger.rebuildTable)

        var live = build
        let partition = LivePartition(number: 1, count: 3, baseSnapshot: nil, targetSnapshot: "100:100:", roundPosition: 40, eventsApplied: 0)
        live.livePartition = partition
        #expect(live.checkpoint == .livePartition(live, partition))
        #expect(live.checkpoint.table == PartitionLedger.liveTable)
    }

    @Test func theRowConditionGuardsTheRoundItBelievesIn() {
        #expect(build.checkpoint.row.condition == "build_id = ? AND target_snapshot = ?")
        #expect(build.checkpoint.row.parameters == [.int(7), .string("100:100:")])
        var live = build
        live.livePartition = LivePartition(number: 1, count: 3, baseSnapshot: nil, targetSnapshot: "100:100:", roundPosition: 40, eventsApplied: 0)
        #expect(live.checkpoint.row.parameters == [.int(7), .int(1), .string("100:100:")])
    }

    @Test func onlyBuildsAndLivePartitionsHaveRoundsOfTheirOwn() {
        #expect(throws: Never.self) { try build.checkpoint.requireRounds() }
        var partitioned = build
        partitioned.partition = BuildPartition(number: 2, count: 4, state: .running, roundPosition: 40, eventsApplied: 9)
        #expect(throws: EngineError.self) { try partitioned.checkpoint.requireRounds() }
    }
}
