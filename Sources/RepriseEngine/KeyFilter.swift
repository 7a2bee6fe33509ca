/// A Bloom filter of row keys: "certainly never written" or "maybe written"; a false positive
/// only costs a lookup in MySQL. It grows with the keys (a scalable Bloom filter): segments of
/// about 10 bits per key and three hashes (about 2% false positives each), the first 1 MiB for
/// 838,860 keys, so the rate stays low as a history of 10M events writes millions of keys (a
/// fixed 1 MiB filter answered "maybe" for about half the new keys there, each a row read).
///
/// A new segment is sized by the build's outlook when the caller gives one (`insert(_:outlook:)`):
/// the keys the rest of the build will write at the rate so far. Doubling instead, a filter
/// holds up to twice the bits its keys need: measured at 10M events (docs/throughput.md), the
/// three samples' 9.2 million keys took 15 MiB (segments of 1, 2 and 4 MiB per growing table).
struct KeyFilter {
    private struct Segment {
        var bits: [UInt64]
        /// The number of bits: any multiple of 64 (positions are taken by multiply-shift, not a mask).
        let bitCount: UInt64
        let capacity: Int
        var count = 0

        /// A segment of about 10 bits for each of `keys` keys, in whole words.
        init(keys: Int) {
            let words = max((keys * Self.bitsPerKey + 63) / 64, 32)
            bits = [UInt64](repeating: 0, count: words)
            bitCount = UInt64(words * 64)
            capacity = words * 64 / Self.bitsPerKey
        }

        static let bitsPerKey = 10

        func positions(_ hash: UInt64) -> (Int, Int, Int) {
            let second = (hash >> 33 | hash << 31) &* 0x9E37_79B9_7F4A_7C15
            return (slot(hash), slot(second), slot(hash &+ second &* 3))
        }

        /// A bit position from a hash's high bits: `hash * bitCount / 2^64`.
        private func slot(_ hash: UInt64) -> Int {
            Int(truncatingIfNeeded: hash.multipliedFullWidth(by: bitCount).high)
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

    /// The first segment's keys by default: 1 MiB.
    static let defaultExpectedKeys = (1 << 23) / Segment.bitsPerKey

    /// A first segment for about `expectedKeys` keys (at least 1,600: 2 KiB).
    init(expectedKeys: Int = KeyFilter.defaultExpectedKeys) {
        segments = [Segment(keys: max(expectedKeys, 1_600))]
    }

    /// `outlook`: events the build has left to read for each event it has read so far (nil:
    /// unknown, and a new segment doubles the last).
    mutating func insert(_ key: RowKey, outlook: Double? = nil) {
        insert(hash: UInt64(bitPattern: Int64(key.hashValue)), outlook: outlook)
    }

    /// Inserts a key by a hash of it that callers compute alike for insert and query.
    mutating func insert(hash: UInt64, outlook: Double? = nil) {
        // Keys written again (most staged rows of a long build) do not fill the filter.
        guard !mightContain(hash: hash) else { return }
        if let last = segments.last, last.count >= last.capacity {
            segments.append(Segment(keys: Self.nextSegmentKeys(after: last.capacity, keys: keyCount, outlook: outlook)))
        }
        segments[segments.count - 1].insert(hash)
    }

    /// The keys a new segment is sized for, once the last one (`last` keys) is full and the
    /// filter holds `keys`. Without an outlook, twice the last. With one, what the rest of the
    /// build writes at the rate so far, 10% over: a history whose keys keep coming gets one
    /// segment for all of them, and one near its end a small one. At most four times the last,
    /// so that a history whose new keys dried up early (all its customers in its first weeks)
    /// does not get a segment sized for a rate it no longer has; at least an eighth of the last.
    static func nextSegmentKeys(after last: Int, keys: Int, outlook: Double?) -> Int {
        guard let outlook, outlook.isFinite, outlook >= 0 else { return last * 2 }
        let projected = Double(keys) * outlook * 1.1
        return max(last / 8, projected < Double(last * 4) ? Int(projected) : last * 4)
    }

    /// Keys inserted so far (keys the filter already answered "maybe" for are not counted).
    var keyCount: Int { segments.reduce(0) { $0 + $1.count } }

    /// The memory its bit arrays take (all of it touched once keys spread over it).
    var bytes: Int { segments.reduce(0) { $0 + $1.bits.count * MemoryLayout<UInt64>.stride } }

    /// Segments so far (for tests).
    var segmentCount: Int { segments.count }

    func mightContain(_ key: RowKey) -> Bool {
        mightContain(hash: UInt64(bitPattern: Int64(key.hashValue)))
    }

    /// `mightContain` by a hash of the key, computed as for `insert(hash:)`.
    func mightContain(hash: UInt64) -> Bool {
        segments.contains { $0.mightContain(hash) }
    }
}
