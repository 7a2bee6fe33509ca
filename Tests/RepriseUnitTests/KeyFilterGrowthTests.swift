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

@Suite("Key filter segments sized by the build's outlook (no server)")
struct KeyFilterOutlookTests {
    /// A well-mixed hash per key number (splitmix64), so that millions of keys insert quickly.
    private static func hash(_ n: Int) -> UInt64 {
        var z = UInt64(truncatingIfNeeded: n) &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A build of `events` events writing a new key every `eventsPerKey`, telling the filter its
    /// outlook after every step of 5,000 events as the rebuild does (or not at all).
    private static func build(events: Int, eventsPerKey: Int, outlook: Bool) -> (filter: KeyFilter, keys: Int) {
        var filter = KeyFilter()
        var keys = 0
        var known: Double?  // the outlook after the step before, as the workspace has it
        for read in stride(from: 5_000, through: events, by: 5_000) {
            while (keys + 1) * eventsPerKey <= read {
                filter.insert(hash: hash(keys), outlook: known)
                keys += 1
            }
            if outlook { known = Double(events - read) / Double(read) }
        }
        return (filter, keys)
    }

    /// The order table of a 10M-event history: 3.3 million keys, one every three events. Doubling
    /// segments of 1, 2 and 4 MiB take 7 MiB; with the outlook the second segment is sized for the
    /// rest of the build, and the filter takes about the 10 bits a key the first one is sized at.
    @Test func aSegmentSizedForTheRestOfTheBuildHoldsItsKeysInTheBitsTheyNeed() {
        let (sized, keys) = Self.build(events: 10_000_000, eventsPerKey: 3, outlook: true)
        let (doubled, _) = Self.build(events: 10_000_000, eventsPerKey: 3, outlook: false)
        let needed = keys * 10 / 8
        #expect(doubled.bytes == 7 << 20)
        #expect(sized.segmentCount == 2)
        #expect(sized.bytes < needed + needed / 4, "\(sized.bytes) bytes for \(keys) keys")
        #expect(stride(from: 0, to: keys, by: 991).allSatisfy { sized.mightContain(hash: Self.hash($0)) })
        let probes = 20_000
        let falsePositives = (keys..<(keys + probes)).filter { sized.mightContain(hash: Self.hash($0)) }.count
        #expect(falsePositives < probes / 20, "\(falsePositives) false positives in \(probes)")
    }

    @Test func theNextSegmentFollowsTheOutlookWithinFourTimesTheLastAndAnEighthOfIt() {
        let last = KeyFilter.defaultExpectedKeys
        // No outlook: twice the last, a scalable Bloom filter.
        #expect(KeyFilter.nextSegmentKeys(after: last, keys: last, outlook: nil) == 2 * last)
        // Keys at the same rate for three times as long again: three times the keys so far, 10% over.
        #expect(KeyFilter.nextSegmentKeys(after: last, keys: last, outlook: 3) == Int(Double(last) * 3 * 1.1))
        // Early in a long history (all its customers may have come already): at most four times the last.
        #expect(KeyFilter.nextSegmentKeys(after: last, keys: last, outlook: 40) == 4 * last)
        // Near the end (a catch-up round): small, but not a crumb.
        #expect(KeyFilter.nextSegmentKeys(after: last, keys: 3 * last, outlook: 0.001) == last / 8)
        #expect(KeyFilter.nextSegmentKeys(after: last, keys: last, outlook: .nan) == 2 * last)
    }
}
