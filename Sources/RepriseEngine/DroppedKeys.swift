/// The keys a row cache dropped at its last turns while `GenerationSizing` held its generations
/// small: a row read back from MySQL whose key is here is one that a cache of the whole share
/// would likely still have held.
///
/// The generations start small, and the old one alone tells only of rows used again within the
/// small window; rows used again a little later (every chunk's rows used two chunks on) would be
/// read back at every turn and never counted. Kept in two filters of `turnsPerFilter` turns
/// each, so it covers the last 8 to 16 turns: about what the whole share holds (small
/// generations turn at a sixteenth of it), no more, so it does not count reads that the whole
/// share would not have saved either.
struct DroppedKeys {
    static let turnsPerFilter = 8
    private var current: KeyFilter?
    private var previous: KeyFilter?
    private var turns = 0

    /// Notes the keys of `generation`, about to be dropped.
    mutating func note(_ generation: RowGeneration, tables: Int) {
        if turns == Self.turnsPerFilter {
            previous = current
            current = nil
            turns = 0
        }
        turns += 1
        guard generation.rowCount > 0 else { return }
        // Sized for as many generations as this one (about 10 bits per key, as the written keys).
        var filter = current ?? KeyFilter(expectedKeys: generation.rowCount * Self.turnsPerFilter)
        for table in 0..<tables {
            generation.forEachKeyHash(table) { filter.insert(hash: Self.hash($0, table)) }
        }
        current = filter
    }

    func mightContain(_ table: Int, _ key: RowKey) -> Bool {
        guard current != nil || previous != nil else { return false }
        let hash = Self.hash(key.storedHash, table)
        return current?.mightContain(hash: hash) == true || previous?.mightContain(hash: hash) == true
    }

    /// Forgets every key (the generations hold their whole share again).
    mutating func removeAll() {
        self = DroppedKeys()
    }

    /// A key's stored hash told apart per table (two tables may share key values).
    private static func hash(_ stored: Int, _ table: Int) -> UInt64 {
        UInt64(bitPattern: Int64(stored)) &+ UInt64(table + 1) &* 0x9E37_79B9_7F4A_7C15
    }
}
