import Foundation
@testable import RepriseEngine
import RepriseProjection
import Testing

/// Rows go to a bulk load in primary-key order (docs/throughput-10m.md): MySQL's order for the
/// key types the tables use, as far as the first 16 bytes of two key columns tell, with every row
/// still there.
@Suite("Rows in key order for bulk loads (no server)")
struct KeyOrderTests {
    @Test func rowsAreOrderedByTheKeyColumnsAsMySQLOrdersThem() {
        // Key (sku, day) at columns 2 and 0; column 1 is not part of the key.
        let rows: [[ProjectionValue]] = [
            [.string("2026-01-05"), .int(1), .string("SKU-2")],
            [.string("2026-01-04"), .int(2), .string("SKU-10")],
            [.string("2026-01-04"), .int(3), .string("SKU-2")],
            [.string("2026-01-03"), .int(4), .string("sku-1")],
            [.string("2026-01-03"), .int(5), .string("SKU-2\u{E9}")],
            [.string("2026-01-03"), .int(6), .string("SKU-2")],
        ]
        let sorted = ColumnValues.inKeyOrder(rows, keyIndexes: [2, 0])
        // By bytes, as utf8mb4_bin: "SKU-10" < "SKU-2" < "SKU-2é" < "sku-1"; then by day.
        #expect(sorted.map { $0[1] } == [.int(2), .int(6), .int(3), .int(1), .int(5), .int(4)])
        #expect(Set(sorted.map { $0[1] }) == Set(rows.map { $0[1] }))
    }

    @Test func numbersCompareByValueAndNullComesFirst() {
        let rows: [[ProjectionValue]] = [[.int(10)], [.int(-3)], [.int(2)], [.int(Int64.max)], [.int(Int64.min)], [.int(0)]]
        #expect(ColumnValues.inKeyOrder(rows, keyIndexes: [0]) == [[.int(Int64.min)], [.int(-3)], [.int(0)], [.int(2)], [.int(10)], [.int(Int64.max)]])
        let decimals: [[ProjectionValue]] = [[.decimal(Decimal(string: "10.5")!)], [.decimal(Decimal(string: "-0.25")!)], [.decimal(2)]]
        #expect(ColumnValues.inKeyOrder(decimals, keyIndexes: [0]).map { $0[0] } == [.decimal(Decimal(string: "-0.25")!), .decimal(2), .decimal(Decimal(string: "10.5")!)])
        let doubles: [[ProjectionValue]] = [[.double(2.5)], [.double(-1)], [.double(-7.25)], [.double(0)]]
        #expect(ColumnValues.inKeyOrder(doubles, keyIndexes: [0]).map { $0[0] } == [.double(-7.25), .double(-1), .double(0), .double(2.5)])
        #expect(ColumnValues.orderWords(.null) <= ColumnValues.orderWords(.bool(false)))
        #expect(ColumnValues.orderWords(.string("")) < ColumnValues.orderWords(.string("a")))
    }

    /// Past 16 bytes the order is not exact, but keys that share their first 16 bytes stay
    /// together, between the keys before and after them.
    @Test func keysSharingTheirFirstSixteenBytesStayTogether() {
        let keys = ["order-0000000000-b", "order-0000000001", "order-0000000000-a", "order-00000000", "order-0000000000"]
        let sorted = ColumnValues.inKeyOrder(keys.map { [.string($0)] }, keyIndexes: [0]).map { row -> String in
            if case .string(let text) = row[0] { return text }
            return ""
        }
        #expect(sorted.first == "order-00000000" && sorted.last == "order-0000000001")
        #expect(Set(sorted.dropFirst().dropLast()) == ["order-0000000000", "order-0000000000-a", "order-0000000000-b"])
    }
}
