/// A Bloom filter of row keys: "certainly never written" or "maybe written"; a false positive
/// only costs a lookup in MySQL. It grows with the keys (a scalable Bloom filter): segments of
/// about 10 bits per key and three hashes (about 2% false positives each), the first 1 MiB for
/// 800,000 keys, each next one twice the size of the last, so the rate stays low as a history
/// of 10M events writes millions of keys (a fixed 1 MiB filter answered "maybe" for about half
/// the new keys there, each a row read).
struct KeyFilter {
    private struct Segment {
        var bits: [UInt64]
        let mask: UInt64
        let capacity: Int
        var count = 0

        init(log2Bits: Int) {
            bits = [UInt64](repeating: 0, count: 1 << (log2Bits - 6))
            mask = (1 << UInt64(log2Bits)) - 1
            capacity = (1 << log2Bits) / 10
        }

        func positions(_ hash: UInt64) -> (Int, Int, Int) {
            let second = (hash >> 33 | hash << 31) &* 0x9E37_79B9_7F4A_7C15
            return (Int(hash & mask), Int(second & mask), Int((hash &+ second &* 3) & mask))
        }

        mutating func insert(_ hash: UInt64) {
            let (a, b, c) = positions(hash)
            bits[a >> 6] |= 1 << UInt64(a & 63)
            bits[b >> 6] |= 1 << UInt64(b & 63)
            bits[c >> 6] |= 1 << UInt64(c & 63)
            count += 1
        }

        func mightContain(_ hash: UInt64) -> Bool {
            let (a, b, c) = positions(hash)
            return bits[a >> 6] & (1 << UInt64(a & 63)) != 0 && bits[b >> 6] & (1 << UInt64(b & 63)) != 0
                && bits[c >> 6] & (1 << UInt64(c & 63)) != 0
        }
    }

    private var segments: [Segment]

    /// A first segment for about `expectedKeys` keys (at least 1,600: 2 KiB), 1 MiB by default.
    init(expectedKeys: Int = 800_000) {
        let bits = max(expectedKeys, 1_600) * 10
        segments = [Segment(log2Bits: min(Int.bitWidth - bits.leadingZeroBitCount, 34))]
    }

    mutating func insert(_ key: RowKey) {
        insert(hash: UInt64(bitPattern: Int64(key.hashValue)))
    }

    /// Inserts a key by a hash of it that callers compute alike for insert and query.
    mutating func insert(hash: UInt64) {
        // Keys written again (most staged rows of a long build) do not fill the filter.
        guard !mightContain(hash: hash) else { return }
        if let last = segments.last, last.count >= last.capacity {
            segments.append(Segment(log2Bits: min(Int(last.mask.nonzeroBitCount) + 1, 34)))
        }
        segments[segments.count - 1].insert(hash)
    }

    /// The memory its bit arrays take (all of it touched once keys spread over it).
    var bytes: Int { segments.reduce(0) { $0 + $1.bits.count * MemoryLayout<UInt64>.stride } }

    func mightContain(_ key: RowKey) -> Bool {
        mightContain(hash: UInt64(bitPattern: Int64(key.hashValue)))
    }

    /// `mightContain` by a hash of the key, computed as for `insert(hash:)`.
    func mightContain(hash: UInt64) -> Bool {
        segments.contains { $0.mightContain(hash) }
    }
}
