/// What lookups mean for splitting a projection's events between partitions.
public extension ProjectionDefinition {
    /// Why this projection cannot be split into partitions because of a lookup, or nil.
    ///
    /// A partition applies only its own events. A lookup into a row that an event of another
    /// partition writes would read the row before (or after) its writer got there, depending on
    /// how fast each partition runs: the result would not be that of one in-order pass. A lookup
    /// is safe only when its key is the event's partition key itself: the row then belongs to the
    /// same partition (every event that writes it carries the same key).
    var partitionUnsafeLookup: String? {
        for eventType in handlers.keys.sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let partitionField = partitionKey?[eventType]
            if let reason = Self.unsafeLookup(in: handlers[eventType] ?? [], path: "handlers.\(eventType)", partitionField: partitionField) {
                return reason
            }
        }
        return nil
    }

    private static func unsafeLookup(in operations: [RowOperation], path: String, partitionField: FieldReference?) -> String? {
        for (index, operation) in operations.enumerated() {
            let here = "\(path)[\(index)]"
            switch operation {
            case .lookup(let lookup):
                let key = lookup.key.map { "\($0.column): \($0.value)" }.joined(separator: ", ")
                guard let partitionField else {
                    return "lookup '\(lookup.alias)' (\(here)) reads table \(lookup.table) by { \(key) }, and this event type has no partition key"
                }
                if lookup.key.count == 1, lookup.key[0].value == .field(partitionField) { continue }
                return "lookup '\(lookup.alias)' (\(here)) reads table \(lookup.table) by { \(key) }, not by the partition key \(partitionField): "
                    + "an event of another partition may write that row, and this partition could read it before its writer got there"
            case .forEach(_, let nested):
                if let reason = unsafeLookup(in: nested, path: "\(here).do", partitionField: partitionField) { return reason }
            default:
                continue
            }
        }
        return nil
    }
}
