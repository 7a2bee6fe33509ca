import RepriseMySQL
import RepriseProjection

/// The rows of the next step, read on the rebuild's read connection while this step's handlers
/// run (`RebuildOptions.readAhead`, off by default). Without it the handlers wait for every
/// step's read: at 10M events, about 1.1 million customer rows dropped from the cache and read
/// back cost 35 s of a 269 s run, the handlers idle meanwhile; with it they waited 1-2 s. Peak
/// resident size was higher in every run measured (docs/throughput-readahead.md), hence off by default.
///
/// Only for projections without lookups (their keys depend on the events alone) and only on a
/// read connection of its own (the live worker reads on its writer, whose transaction may be
/// open). The reads are asked after this step's own rows are known, so they ask only for rows
/// this step does not touch; and only a chunk holding a row writes it to MySQL, a chunk whose
/// rows are known here. So what a read returns is still MySQL's row when the next step starts,
/// and is remembered then as if read at that moment (a key known by then keeps what is known).
struct ReadAhead {
    /// The events of the next step this build applies (positions in it), its keys and their tape
    /// (the next step's first pass, done here; used only if the step applies the same events).
    let indexes: [Int]
    let keys: TableKeys
    let tape: KeyTape?
    let reads: Task<[FetchedRows], any Error>

    /// One table's answers, converted to rows when the step takes them, on the handlers' side as
    /// the step's own reads are (rows the cache keeps long are then allocated where they were
    /// before read-ahead; it did not bring the peak resident size back down, see
    /// docs/throughput-readahead.md).
    struct FetchedRows: Sendable {
        let layout: TableLayout
        let requested: Set<RowKey>
        let results: [MySQLResult]
    }

    /// Waits for the reads and drops what they return (the step they were for will not run).
    func discard() async {
        reads.cancel()
        _ = await reads.result
    }
}

extension ChunkApplier {
    /// Starts reading the rows `events` at `indexes` need that the workspace does not know;
    /// nil when this build does not read ahead.
    func readAhead(_ events: [ProjectionEvent], at indexes: [Int], _ declarative: DeclarativeProjection, for build: ActiveBuild) -> ReadAhead? {
        guard readsAhead, let rowReads, !declarative.hasLookups, !indexes.isEmpty else { return nil }
        let workspace = build.workspace
        let (keys, tape) = timings.measure(.handle) { Self.keysTouched(by: events, at: indexes, declarative, workspace: workspace) }
        var asked: [(layout: TableLayout, physical: String, keys: Set<RowKey>)] = []
        for layout in workspace.tables.sorted(by: { $0.name < $1.name }) {
            let unknown = keys.byTable[layout.position].filter { workspace.isUnknown(layout.position, $0) }
            if !unknown.isEmpty { asked.append((layout, build.tableName(layout.name), unknown)) }
        }
        let reads = Task {
            var fetched: [ReadAhead.FetchedRows] = []
            for table in asked {
                try Task.checkCancellation()
                let results = try await Self.selectRows(table.layout, physical: table.physical, keys: Array(table.keys), from: rowReads)
                fetched.append(ReadAhead.FetchedRows(layout: table.layout, requested: table.keys, results: results))
            }
            return fetched
        }
        return ReadAhead(indexes: indexes, keys: keys, tape: tape, reads: reads)
    }

    /// The rows read ahead for this step, remembered and counted like the step's own reads.
    func remember(_ ahead: ReadAhead, for build: ActiveBuild) async throws {
        let fetched = try await timings.measure(.prefetch) { try await ahead.reads.value }
        for table in fetched {
            build.workspace.remember(table.layout.position, fetched: ReadModelTables.rows(table.results, table.layout), requested: table.requested)
            build.rowReadKeys += Int64(table.requested.count)
            build.rowReadKeysAhead += Int64(table.requested.count)
            build.rowReadQueries += ReadModelTables.queries(forKeys: table.requested.count)
        }
    }
}
