import RepriseProjection

/// The primary key of a read model row: its key column values in key order.
///
/// A key is hashed once, when it is made: a row's key is looked up in several dictionaries per
/// operation (the chunk's writes, the rows committing, the cache generations, the written-key
/// filter), and each of those then hashes one integer instead of the key's strings.
public struct RowKey: Hashable, Sendable, CustomStringConvertible {
    public var values: [ProjectionValue] {
        get { storedValues }
        set {
            storedValues = newValue
            hash = Self.hash(newValue)
        }
    }
    private var storedValues: [ProjectionValue]
    private var hash: Int

    public init(_ values: [ProjectionValue]) {
        storedValues = values
        hash = Self.hash(values)
    }

    private static func hash(_ values: [ProjectionValue]) -> Int {
        var hasher = Hasher()
        hasher.combine(values)
        return hasher.finalize()
    }

    public static func == (lhs: RowKey, rhs: RowKey) -> Bool {
        lhs.hash == rhs.hash && lhs.storedValues == rhs.storedValues
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    /// The hash computed when the key was made (`RowGeneration`'s index places keys by it).
    var storedHash: Int { hash }

    /// What dictionaries and sets hash: the stored hash mixed with the table's seed (so two
    /// tables still order their keys differently), without running `Hasher` on it again. The
    /// stored hash is already `Hasher`'s (randomly seeded per process): equal keys give equal
    /// values, and keys from events cannot be chosen to collide.
    public func _rawHashValue(seed: Int) -> Int {
        // splitmix64's finalizer: every bit of the seed and the hash reaches every bit.
        var bits = UInt64(bitPattern: Int64(hash)) ^ UInt64(bitPattern: Int64(seed))
        bits = (bits ^ (bits >> 30)) &* 0xBF58_476D_1CE4_E5B9
        bits = (bits ^ (bits >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(Int64(bitPattern: bits ^ (bits >> 31)))
    }

    public var description: String { "(" + values.map(\.description).joined(separator: ", ") + ")" }
}

/// A table of a projection as the engine works with it: column positions, key positions, defaults.
final class TableLayout: Sendable {
    let definition: TableDefinition
    /// The table's position among its projection's tables: what a `RowWorkspace` indexes its layers by.
    let position: Int
    let columnIndex: [String: Int]
    let keyIndexes: [Int]
    /// The row a new row starts as: defaults, or NULL.
    let defaultRow: [ProjectionValue]

    /// `position`: the table's place in its projection's `tables` (0 for a layout used alone).
    init(_ definition: TableDefinition, position: Int = 0) {
        self.definition = definition
        self.position = position
        var index: [String: Int] = [:]
        for (position, column) in definition.columns.enumerated() { index[column.name] = position }
        columnIndex = index
        keyIndexes = definition.primaryKey.compactMap { index[$0] }
        defaultRow = definition.columns.map { $0.defaultValue ?? .null }
    }

    var name: String { definition.name }
    var columns: [ColumnDefinition] { definition.columns }

    func key(of row: [ProjectionValue]) -> RowKey { RowKey(keyIndexes.map { row[$0] }) }

    /// A key given as values in primary key order, converted as the key columns store them.
    func canonicalKey(_ values: [ProjectionValue]) throws(ColumnValues.ConversionError) -> RowKey {
        guard values.count == keyIndexes.count else {
            throw ColumnValues.ConversionError(message: "\(name) has a key of \(keyIndexes.count) columns, got \(values.count)")
        }
        var canonical: [ProjectionValue] = []
        canonical.reserveCapacity(values.count)
        for (value, index) in zip(values, keyIndexes) { canonical.append(try ColumnValues.canonical(value, for: columns[index])) }
        return RowKey(canonical)
    }
}
