@testable import RepriseEngine
import RepriseProjection
import Testing

@Suite("Key filter past its first segment (no server)")
struct KeyFilterGrowthTests {
    /// Three million keys, nearly four times what the first 1 MiB segment is sized for: every
    /// inserted key still answers "maybe", and keys never inserted mostly answer "never" (a
    /// fixed 1 MiB filter answers "maybe" for about two thirds of them at this count).
    @Test func theFilterGrowsWithTheKeysAndKeepsFewFalsePositives() {
        var filter = KeyFilter()
        let inserted = 3_000_000
        for id in 0..<inserted { filter.insert(RowKey([.int(Int64(id))])) }
        #expect(stride(from: 0, to: inserted, by: 997).allSatisfy { filter.mightContain(RowKey([.int(Int64($0))])) })
        let probes = 20_000
        let falsePositives = (inserted..<(inserted + probes)).filter { filter.mightContain(RowKey([.int(Int64($0))])) }.count
        #expect(falsePositives < probes / 10, "\(falsePositives) false positives in \(probes)")
    }
}
