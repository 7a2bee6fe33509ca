import Foundation
import RepriseProjection

/// Rows sorted by primary key before a bulk load. InnoDB then fills the pages of a key range in
/// turn instead of descending its tree at a random place for every row (the workspace's
/// dictionaries hand rows over in hash order). Measured on the 10M store's product_sales_daily
/// (4.9 million rows, a chunk's 98,000 new rows of 87 days): 0.46-0.66 s of LOAD DATA sorted,
/// 1.03-1.56 s shuffled (docs/throughput-10m.md). The order only has to be close to MySQL's for
/// that; nothing depends on it being exact.
extension ColumnValues {
    /// `rows` in the order of the key columns at `keyIndexes`: strings by their UTF-8 bytes (the
    /// tables' binary collation), numbers by value, NULL first. Rows are ordered by the first 16
    /// bytes of each of the first two key columns (an `OrderPrefix`), not by whole values: keys
    /// that share those bytes lie next to each other in MySQL's order too, so the pages a load
    /// touches are the same; and sorting 100,000 rows by whole values cost the client about 6 µs
    /// per row (docs/throughput-10m.md), sorting their prefixes about a tenth of a µs.
    static func inKeyOrder(_ rows: [[ProjectionValue]], keyIndexes: [Int]) -> [[ProjectionValue]] {
        guard rows.count > 1, let first = keyIndexes.first else { return rows }
        let second = keyIndexes.count > 1 ? keyIndexes[1] : nil
        var order: [OrderPrefix] = []
        order.reserveCapacity(rows.count)
        for (index, row) in rows.enumerated() {
            let (a, b) = orderWords(row[first])
            let (c, d) = second.map { orderWords(row[$0]) } ?? (0, 0)
            order.append(OrderPrefix(a: a, b: b, c: c, d: d, index: index))
        }
        order.sort { ($0.a, $0.b, $0.c, $0.d) < ($1.a, $1.b, $1.c, $1.d) }
        var sorted: [[ProjectionValue]] = []
        sorted.reserveCapacity(rows.count)
        for prefix in order { sorted.append(rows[prefix.index]) }
        return sorted
    }

    /// A row's place in key order, as far as the first 16 bytes of two key columns tell.
    struct OrderPrefix {
        var a: UInt64, b: UInt64, c: UInt64, d: UInt64
        var index: Int
    }

    /// Two words that order values of one column as MySQL does, up to their first 16 bytes: a
    /// string's bytes big-endian, an integer with its sign bit flipped; NULL first.
    static func orderWords(_ value: ProjectionValue) -> (UInt64, UInt64) {
        switch value {
        case .null: return (0, 0)
        case .bool(let flag): return (flag ? 2 : 1, 0)
        case .int(let number): return (UInt64(bitPattern: number) ^ (1 << 63), 0)
        case .double(let number):
            let bits = number.bitPattern
            return (number.sign == .minus ? ~bits : bits | (1 << 63), 0)
        case .decimal(let number):
            let double = NSDecimalNumber(decimal: number).doubleValue
            let bits = double.bitPattern
            return (double.sign == .minus ? ~bits : bits | (1 << 63), 0)
        case .string(let text):
            var words: (UInt64, UInt64) = (0, 0)
            var count = 0
            for byte in text.utf8 {
                if count < 8 { words.0 |= UInt64(byte) << (56 - 8 * count) } else { words.1 |= UInt64(byte) << (56 - 8 * (count - 8)) }
                count += 1
                if count == 16 { break }
            }
            return words
        }
    }
}
