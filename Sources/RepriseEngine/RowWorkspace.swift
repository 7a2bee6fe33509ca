import RepriseProjection

/// The rows one projection reads and writes while a chunk is applied.
///
/// Writes go to an overlay; reads see the overlay, then rows known from earlier chunks (the
/// cache), then rows prefetched from MySQL for this chunk. After the chunk's transaction commits,
/// the overlay becomes part of the cache; if it fails, the overlay is dropped, so memory always
/// matches what MySQL holds. The cache is bounded: past its limit it is emptied, never grown.
final class RowWorkspace {
    let layouts: [String: TableLayout]
    /// Known rows from committed chunks: a row, or nil for a row known not to exist.
    private var cache: [String: [RowKey: [ProjectionValue]?]] = [:]
    /// Rows written by the chunk in progress (nil: deleted).
    private(set) var overlay: [String: [RowKey: [ProjectionValue]?]] = [:]
    /// Tables whose every row is in the cache (fresh tables of a new build): a miss means absent.
    private var complete: Set<String>
    private let cacheLimit: Int
    private var cachedRows = 0

    init(tables: [TableDefinition], freshTables: Bool, cacheLimit: Int) {
        var layouts: [String: TableLayout] = [:]
        for table in tables { layouts[table.name] = TableLayout(table) }
        self.layouts = layouts
        self.complete = freshTables ? Set(tables.map(\.name)) : []
        self.cacheLimit = cacheLimit
    }

    enum Lookup {
        case present([ProjectionValue])
        case absent
        /// Not known here: must be fetched from MySQL first.
        case unknown
    }

    func lookup(_ table: String, _ key: RowKey) -> Lookup {
        if let written = overlay[table]?[key] { return written.map { .present($0) } ?? .absent }
        if let known = cache[table]?[key] { return known.map { .present($0) } ?? .absent }
        return complete.contains(table) ? .absent : .unknown
    }

    /// Records rows fetched from MySQL (and keys found absent) for the chunk in progress.
    func remember(_ table: String, fetched: [RowKey: [ProjectionValue]], requested: Set<RowKey>) {
        // Mutated in place: copying the table's cache out and back would copy it whole every chunk.
        for key in requested where cache[table, default: [:]][key] == nil {
            cache[table, default: [:]][key] = .some(fetched[key])
            cachedRows += 1
        }
    }

    func put(_ table: String, _ key: RowKey, _ row: [ProjectionValue]?) {
        overlay[table, default: [:]][key] = .some(row)
    }

    /// The chunk committed: its writes are now what MySQL holds.
    func commitOverlay() {
        for (table, rows) in overlay {
            for (key, row) in rows where cache[table, default: [:]].updateValue(row, forKey: key) == nil {
                cachedRows += 1
            }
        }
        overlay = [:]
        if cachedRows > cacheLimit {
            cache = [:]
            cachedRows = 0
            complete = []
        }
    }

    /// The chunk failed: forget its writes.
    func discardOverlay() {
        overlay = [:]
    }

    /// Forget everything (after a failure whose outcome in MySQL is unknown).
    func reset() {
        overlay = [:]
        cache = [:]
        cachedRows = 0
        complete = []
    }
}
