/// The fixed hash slots live partitions are made of.
///
/// The relay stamps every message with the slot of its stream (`reprise-slot` header), computed in
/// PostgreSQL; live partition `p` of `N` owns a contiguous range of slots and reads the events
/// whose partition key falls in that range. Because the slot count is fixed, relays never need to
/// know how many live partitions consumers use, and `N` can change without touching the relay.
public enum PartitionSlots {
    public static let count = 256

    /// The slots of live partition `number` of `partitions` (1...`count` partitions; never empty).
    public static func range(partition number: Int, of partitions: Int) -> ClosedRange<Int> {
        precondition((1...count).contains(partitions) && (0..<partitions).contains(number), "partition \(number) of \(partitions)")
        return (number * count / partitions)...((number + 1) * count / partitions - 1)
    }

    /// The partition (of `partitions`) that owns `slot`.
    public static func partition(ofSlot slot: Int, among partitions: Int) -> Int {
        // Inverse of `range`: the last partition whose first slot is at or below `slot`.
        var number = slot * partitions / count
        while number + 1 < partitions, range(partition: number + 1, of: partitions).lowerBound <= slot { number += 1 }
        while range(partition: number, of: partitions).lowerBound > slot { number -= 1 }
        return number
    }

    /// The SQL for the slot of a text expression, the same hash partition filters use.
    public static func sql(of expression: String) -> String {
        "(hashtext(coalesce(\(expression), '')) & 2147483647) % \(count)"
    }
}
