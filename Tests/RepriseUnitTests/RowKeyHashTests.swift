@testable import RepriseEngine
import RepriseProjection
import Testing

/// Dictionaries hash a row key from its stored hash: equal keys (Unicode-equivalent strings
/// included) must land on the same entry, different ones must stay apart, in every table.
@Suite("Row key hashing (no server)")
struct RowKeyHashTests {
    @Test func equalKeysFindTheSameEntryAndDifferentOnesStayApart() {
        let precomposed = RowKey([.string("caf\u{E9}"), .int(1)])
        let decomposed = RowKey([.string("cafe\u{301}"), .int(1)])
        #expect(precomposed == decomposed)
        for seed in [0, 1, -1, 42, Int.max, Int.min] {
            #expect(precomposed._rawHashValue(seed: seed) == decomposed._rawHashValue(seed: seed))
        }
        var rows: [RowKey: Int] = [precomposed: 1]
        rows[decomposed, default: 0] += 1
        #expect(rows.count == 1 && rows[precomposed] == 2)
        // Many keys, in several dictionaries and sets (each with its own seed), copied between them.
        var set: Set<RowKey> = []
        var dictionary: [RowKey: Int] = [:]
        for id in 0..<20_000 {
            let key = RowKey([.string("sku-\(id % 100)"), .int(Int64(id / 100))])
            set.insert(key)
            dictionary[key] = id
        }
        #expect(set.count == 20_000 && dictionary.count == 20_000)
        let copy = Set(dictionary.keys)
        #expect(copy == set)
        #expect((0..<20_000).allSatisfy { dictionary[RowKey([.string("sku-\($0 % 100)"), .int(Int64($0 / 100))])] == $0 })
        #expect(dictionary[RowKey([.string("sku-1"), .int(999)])] == nil)
        // The seed changes the value (tables order keys differently).
        let key = RowKey([.string("x")])
        #expect(Set([0, 1, 2, 3].map { key._rawHashValue(seed: $0) }).count == 4)
    }
}
