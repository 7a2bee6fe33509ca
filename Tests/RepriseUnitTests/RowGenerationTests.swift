import Foundation
@testable import RepriseEngine
import RepriseProjection
import Testing

/// The row cache's flat generations: what goes in comes out, found by key value.
@Suite("Row cache generations held flat (no server)")
struct RowGenerationTests {
    @Test func everyKindOfValueComesBackAsStored() {
        let generation = RowGeneration(tables: 1)
        let long = String(repeating: "ü-long text past one length byte ", count: 9)
        let rows: [[ProjectionValue]] = [
            [.int(0), .int(255), .int(256), .int(-1), .int(.min), .int(.max)],
            [.string(""), .string("c-000017"), .string(long), .string("😀 emoji")],
            [.null, .bool(true), .bool(false), .double(-0.5), .double(1e300)],
            [.decimal(Decimal(string: "-12.50")!), .decimal(Decimal(string: "123456789012345678901234567890.123")!), .decimal(0)],
        ]
        for (number, row) in rows.enumerated() { generation.store(0, RowKey([.int(Int64(number)), row[1]]), row) }
        for (number, row) in rows.enumerated() {
            guard case .present(let found) = generation.find(0, RowKey([.int(Int64(number)), row[1]])) else {
                Issue.record("row \(number) not found")
                continue
            }
            #expect(found == row)
        }
        #expect(generation.rowCount == rows.count)
    }

    @Test func aKeyIsFoundByValueAndAStoredAgainKeyHoldsItsLastRow() {
        let generation = RowGeneration(tables: 2)
        for id in 0..<10_000 {
            generation.store(0, RowKey([.string("c-\(id)")]), [.string("c-\(id)"), .int(Int64(id))])
        }
        generation.store(1, RowKey([.string("c-5")]), nil)  // the same key in another table
        generation.store(0, RowKey([.string("c-7")]), [.string("c-7"), .int(-7)])
        generation.store(0, RowKey([.string("c-8")]), nil)
        #expect(generation.rowCount == 10_001, "a key stored again counts once")
        var wrong: [Int] = []
        for id in 0..<10_000 where id != 7 && id != 8 {
            guard case .present(let row) = generation.find(0, RowKey([.string("c-\(id)")])), row == [.string("c-\(id)"), .int(Int64(id))] else {
                wrong.append(id)
                continue
            }
        }
        #expect(wrong.isEmpty, "rows not found as stored: \(wrong.prefix(5))")
        if case .present(let row) = generation.find(0, RowKey([.string("c-7")])) { #expect(row == [.string("c-7"), .int(-7)]) } else { Issue.record("c-7 lost") }
        if case .absent = generation.find(0, RowKey([.string("c-8")])) {} else { Issue.record("c-8 should be known absent") }
        #expect(generation.isAbsent(0, RowKey([.string("c-8")])) == true)
        #expect(generation.isAbsent(0, RowKey([.string("c-9")])) == false)
        #expect(generation.isAbsent(1, RowKey([.string("c-5")])) == true)
        #expect(generation.isAbsent(1, RowKey([.string("c-6")])) == nil)
        if case .unknown = generation.find(0, RowKey([.string("c-10000")])) {} else { Issue.record("a key never stored is not held") }
        // Same characters, other value kind or other key width: other keys.
        #expect(!generation.holds(0, RowKey([.int(5)])))
        #expect(!generation.holds(0, RowKey([.string("c-5"), .int(0)])))
    }

    @Test func itsBytesCountEveryRecordAndTheRowsSlots() {
        let generation = RowGeneration(tables: 1)
        var expected = 0
        for id in Int64(0)..<1_000 {
            let key = RowKey([.int(id)]), row: [ProjectionValue] = [.int(id), .string("customer \(id) with a name past 15 bytes")]
            expected += RowGeneration.cachedBytes(key, row)
            generation.store(0, key, row)
        }
        #expect(generation.bytes == expected)
        // Far below what the rows took as arrays (an estimate of 200+ bytes each).
        #expect(generation.bytes < 1_000 * 100)
    }

    @Test func aRowStoredAgainIsRewrittenInPlaceWhenItFits() {
        let generation = RowGeneration(tables: 1)
        let key = RowKey([.string("c-1")])
        generation.store(0, key, [.string("c-1"), .int(1_000), .string("2024-01-01 10:00:00")])
        generation.store(0, RowKey([.string("c-2")]), [.string("c-2"), .int(7), .null])
        let held = generation.bytes
        generation.store(0, key, [.string("c-1"), .int(2_000), .string("2024-03-01 10:00:00")])  // same size
        generation.store(0, key, [.string("c-1"), .int(3), .null])  // smaller
        #expect(generation.bytes == held, "rewritten in place")
        if case .present(let row) = generation.find(0, key) { #expect(row == [.string("c-1"), .int(3), .null]) } else { Issue.record("c-1 lost") }
        generation.store(0, key, [.string("c-1"), .int(4_000), .string("a longer value than any before it")])  // grew: appended
        #expect(generation.bytes > held)
        if case .present(let row) = generation.find(0, key) {
            #expect(row == [.string("c-1"), .int(4_000), .string("a longer value than any before it")])
        } else {
            Issue.record("c-1 lost")
        }
        if case .present(let row) = generation.find(0, RowKey([.string("c-2")])) { #expect(row == [.string("c-2"), .int(7), .null]) } else { Issue.record("c-2 lost") }
        #expect(generation.rowCount == 2)
    }
}
