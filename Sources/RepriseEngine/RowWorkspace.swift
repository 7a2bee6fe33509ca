import RepriseProjection

/// The rows one projection reads and writes while a chunk is applied.
///
/// Writes go to an overlay (the chunk being gathered: each changed row once, however many events
/// of the chunk change it); reads see the overlay, then the chunk committing, then rows known
/// from earlier chunks (the cache), then rows prefetched from MySQL. After the chunk's
/// transaction commits, its rows become part of the cache; if it fails, they are dropped, so the
/// cache always matches what MySQL holds. The cache holds only such clean rows and is bounded:
/// past its limit old rows are dropped (they live on in MySQL), never dirty ones.
final class RowWorkspace {
    typealias Rows = [RowKey: [ProjectionValue]?]

    let layouts: [String: TableLayout]
    /// The tables in the definition's order. Every layer below is an array indexed by a table's
    /// position (`TableLayout.position`): a row lookup then hashes its key only, never the
    /// table's name (it used to, once per layer it probed).
    let tables: [TableLayout]
    /// Known rows from committed chunks: a row, or a key known not to exist, held flat
    /// (`RowGeneration`). Two generations approximate "least recently used": lookups promote
    /// old entries to the young generation; when the young one fills half the limit, the old one
    /// is dropped. Hot rows (a busy customer) stay; rows of finished orders age out. Memory stays
    /// under the limit.
    private var young: RowGeneration
    private var old: RowGeneration
    /// Rows the last recorded chunk wrote that MySQL did not hold before (a new order, a new
    /// day of a product's sales), apart from the generations until the next chunk is recorded:
    /// most such rows are never touched again, and in the generations they pushed out the rows
    /// that are (measured at 10M events: 9 million new rows, 300,000 of them touched in a later
    /// chunk, against 249,000 customers touched nine times each). A row of it that a lookup
    /// uses moves to the young generation. A key is held here or in the generations, never both.
    private var fresh: RowGeneration
    private var youngRows: Int { young.rowCount }
    /// Memory of the generations' rows (`RowGeneration.bytes`): what `RowCacheBudget` bounds
    /// over the projections read together.
    var youngBytes: Int { young.bytes }
    var oldBytes: Int { old.bytes }
    var oldRowCount: Int { old.rowCount }
    /// Rows of the old generation a lookup used since the last turn (`GenerationSizing`).
    private(set) var oldRowsUsed = 0
    /// Rows read back from MySQL since the last turn that the small generations had dropped
    /// lately (`GenerationSizing`): what a cache of the whole share would have saved.
    private(set) var droppedRowsReadBack = 0
    private var dropped = DroppedKeys()
    var freshBytes: Int { fresh.bytes }
    var cachedBytes: Int { youngBytes + oldBytes + freshBytes }
    /// Memory of the written-key filters, which grow with the keys the build wrote.
    var filterBytes: Int { written.reduce(0) { $0 + ($1?.bytes ?? 0) } }
    /// Rows written by the chunk in progress (nil: deleted), per table position.
    private(set) var overlayRows: [Rows]
    /// Estimated memory of the overlay's rows (what ends a chunk of a rebuild).
    private(set) var overlayBytes = 0
    /// Rows of the previous chunk while its transaction commits (the pipeline's second stage).
    private(set) var pendingRows: [Rows]
    /// Per table position: its rows are merged, never read (`DeclarativeProjection.mergeTables`).
    private var mergeTables: [Bool]
    /// The chunk in progress's changes to rows of merge tables, per table position. Those of
    /// the chunk committing are not kept here (`stageOverlay`).
    private var mergeRows: [[RowKey: MergeRow]]
    /// A chunk is staged and not yet recorded or forgotten.
    private var committing = false
    /// Tables whose every row is in the cache (fresh tables of a new build): a miss means absent.
    private var complete: [Bool]
    /// Rows per projection (`--row-cache-limit`, `Int.max` when only the byte budget bounds the cache).
    private let cacheLimit: Int
    /// For tables this build created empty: every key ever staged for MySQL. A key the filter has
    /// never seen does not exist in MySQL either, so most misses need no query.
    private var written: [KeyFilter?]
    /// Set for projections with lookups: an event whose operations need a row not in memory is
    /// undone and applied again once the chunk has read it, and lookups read the rows as they
    /// were before the event. Off, `put` keeps no per-event record.
    var tracksEvents = false
    /// Overlay entries as they were before the current event first wrote them.
    private var beforeEvent: [[RowKey: Prior]]
    private var beforeEventEmpty = true
    /// While speculating, writes go here (never to MySQL) and unknown rows are noted in `missing`.
    private(set) var speculating = false
    private var speculative: [Rows]
    private var missing: [Set<RowKey>]
    private var missingLookupTables: Set<Int> = []

    /// What the overlay held for a key before the current event wrote it.
    private enum Prior {
        case notInOverlay
        case entry([ProjectionValue]?)
    }

    init(tables: [TableDefinition], freshTables: Bool, cacheLimit: Int, filterFirstKeys: Int = KeyFilter.defaultExpectedKeys) {
        let ordered = tables.enumerated().map { TableLayout($0.element, position: $0.offset) }
        var layouts: [String: TableLayout] = [:]
        for layout in ordered { layouts[layout.name] = layout }
        self.layouts = layouts
        self.tables = ordered
        let empty = Array(repeating: Rows(), count: ordered.count)
        young = RowGeneration(tables: ordered.count)
        old = RowGeneration(tables: ordered.count)
        fresh = RowGeneration(tables: ordered.count)
        overlayRows = empty
        pendingRows = empty
        mergeTables = Array(repeating: false, count: ordered.count)
        mergeRows = Array(repeating: [:], count: ordered.count)
        speculative = empty
        beforeEvent = Array(repeating: [:], count: ordered.count)
        missing = Array(repeating: [], count: ordered.count)
        self.complete = Array(repeating: freshTables, count: ordered.count)
        self.cacheLimit = max(cacheLimit, 2)
        self.written = Array(repeating: freshTables ? KeyFilter(expectedKeys: filterFirstKeys) : nil, count: ordered.count)
    }

    /// Rows written by the chunk in progress, by table name (for traces and tests).
    var overlay: [String: Rows] { named(overlayRows) }
    /// Rows of the chunk committing, by table name.
    var pending: [String: Rows] { named(pendingRows) }

    private func named<Value>(_ layer: [[RowKey: Value]]) -> [String: [RowKey: Value]] {
        var byName: [String: [RowKey: Value]] = [:]
        for (position, rows) in layer.enumerated() where !rows.isEmpty { byName[tables[position].name] = rows }
        return byName
    }

    /// From now on, operations on the tables at `positions` merge into rows they do not read
    /// (`merge`); set before the first event. Their rows are never cached, so the filter alone
    /// tells a new key (the table is never complete).
    func mergeUnreadRows(of positions: [Int]) {
        for position in positions {
            mergeTables[position] = true
            complete[position] = false
        }
    }

    /// Whether operations on the table at `position` merge into rows they do not read.
    func mergesRows(of position: Int) -> Bool { mergeTables[position] }

    /// Changes the chunk's merge row at `key` (a new one when the chunk has none), in place.
    func merge<Failure: Error>(_ table: Int, _ key: RowKey, _ change: (inout MergeRow) throws(Failure) -> Void) throws(Failure) {
        if let index = mergeRows[table].index(forKey: key) {
            try change(&mergeRows[table].values[index])
            return
        }
        var row = MergeRow(tables[table], key: key)
        try change(&row)
        overlayBytes += Self.estimatedBytes(key, row.values) + row.operations.count
        mergeRows[table][key] = row
    }

    /// The position of a table given by name (code projections and traces name their tables).
    private func position(_ table: String) -> Int? { layouts[table]?.position }

    enum Lookup {
        case present([ProjectionValue])
        case absent
        /// Not known here: must be fetched from MySQL first.
        case unknown
    }

    func lookup(_ table: String, _ key: RowKey) -> Lookup {
        guard let position = position(table) else { return .unknown }
        return lookup(position, key)
    }

    func lookup(_ table: Int, _ key: RowKey) -> Lookup {
        if speculating, let guessed = speculative[table][key] { return guessed.map { .present($0) } ?? .absent }
        return lookupBelowSpeculation(table, key)
    }

    /// The row as it was before the current event's operations (a lookup's view).
    func lookupBeforeEvent(_ table: Int, _ key: RowKey) -> Lookup {
        guard !beforeEventEmpty, let prior = beforeEvent[table][key] else { return lookup(table, key) }
        switch prior {
        case .entry(let row): return row.map { .present($0) } ?? .absent
        case .notInOverlay: return speculating ? lookupBelowSpeculation(table, key) : lookupBelowOverlay(table, key)
        }
    }

    private func lookupBelowSpeculation(_ table: Int, _ key: RowKey) -> Lookup {
        if let written = overlayRows[table][key] { return written.map { .present($0) } ?? .absent }
        return lookupBelowOverlay(table, key)
    }

    private func lookupBelowOverlay(_ table: Int, _ key: RowKey) -> Lookup {
        if let committing = pendingRows[table][key] { return committing.map { .present($0) } ?? .absent }
        let inYoung = young.find(table, key)
        if case .unknown = inYoung {} else { return inYoung }
        switch old.find(table, key) {
        case .present(let row):
            oldRowsUsed += 1
            store(table, key, row)  // promote: it is in use
            return .present(row)
        case .absent:
            oldRowsUsed += 1
            store(table, key, nil)
            return .absent
        case .unknown: break
        }
        if case .present(let row) = fresh.find(table, key) {
            store(table, key, row)  // moves: it is in use
            return .present(row)
        }
        if complete[table] { return .absent }
        // Not remembered: the filter changes only when a chunk is staged, and a key staged is
        // found above (the overlay, the rows committing, the cache) before the filter is asked.
        if let filter = written[table], !filter.mightContain(key) { return .absent }
        return .unknown
    }

    /// Whether a lookup would find the key unknown, without what a lookup does besides (promote
    /// it, remember a key the filter rules out): a read ahead of the step that uses the key is
    /// not a use of it.
    func isUnknown(_ table: Int, _ key: RowKey) -> Bool {
        if overlayRows[table][key] != nil || pendingRows[table][key] != nil || young.holds(table, key) || old.holds(table, key)
            || fresh.holds(table, key)
        {
            return false
        }
        if complete[table] { return false }
        if let filter = written[table], !filter.mightContain(key) { return false }
        return true
    }

    /// Records rows fetched from MySQL (and keys found absent) for the chunk in progress.
    func remember(_ table: String, fetched: [RowKey: [ProjectionValue]], requested: Set<RowKey>) {
        guard let position = position(table) else { preconditionFailure("rows remembered for unknown table \(table)") }
        remember(position, fetched: fetched, requested: requested)
    }

    func remember(_ table: Int, fetched: [RowKey: [ProjectionValue]], requested: Set<RowKey>) {
        for key in requested where !young.holds(table, key) {
            if dropped.mightContain(table, key) { droppedRowsReadBack += 1 }
            store(table, key, fetched[key])
        }
    }

    func put(_ table: String, _ key: RowKey, _ row: [ProjectionValue]?) {
        guard let position = position(table) else { preconditionFailure("row written to unknown table \(table)") }
        put(position, key, row)
    }

    func put(_ table: Int, _ key: RowKey, _ row: [ProjectionValue]?) {
        noteBeforeEvent(table, key)
        if speculating {
            speculative[table][key] = .some(row)
            return
        }
        if overlayRows[table].updateValue(row, forKey: key) == nil {
            overlayBytes += Self.estimatedBytes(key, row)
        }
    }

    /// The first write of a key by the current event remembers what its layer held before
    /// (`.notInOverlay`: nothing in that layer), for lookups and for undoing the event.
    private func noteBeforeEvent(_ table: Int, _ key: RowKey) {
        guard tracksEvents, beforeEvent[table][key] == nil else { return }
        let prior = speculating ? speculative[table][key] : overlayRows[table][key]
        beforeEvent[table][key] = prior.map { .entry($0) } ?? .notInOverlay
        beforeEventEmpty = false
    }

    /// Changes the row the chunk in progress already wrote at `key`, in place: `change` gets the
    /// overlay's own array, so a row written by several events of a chunk is not copied per
    /// operation (a copy allocates and retains every string of it). Returns false, changing
    /// nothing, when the overlay holds no row at `key` (not written yet in this chunk, or
    /// deleted) or while speculating: the caller then `put`s the whole row. A row whose array is
    /// shared (with the rows committing, the cache or the event's undo record) is copied by the
    /// write, as any array is, so those keep what they held.
    @inline(__always)  // into the operation that calls it (its closure then needs no context of its own)
    func changeInOverlay(_ table: Int, _ key: RowKey, _ change: (inout [ProjectionValue]) throws -> Void) rethrows -> Bool {
        guard !speculating else { return false }
        guard tracksEvents else {
            // Nothing to note before the change: found and changed in one access to the overlay.
            return try Self.change(in: &overlayRows[table], at: key, change)
        }
        guard let index = overlayRows[table].index(forKey: key), overlayRows[table].values[index] != nil else { return false }
        noteBeforeEvent(table, key)
        try change(&overlayRows[table].values[index]!)
        return true
    }

    @inline(__always)
    private static func change(in rows: inout Rows, at key: RowKey, _ change: (inout [ProjectionValue]) throws -> Void) rethrows -> Bool {
        guard let index = rows.index(forKey: key), rows.values[index] != nil else { return false }
        try change(&rows.values[index]!)
        return true
    }

    /// Memory a row takes in a workspace dictionary, roughly: the key and value arrays, the
    /// dictionary slot, and string bytes past the inline size.
    static func estimatedBytes(_ key: RowKey, _ row: [ProjectionValue]?) -> Int {
        var bytes = 96 + (key.values.count + (row?.count ?? 0)) * MemoryLayout<ProjectionValue>.stride
        for value in key.values { bytes += heapBytes(value) }
        for value in row ?? [] { bytes += heapBytes(value) }
        return bytes
    }

    private static func heapBytes(_ value: ProjectionValue) -> Int {
        if case .string(let text) = value, text.utf8.count > 15 { return 32 + text.utf8.count }
        return 0
    }

    /// An event starts: lookups now read the rows as they are.
    func beginEvent() {
        clearBeforeEvent()
    }

    private func clearBeforeEvent() {
        guard !beforeEventEmpty else { return }
        for table in beforeEvent.indices where !beforeEvent[table].isEmpty { beforeEvent[table].removeAll(keepingCapacity: true) }
        beforeEventEmpty = true
    }

    /// Undoes the current event's writes (it needs a row that is not in memory yet).
    func rollbackEvent() {
        for (table, rows) in beforeEvent.enumerated() {
            for (key, prior) in rows {
                switch prior {
                case .entry(let row): overlayRows[table][key] = .some(row)
                case .notInOverlay: overlayRows[table].removeValue(forKey: key)
                }
            }
        }
        clearBeforeEvent()
    }

    /// Starts a pass that only finds out which rows the rest of a chunk needs: its writes are
    /// kept apart and thrown away, and unknown rows read as absent and are noted.
    func beginSpeculation() {
        speculating = true
        speculative = Array(repeating: [:], count: tables.count)
        missing = Array(repeating: [], count: tables.count)
        missingLookupTables = []
    }

    /// A row the speculative pass needed and the workspace does not hold.
    func noteMissing(_ table: Int, _ key: RowKey, byLookup: Bool) {
        missing[table].insert(key)
        if byLookup { missingLookupTables.insert(table) }
    }

    /// Ends the speculative pass: the rows it noted, and the tables a lookup needed rows of.
    func endSpeculation() -> (keys: [String: Set<RowKey>], lookupTables: Set<String>) {
        defer {
            speculating = false
            beforeEvent = Array(repeating: [:], count: tables.count)
            beforeEventEmpty = true
            speculative = Array(repeating: [:], count: tables.count)
            missing = Array(repeating: [], count: tables.count)
            missingLookupTables = []
        }
        var keys: [String: Set<RowKey>] = [:]
        for (table, tableKeys) in missing.enumerated() where !tableKeys.isEmpty { keys[tables[table].name] = tableKeys }
        return (keys, Set(missingLookupTables.map { tables[$0].name }))
    }

    /// The chunk's writes go to the commit stage; the next chunk writes a new overlay. Returns
    /// the chunk's merge rows per table position, in batches of equal operations: they are not
    /// kept here (they are never read, nor cached), so their keys, operations and dictionary
    /// are freed now rather than when the chunk is recorded: about 150 bytes a row, 20 MB of a
    /// chunk of the three samples, held while the next chunk is gathered.
    @discardableResult
    func stageOverlay() -> [[MergeBatch]] { stage(groupingMerges: true) }

    private func stage(groupingMerges: Bool) -> [[MergeBatch]] {
        precondition(!committing, "a chunk is already committing")
        noteWritten(overlayRows) { $0 != nil }
        noteWritten(mergeRows) { _ in true }
        let merges = groupingMerges ? mergeRows.map { $0.isEmpty ? [] : MergeBatch.grouping($0.values) } : []
        pendingRows = overlayRows
        committing = true
        overlayRows = Array(repeating: [:], count: tables.count)
        mergeRows = Array(repeating: [:], count: tables.count)
        overlayBytes = 0
        return merges
    }

    /// Like `stageOverlay`, and splits the staged rows per table: rows MySQL certainly does not
    /// hold yet (known absent, a complete table, or a key never staged before), which can be
    /// bulk-loaded, and the others (upserts and deletes).
    /// Merge rows go the same way: a new key's row as if new, the others in batches.
    func stageOverlaySeparatingNewRows() -> [(layout: TableLayout, new: [[ProjectionValue]], others: Rows, merges: [MergeBatch])] {
        precondition(!committing, "a chunk is already committing")
        var split: [(layout: TableLayout, new: [[ProjectionValue]], others: Rows, merges: [MergeBatch])] = []
        for (table, rows) in overlayRows.enumerated() where !rows.isEmpty {
            var new: [[ProjectionValue]] = [], others: Rows = [:]
            for (key, row) in rows {
                if let row, isAbsentBetweenChunks(table, key) { new.append(row) } else { others[key] = .some(row) }
            }
            // Nothing new: the staged rows as they are, uncopied.
            split.append(new.isEmpty ? (tables[table], [], rows, []) : (tables[table], new, others, []))
        }
        for (table, rows) in mergeRows.enumerated() where !rows.isEmpty {
            var new: [[ProjectionValue]] = [], others: [MergeRow] = []
            new.reserveCapacity(rows.count)
            for (key, row) in rows {
                if isAbsentBetweenChunks(table, key) { new.append(row.values) } else { others.append(row) }
            }
            split.append((tables[table], new, [:], MergeBatch.grouping(others)))
        }
        _ = stage(groupingMerges: false)
        return split
    }

    /// Whether MySQL holds no row with this key, as far as the cache and the filter know; only
    /// between chunks (nothing committing) and before the key is staged.
    private func isAbsentBetweenChunks(_ table: Int, _ key: RowKey) -> Bool {
        if let absent = young.isAbsent(table, key) ?? old.isAbsent(table, key) ?? fresh.isAbsent(table, key) { return absent }
        if complete[table] { return true }
        if let filter = written[table] { return !filter.mightContain(key) }
        return false
    }

    /// Events this build has read, over its rounds, and what its round has left (nil: a round
    /// without a count): the written-key filters' outlook.
    private var eventsRead: Int64 = 0
    private var leftInRound: Int64?

    /// `count` more events were read, and the round has `leftInRound` to go: the written-key
    /// filters size a new segment for the keys the rest of the build will write at this rate.
    func noteEventsRead(_ count: Int, leftInRound: Int64) {
        eventsRead += Int64(count)
        self.leftInRound = max(leftInRound, 0)
    }

    /// Events left to read per event read so far (`KeyFilter.insert(_:outlook:)`).
    private var outlook: Double? {
        guard let leftInRound, eventsRead > 0 else { return nil }
        return Double(leftInRound) / Double(eventsRead)
    }

    /// Rows about to be written to MySQL: the filter must say "maybe" for their keys from now on.
    /// Notes in the written-key filters the keys of the rows a chunk puts (`puts`: not a delete).
    private func noteWritten<Row>(_ tables: [[RowKey: Row]], puts: (Row) -> Bool) {
        let outlook = outlook
        for (table, rows) in tables.enumerated() where written[table] != nil {
            for (key, row) in rows where puts(row) { written[table]?.insert(key, outlook: outlook) }
        }
    }

    /// A step of events was applied: the rows prefetched for it may now be dropped from the cache.
    func endStep() {
        turnGenerationIfFull()
    }

    /// The staged chunk committed: its writes are now what MySQL holds. Rows MySQL did not
    /// hold before (not known present here) replace the fresh rows of the chunk before; the
    /// others go to the young generation. With a row bound (`cacheLimit`), which counts the
    /// generations only, every row goes to the young generation.
    func commitPending() {
        let previous = fresh
        fresh = RowGeneration(tables: tables.count)
        // Rows of the previous chunk's fresh rows not used since are dropped: tables no longer complete.
        if previous.rowCount > 0 { complete = Array(repeating: false, count: tables.count) }
        for (table, rows) in pendingRows.enumerated() {
            for (key, row) in rows {
                // Each generation probed once: most rows are new and held nowhere.
                let inYoung = young.isAbsent(table, key)
                let inOld = inYoung == nil ? old.isAbsent(table, key) : nil
                let knownPresent = (inYoung ?? inOld ?? previous.isAbsent(table, key)) == false
                if let row, !knownPresent, cacheLimit == .max {
                    if inYoung != nil {
                        young.forget(table, key)
                        old.forget(table, key)
                    } else if inOld != nil {
                        old.forget(table, key)
                    }
                    fresh.store(table, key, row)
                } else {
                    young.store(table, key, row)
                }
            }
        }
        pendingRows = Array(repeating: [:], count: tables.count)
        committing = false
        turnGenerationIfFull()
    }

    /// The chunk committed: its writes are now what MySQL holds.
    func commitOverlay() {
        // Merge rows go to MySQL only through staging (`stageOverlay`): what they make is not known here.
        precondition(mergeRows.allSatisfy(\.isEmpty), "merge rows are committed by staging them")
        noteWritten(overlayRows) { $0 != nil }
        for (table, rows) in overlayRows.enumerated() {
            for (key, row) in rows { store(table, key, row) }
        }
        overlayRows = Array(repeating: [:], count: tables.count)
        overlayBytes = 0
        turnGenerationIfFull()
    }

    private func turnGenerationIfFull() {
        // Generations turn only between chunks: rows prefetched for a chunk stay until it is applied.
        if youngRows >= cacheLimit / 2 { turnGeneration() }
    }

    /// The old generation is dropped (its rows live on in MySQL only) and the young one becomes
    /// old. Only clean rows are dropped: the overlay and the committing rows stay. Called between
    /// steps (by the row limit here, or by `RowCacheBudget` for the group's bytes).
    /// `notingDropped`: the generations are held small, and the keys dropped are noted.
    func turnGeneration(notingDropped: Bool = false) {
        if notingDropped { dropped.note(old, tables: tables.count) } else { dropped.removeAll() }
        oldRowsUsed = 0
        droppedRowsReadBack = 0
        old = young
        young = RowGeneration(tables: tables.count)
        complete = Array(repeating: false, count: tables.count)
    }

    /// Into the young generation; a key is never held by the fresh rows as well.
    private func store(_ table: Int, _ key: RowKey, _ row: [ProjectionValue]?) {
        young.store(table, key, row)
        fresh.forget(table, key)
    }

    /// The chunk failed: forget its writes.
    func discardOverlay() {
        overlayRows = Array(repeating: [:], count: tables.count)
        mergeRows = Array(repeating: [:], count: tables.count)
        overlayBytes = 0
        beforeEvent = Array(repeating: [:], count: tables.count)
        beforeEventEmpty = true
    }

    /// Forget everything (after a failure whose outcome in MySQL is unknown).
    func reset() {
        discardOverlay()
        pendingRows = Array(repeating: [:], count: tables.count)
        committing = false
        // `written` stays: it holds every key ever put (the failed chunk's too), so a key it has
        // never seen is still absent from MySQL.
        young = RowGeneration(tables: tables.count)
        old = RowGeneration(tables: tables.count)
        oldRowsUsed = 0
        droppedRowsReadBack = 0
        fresh = RowGeneration(tables: tables.count)
        complete = Array(repeating: false, count: tables.count)
    }
}

/// Bounds the row caches of the projections read together (one rebuild group) by their bytes
/// (`RowGeneration.bytes`: records and index slots, what the rows really take), so a rebuild's
/// memory is set by its settings, not by the size of the history: when the young generations of
/// the group together reach half of what the filters and the fresh rows leave, every workspace of
/// the group turns its generations (a two-generation LRU over the group: rows any event used
/// since the last turn survive one more). A busy projection takes the share it uses; a quiet
/// one's rows age out.
struct RowCacheBudget {
    let bytes: Int

    /// Called between steps, never while a step's prefetched rows are in use. `sizing` (the
    /// group's, kept across its turns) keeps the generations at an eighth of their share while
    /// the rows they drop are not used again.
    func turnIfFull(_ workspaces: some Collection<RowWorkspace>, sizing: GenerationSizing) {
        guard bytes < .max else { return }
        // The written-key filters grow with the history; they take their share of the budget
        // (at most half), so what a rebuild holds is set by the budget, not the history's length.
        let filters = workspaces.reduce(0) { $0 + $1.filterBytes }
        let rows = max(bytes - filters, bytes / 2)
        // The fresh rows (one chunk's new rows) take theirs, the generations share the rest.
        let generations = max(rows - workspaces.reduce(0) { $0 + $1.freshBytes }, rows / 2) >> sizing.halvings
        let young = workspaces.reduce(0) { $0 + $1.youngBytes }
        guard young >= generations / 2 else { return }
        sizing.judge(
            oldRows: workspaces.reduce(0) { $0 + $1.oldRowCount },
            usedAgain: workspaces.reduce(0) { $0 + $1.oldRowsUsed + $1.droppedRowsReadBack })
        for workspace in workspaces { workspace.turnGeneration(notingDropped: sizing.halvings > 0) }
    }
}

/// Whether a group's cache generations earn their share of `RowCacheBudget`, judged at each turn
/// by what the old generation, about to be dropped, served since the turn before, and, while
/// the generations are small, by the rows read back that they had dropped lately (`DroppedKeys`).
///
/// The old generation is what a cache twice the young one's size holds beyond it. When none of
/// its rows were used again before it is dropped, a smaller cache would have read back no more,
/// and its memory is spent for nothing. Measured on the three samples at 10M events
/// (docs/throughput-10m.md): the old generation served 0 rows at every turn, and a 4 MiB cache
/// read back as many order rows as the default 32 MiB (rows of orders whose next event comes
/// much later than any such cache holds). A projection whose lookups come back to the same rows
/// (a customer's country, every order) uses its old generation at once and gets the whole share.
///
/// The generations start small: a cache that started whole held its whole share until the
/// second turn (the first judged), and at 10M events that was the run's highest resident size,
/// 10-20 MB above the rest. A small cache that drops rows used again reads them back, and those
/// reads count: over 1% of the old generation's rows, the whole share comes back at once.
final class GenerationSizing {
    /// The generations may fill their share divided by 2 to this power: 0 or `maxHalvings`.
    private(set) var halvings: Int
    static let maxHalvings = 3
    /// Under this share of the old generation's rows used again, the generations shrink to an
    /// eighth; over `growShare`, they get their whole share back. Between, they stay as they are.
    static let shrinkShare = 0.001
    static let growShare = 0.01
    /// Old generations with fewer rows tell nothing either way.
    static let rowsToJudge = 1_000

    /// `halvings`: where to start (an eighth; 0, the whole share, for tests of the budget).
    init(halvings: Int = maxHalvings) {
        self.halvings = halvings
    }

    func judge(oldRows: Int, usedAgain: Int) {
        guard oldRows >= Self.rowsToJudge else { return }
        let share = Double(usedAgain) / Double(oldRows)
        if share < Self.shrinkShare {
            halvings = Self.maxHalvings
        } else if share > Self.growShare {
            halvings = 0
        }
    }
}
