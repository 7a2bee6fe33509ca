import Foundation
import RepriseProjection

/// One generation of a `RowWorkspace`'s cache: clean rows (or keys known absent) of every table,
/// held flat.
///
/// Rows are encoded back to back into a few big byte buffers (segments), and each table finds
/// them through an open-addressing index of (key hash, location) slots. A cached row is no heap
/// block of its own: no key array, no row array, no string storage. Measured on the 10M-event
/// rebuild (docs/throughput-10m.md), rows held as `[ProjectionValue]` took about 435 estimated
/// bytes and four or five heap blocks each; dropping a generation freed over a million blocks
/// (18 s of the handlers' path over the rebuild), and the blocks, living for minutes between
/// blocks living for a chunk, fragmented malloc's arenas. Here dropping a generation frees its
/// segments, which from 2 MiB up are mappings of their own (`MemoryRelease`), returned whole.
///
/// The price is a decode per hit: `find` builds the row's values again (an array, and strings
/// past 15 bytes). The index's slots stay 16 bytes, whatever the key: a wider slot would cost
/// more than the rows save (the inline keys tried on 2026-12-01 did).
final class RowGeneration {
    /// Rows held, over all tables (a key stored again counts once).
    private(set) var rowCount = 0
    /// Bytes the generation takes: encoded records, and a slot pair per row at the index's
    /// lowest load (what `RowCacheBudget` bounds; segments' untouched tails are not resident).
    private(set) var bytes = 0
    private var indexes: [TableIndex]
    private var segments: [[UInt8]] = []
    /// The record being stored, encoded (reused: its capacity stays).
    private var record: [UInt8] = []

    /// Every segment is a mapping of its own (glibc's mapped-block threshold, `MemoryRelease`):
    /// a generation lives for many chunks, and segments taken from the malloc arenas pinned their
    /// pages between the chunks' short-lived rows (10M events, docs/merge-tables.md: peak RSS
    /// 310 MB at a 32 MiB cache; with 64 KiB first segments 366 MB at 24 MiB, 335-352 at 64).
    /// Only touched pages are resident, so a generation of a few rows takes a few pages. They
    /// double up to `largestSegment`.
    static let firstSegment = 2 << 20
    static let largestSegment = 4 << 20
    /// Bytes a row costs in the index, counted as two 16-byte slots (the index is 35-70% full).
    static let slotBytesPerRow = 2 * MemoryLayout<Int>.stride * 2

    init(tables: Int) {
        indexes = Array(repeating: TableIndex(), count: tables)
    }

    /// What the generation holds for `key` (`.unknown`: nothing); a present row is decoded.
    func find(_ table: Int, _ key: RowKey) -> RowWorkspace.Lookup {
        // An empty generation (the fresh rows before a chunk is recorded, the old one before a
        // turn) answers without touching its index.
        guard rowCount > 0, let location = indexes[table].location(of: key, in: self) else { return .unknown }
        return withRecord(at: location) { record in
            var reader = RecordReader(record)
            guard reader.skipKey() else { return .absent }
            let rowValues = Int(reader.readByte())
            return .present(reader.readValues(rowValues))
        }
    }

    /// Whether the generation holds `key`; nil when it does not, else whether the row is absent.
    func isAbsent(_ table: Int, _ key: RowKey) -> Bool? {
        guard rowCount > 0, let location = indexes[table].location(of: key, in: self) else { return nil }
        return withRecord(at: location) { $0[0] != Self.present }
    }

    func holds(_ table: Int, _ key: RowKey) -> Bool { rowCount > 0 && indexes[table].location(of: key, in: self) != nil }

    /// Stores `row` (nil: known absent) for `key`, replacing what was held; true when the key is new.
    ///
    /// A row stored again (a customer at their next order, every chunk) mostly keeps its size:
    /// its record is rewritten in place when the new one fits, so a generation grows with its
    /// keys, not with its writes. A record that grew is appended; the old one stays in its
    /// segment, unused, until the generation is dropped.
    @discardableResult
    func store(_ table: Int, _ key: RowKey, _ row: [ProjectionValue]?) -> Bool {
        record.removeAll(keepingCapacity: true)
        RecordWriter.write(key, row, into: &record)
        if let slot = indexes[table].slot(of: key, in: self) {
            let location = indexes[table].location(at: slot)
            if record.count <= withRecord(at: location, { RecordReader($0).recordLength() }) {
                rewrite(at: location)
            } else {
                indexes[table].repoint(slot, to: append())
            }
            return false
        }
        indexes[table].insert(key, at: append())
        rowCount += 1
        bytes += Self.slotBytesPerRow
        return true
    }

    /// Calls `body` with the stored hash (`RowKey.storedHash`) of each key held for `table`.
    func forEachKeyHash(_ table: Int, _ body: (Int) -> Void) {
        indexes[table].forEachHash(body)
    }

    /// Drops what the generation holds for `key` (its record stays until the generation is dropped).
    func forget(_ table: Int, _ key: RowKey) {
        if rowCount > 0, indexes[table].remove(key, in: self) { rowCount -= 1 }
    }

    /// Bytes one row takes when cached (its record and its share of the index).
    static func cachedBytes(_ key: RowKey, _ row: [ProjectionValue]?) -> Int {
        var record: [UInt8] = []
        RecordWriter.write(key, row, into: &record)
        return record.count + slotBytesPerRow
    }

    // MARK: Records

    /// A record's first byte: the row is present (else the key is known absent).
    fileprivate static let present: UInt8 = 1

    /// Appends `record` (present or absent, the key's values, the row's values) and returns its
    /// location: segment number in the high half, offset in the low half.
    private func append() -> Int {
        if segments.last.map({ $0.capacity - $0.count < record.count }) ?? true {
            // A new segment; the last one's free tail stays unused (its pages are never touched).
            let size = max(record.count, min(Self.largestSegment, segments.last.map { $0.capacity * 2 } ?? Self.firstSegment))
            var segment: [UInt8] = []
            segment.reserveCapacity(size)
            segments.append(segment)
        }
        let number = segments.count - 1
        let start = segments[number].count
        segments[number].append(contentsOf: record)
        bytes += record.count
        return number << 32 | start
    }

    /// Writes `record` over the one at `location` (it fits: the caller measured both).
    private func rewrite(at location: Int) {
        let offset = location & 0xFFFF_FFFF
        record.withUnsafeBytes { new in
            segments[location >> 32].withUnsafeMutableBytes { segment in
                UnsafeMutableRawBufferPointer(rebasing: segment[offset..<offset + new.count]).copyMemory(from: new)
            }
        }
    }

    fileprivate func withRecord<Result>(at location: Int, _ body: (UnsafeRawBufferPointer) -> Result) -> Result {
        segments[location >> 32].withUnsafeBytes { body(UnsafeRawBufferPointer(rebasing: $0[(location & 0xFFFF_FFFF)...])) }
    }
}

/// A table's index into a generation: open addressing with linear probing over (hash, location)
/// slots. A location of 0 marks an empty slot, -1 a forgotten key (probes go on past it);
/// stored locations are one past the real ones.
private struct TableIndex {
    private var hashes: [Int] = []
    private var locations: [Int] = []
    /// Slots taken, forgotten ones included (they lengthen probes until the next growth).
    private var taken = 0
    private var live = 0
    private static let forgotten = -1

    func location(of key: RowKey, in generation: RowGeneration) -> Int? {
        slot(of: key, in: generation).map(location(at:))
    }

    func location(at slot: Int) -> Int { locations[slot] - 1 }

    func slot(of key: RowKey, in generation: RowGeneration) -> Int? {
        guard taken > 0 else { return nil }
        let hash = key.storedHash
        let mask = hashes.count - 1
        var slot = hash & mask
        while locations[slot] != 0 {
            if locations[slot] > 0, hashes[slot] == hash,
                generation.withRecord(at: locations[slot] - 1, { RecordReader($0).keyEquals(key) })
            {
                return slot
            }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// Points the key at `slot` (from `slot(of:in:)`) at its new `location`.
    mutating func repoint(_ slot: Int, to location: Int) {
        locations[slot] = location + 1
    }

    /// Indexes `key`, which is not indexed yet, at `location`.
    mutating func insert(_ key: RowKey, at location: Int) {
        if (taken + 1) * 10 > hashes.count * 7 { grow() }
        let hash = key.storedHash
        let mask = hashes.count - 1
        var slot = hash & mask
        while locations[slot] != 0 { slot = (slot + 1) & mask }
        hashes[slot] = hash
        locations[slot] = location + 1
        taken += 1
        live += 1
    }

    func forEachHash(_ body: (Int) -> Void) {
        for slot in locations.indices where locations[slot] > 0 { body(hashes[slot]) }
    }

    /// Drops `key`; true when it was indexed.
    mutating func remove(_ key: RowKey, in generation: RowGeneration) -> Bool {
        guard let slot = slot(of: key, in: generation) else { return false }
        locations[slot] = Self.forgotten
        live -= 1
        return true
    }

    /// Doubles the slots, or clears the forgotten ones when they are what fills them (the
    /// stored hashes place every entry again; no key is read).
    private mutating func grow() {
        let capacity = (live + 1) * 2 > hashes.count ? max(64, hashes.count * 2) : hashes.count
        let oldHashes = hashes, oldLocations = locations
        hashes = Array(repeating: 0, count: capacity)
        locations = Array(repeating: 0, count: capacity)
        let mask = capacity - 1
        taken = 0
        for (hash, location) in zip(oldHashes, oldLocations) where location > 0 {
            var slot = hash & mask
            while locations[slot] != 0 { slot = (slot + 1) & mask }
            hashes[slot] = hash
            locations[slot] = location
            taken += 1
        }
    }
}

/// Value tags of a record.
private enum ValueTag {
    static let null: UInt8 = 0
    static let `false`: UInt8 = 1
    static let `true`: UInt8 = 2
    static let int: UInt8 = 3
    static let smallInt: UInt8 = 4  // 0...255, one byte
    static let double: UInt8 = 5
    static let decimal: UInt8 = 6
    static let string: UInt8 = 7
}

/// Writes records: [present or absent][key value count][key values][row value count][row values].
private enum RecordWriter {
    static func write(_ key: RowKey, _ row: [ProjectionValue]?, into bytes: inout [UInt8]) {
        // Counts fit a byte: MySQL tables have at most 4,096 columns, projection tables far fewer.
        precondition(key.values.count < 256 && (row?.count ?? 0) < 256, "a cached row of 256 columns or more")
        bytes.append(row == nil ? 0 : RowGeneration.present)
        bytes.append(UInt8(key.values.count))
        for value in key.values { write(value, into: &bytes) }
        guard let row else { return }
        bytes.append(UInt8(row.count))
        for value in row { write(value, into: &bytes) }
    }

    private static func write(_ value: ProjectionValue, into bytes: inout [UInt8]) {
        switch value {
        case .null: bytes.append(ValueTag.null)
        case .bool(let flag): bytes.append(flag ? ValueTag.true : ValueTag.false)
        case .int(let number):
            if number >= 0 && number < 256 {
                bytes.append(ValueTag.smallInt)
                bytes.append(UInt8(number))
            } else {
                bytes.append(ValueTag.int)
                withUnsafeBytes(of: number.littleEndian) { bytes.append(contentsOf: $0) }
            }
        case .double(let number):
            bytes.append(ValueTag.double)
            withUnsafeBytes(of: number.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
        case .decimal(let number):
            // Decimal holds no references: its bytes are its value (read back by `RecordReader`).
            bytes.append(ValueTag.decimal)
            withUnsafeBytes(of: number) { bytes.append(contentsOf: $0) }
        case .string(var text):
            bytes.append(ValueTag.string)
            var length = text.utf8.count
            while length >= 0x80 {
                bytes.append(UInt8(length & 0x7F) | 0x80)
                length >>= 7
            }
            bytes.append(UInt8(length))
            text.withUTF8 { bytes.append(contentsOf: $0) }
        }
    }
}

/// Reads a record from its first byte.
private struct RecordReader {
    private let record: UnsafeRawBufferPointer
    private var position = 0

    init(_ record: UnsafeRawBufferPointer) { self.record = record }

    mutating func readByte() -> UInt8 {
        defer { position += 1 }
        return record[position]
    }

    /// Whether the record's key is `key` (by value, as `RowKey`'s `==`).
    func keyEquals(_ key: RowKey) -> Bool {
        var reader = self
        _ = reader.readByte()
        guard Int(reader.readByte()) == key.values.count else { return false }
        for value in key.values where !reader.readEquals(value) { return false }
        return true
    }

    /// Reads the next value and compares it with `value`; a string without building one.
    private mutating func readEquals(_ value: ProjectionValue) -> Bool {
        switch value {
        case .string(var text):
            guard record[position] == ValueTag.string else { return false }
            position += 1
            let length = readLength()
            defer { position += length }
            let stored = UnsafeRawBufferPointer(rebasing: record[position..<position + length])
            return text.withUTF8 { utf8 in utf8.count == length && utf8.elementsEqual(stored) }
        default:
            return readValue() == value
        }
    }

    /// Reads past the presence byte and the key; true when a row follows.
    mutating func skipKey() -> Bool {
        let present = readByte() == RowGeneration.present
        let keyValues = Int(readByte())
        skipValues(keyValues)
        return present
    }

    /// The bytes of the record, read from its first byte.
    func recordLength() -> Int {
        var reader = self
        if reader.skipKey() {
            let rowValues = Int(reader.readByte())
            reader.skipValues(rowValues)
        }
        return reader.position
    }

    mutating func skipValues(_ count: Int) {
        for _ in 0..<count { skipValue() }
    }

    private mutating func skipValue() {
        switch readByte() {
        case ValueTag.int, ValueTag.double: position += 8
        case ValueTag.smallInt: position += 1
        case ValueTag.decimal: position += MemoryLayout<Decimal>.size
        case ValueTag.string: position += readLength()
        default: break
        }
    }

    mutating func readValues(_ count: Int) -> [ProjectionValue] {
        var values: [ProjectionValue] = []
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(readValue()) }
        return values
    }

    private mutating func readValue() -> ProjectionValue {
        switch readByte() {
        case ValueTag.false: return .bool(false)
        case ValueTag.true: return .bool(true)
        case ValueTag.int: return .int(Int64(littleEndian: readWord()))
        case ValueTag.smallInt: return .int(Int64(readByte()))
        case ValueTag.double: return .double(Double(bitPattern: UInt64(littleEndian: UInt64(bitPattern: readWord()))))
        case ValueTag.decimal:
            var number = Decimal()
            withUnsafeMutableBytes(of: &number) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: record[position..<position + $0.count])) }
            position += MemoryLayout<Decimal>.size
            return .decimal(number)
        case ValueTag.string:
            let length = readLength()
            defer { position += length }
            return .string(String(decoding: UnsafeRawBufferPointer(rebasing: record[position..<position + length]), as: UTF8.self))
        default: return .null
        }
    }

    private mutating func readWord() -> Int64 {
        defer { position += 8 }
        return record.loadUnaligned(fromByteOffset: position, as: Int64.self)
    }

    private mutating func readLength() -> Int {
        var length = 0, shift = 0
        while true {
            let byte = readByte()
            length |= Int(byte & 0x7F) << shift
            if byte < 0x80 { return length }
            shift += 7
        }
    }
}
