import RepriseProjection

/// How a chunk reads the rows its events need: batched, one query per table per stage, never
/// one per event.
///
/// Stage 1 reads every row whose key the events give directly (the rows operations write, and
/// lookups keyed by the event or by rows already in memory). Then the events are applied in
/// order. An event that needs a row still unknown (a chained lookup, a key computed from a
/// lookup, a looked-up row written earlier in this chunk that points somewhere new) is undone;
/// a speculative pass runs the rest of the chunk only to note every row it would need, those
/// are read in one query per table (the next stage), and applying resumes at that event. Rows
/// written earlier in the chunk, in earlier chunks (the workspace's cache) and rows the build
/// never wrote (the written-key filter) cost no query.
extension ChunkApplier {
    /// Applies a step of events; with `next` (the step after it) and `ahead` (the rows read for
    /// this step while the one before was handled), see `ReadAhead`. Returns the read-ahead
    /// started for `next`, nil when none was started.
    func applyDeclarative(_ events: [ProjectionEvent], at indexes: [Int], _ declarative: DeclarativeProjection, to build: ActiveBuild,
                          store: ReadModelStore, ahead: ReadAhead? = nil, next: (events: [ProjectionEvent], indexes: [Int])? = nil) async throws -> ReadAhead? {
        let workspace = build.workspace
        var keys: TableKeys
        let tape: KeyTape?
        if let ahead { try await remember(ahead, for: build) }
        if let ahead, ahead.indexes == indexes {
            (keys, tape) = (ahead.keys, ahead.tape)
        } else {
            (keys, tape) = timings.measure(.handle) { Self.keysTouched(by: events, at: indexes, declarative, workspace: workspace) }
        }
        try await prefetch(keys, for: build, store: store)
        // Every key of this step is known now, so the next step's reads ask only for rows this
        // step does not touch: what they return stays true while this step is applied.
        let started = next.flatMap { readAhead($0.events, at: $0.indexes, declarative, for: build) }
        do {
            try await applyInStages(events, at: indexes, declarative, to: build, store: store, tape: tape)
        } catch {
            await started?.discard()
            throw error
        }
        return started
    }

    /// The keys a step's events touch, with their tape (without lookups a key depends on the
    /// event only: the first pass keeps the keys for the second).
    static func keysTouched(by events: [ProjectionEvent], at indexes: [Int], _ declarative: DeclarativeProjection, workspace: RowWorkspace)
        -> (TableKeys, KeyTape?)
    {
        var keys = TableKeys(workspace.tables)
        let tape = declarative.hasLookups ? nil : KeyTape()
        let frame = declarative.frame(over: events, at: indexes[0])
        for index in indexes { declarative.keysTouched(in: frame, at: index, workspace: workspace, into: &keys, tape: tape) }
        return (keys, tape)
    }

    /// Applies the events in order; an event that needs a row not read yet starts the next stage.
    private func applyInStages(_ events: [ProjectionEvent], at indexes: [Int], _ declarative: DeclarativeProjection, to build: ActiveBuild,
                               store: ReadModelStore, tape: KeyTape?) async throws {
        let workspace = build.workspace
        var start = 0
        while start < indexes.count {
            var stopped: Int?
            try timings.measure(.handle) {
                let frame = declarative.frame(over: events, at: indexes[start], keys: tape)
                for next in start..<indexes.count {
                    tape?.rewind(toEvent: next)
                    if try !declarative.apply(in: frame, at: indexes[next], to: workspace) {
                        stopped = next
                        break
                    }
                }
            }
            guard let stop = stopped else { return }
            workspace.beginSpeculation()
            timings.measure(.handle) {
                for next in indexes[stop...] { declarative.speculate(events, at: next, on: workspace) }
            }
            let (missing, missingLookupTables) = workspace.endSpeculation()
            guard !missing.isEmpty else {
                // The stopped event needs a row, so the speculative pass, which starts from the same state, notes it.
                let event = events[indexes[stop]]
                throw EngineError(.handlerFailed, projection: build.name, position: event.position, eventType: event.type,
                                  message: "the event needs a row the engine could not determine (engine bug)")
            }
            try await prefetch(missing, lookupTables: missingLookupTables, for: build, store: store)
            start = stop
        }
    }

    /// Code projections: the rows `rowsNeeded(by:)` declares for the chunk's events, read the same way.
    func prefetchRowsNeeded(by events: [ProjectionEvent], _ projection: any Projection, for build: ActiveBuild, store: ReadModelStore) async throws {
        var keys: [String: Set<RowKey>] = [:]
        for event in events {
            for request in projection.rowsNeeded(by: event) {
                guard let layout = build.workspace.layouts[request.table] else {
                    throw EngineError(.handlerFailed, projection: build.name, position: event.position, eventType: event.type,
                                      message: "rowsNeeded names unknown table \(request.table)")
                }
                do {
                    keys[request.table, default: []].insert(try layout.canonicalKey(request.key))
                } catch {
                    throw EngineError(.handlerFailed, projection: build.name, position: event.position, eventType: event.type,
                                      message: "rowsNeeded: \(error.message)")
                }
            }
        }
        try await prefetch(keys, lookupTables: Set(keys.keys), for: build, store: store)
    }

    /// Reads the keys the workspace does not know, one query per table (split past
    /// `ReadModelTables.keysPerStatement` keys), and counts the queries.
    func prefetch(_ keys: [String: Set<RowKey>], lookupTables: Set<String>, for build: ActiveBuild, store: ReadModelStore) async throws {
        var byPosition = TableKeys(build.workspace.tables)
        for (table, tableKeys) in keys {
            guard let layout = build.workspace.layouts[table] else { continue }
            for key in tableKeys { byPosition.insert(key, table: layout.position) }
            if lookupTables.contains(table) { byPosition.lookupTables.insert(layout.position) }
        }
        try await prefetch(byPosition, for: build, store: store)
    }

    /// `prefetch` of keys collected by table position; tables in name order, as the queries always went.
    func prefetch(_ keys: TableKeys, for build: ActiveBuild, store: ReadModelStore) async throws {
        let workspace = build.workspace
        for layout in workspace.tables.sorted(by: { $0.name < $1.name }) {
            let tableKeys = keys.byTable[layout.position]
            guard !tableKeys.isEmpty else { continue }
            let unknown = tableKeys.filter { if case .unknown = workspace.lookup(layout.position, $0) { true } else { false } }
            guard !unknown.isEmpty else { continue }
            let fetched = try await timings.measure(.prefetch) {
                try await readRows(layout, physical: build.tableName(layout.name), keys: Array(unknown), store: store)
            }
            build.rowReadKeys += Int64(unknown.count)
            let queries = ReadModelTables.queries(forKeys: unknown.count)
            build.rowReadQueries += queries
            if keys.lookupTables.contains(layout.position) { build.lookupQueries += queries }
            workspace.remember(layout.position, fetched: fetched, requested: unknown)
        }
    }
}
