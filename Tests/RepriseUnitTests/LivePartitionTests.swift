import RepriseEngine
import RepriseEventSource
import RepriseLive
import Testing

@Suite("Live partitions: slots and shares")
struct LivePartitionTests {
    @Test(arguments: [1, 2, 3, 4, 7, 16, 100, 255, 256])
    func partitionsCoverEverySlotOnceInOrder(partitions: Int) {
        var next = 0
        for number in 0..<partitions {
            let range = PartitionSlots.range(partition: number, of: partitions)
            #expect(range.lowerBound == next, "partition \(number) of \(partitions) starts where the previous ended")
            #expect(!range.isEmpty)
            for slot in range { #expect(PartitionSlots.partition(ofSlot: slot, among: partitions) == number) }
            next = range.upperBound + 1
        }
        #expect(next == PartitionSlots.count)
    }

    @Test func partitionsDifferInSizeByOneSlotAtMost() {
        let sizes = (0..<3).map { PartitionSlots.range(partition: $0, of: 3).count }
        #expect(sizes.max()! - sizes.min()! <= 1)
        #expect(sizes.reduce(0, +) == 256)
    }

    @Test func fairShareSplitsPartitionsAmongMembersAndHonoursTheCap() {
        #expect(LivePartitions.fairShare(partitions: 3, members: 1, maxPartitions: nil) == 3)
        #expect(LivePartitions.fairShare(partitions: 3, members: 2, maxPartitions: nil) == 2)
        #expect(LivePartitions.fairShare(partitions: 3, members: 3, maxPartitions: nil) == 1)
        #expect(LivePartitions.fairShare(partitions: 3, members: 5, maxPartitions: nil) == 1)
        #expect(LivePartitions.fairShare(partitions: 8, members: 3, maxPartitions: 2) == 2)
        #expect(LivePartitions.fairShare(partitions: 8, members: 0, maxPartitions: nil) == 8)
    }
}
