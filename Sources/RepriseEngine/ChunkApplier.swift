import RepriseMySQL
import RepriseProjection

/// Applies events to builds in chunks: the one place that decides transactions and checkpoints,
/// shared by rebuilds and the live worker.
///
/// Every chunk takes one path: *stage* (`handle` runs the handlers, their rows wait in each
/// build's overlay; `stage` sets them aside for the transaction), *commit* (rows and checkpoints
/// in one MySQL transaction), *record* (the builds' in-memory checkpoints and row caches follow
/// what committed). `ChunkPipeline` runs one chunk's handlers while the chunk before it commits,
/// and asks `ChunkRetryPolicy` whether a failed chunk runs again.
package struct ChunkApplier: Sendable {
    let store: ReadModelStore
    let hooks: RebuildHooks
    var timings = EngineTimings()
    /// Where chunks read rows back (a rebuild's own connection, so reads do not wait behind the
    /// commit in flight); nil: the writer's (the live worker).
    var rowReads: ReadModelStore? = nil
    /// Whether chunks read the next step's rows while a step's handlers run (`ReadAhead`; on
    /// `rowReads` only).
    var readsAhead = false
    /// Runs before a failed chunk is written again, its session reopened (the chunk's number):
    /// a partitioned worker ends the sessions of owners silent past their lease, whose open
    /// transactions may hold the locks the chunk waited on.
    var beforeRedo: (@Sendable (_ chunk: Int) async throws -> Void)? = nil

    package typealias Decoders = (payload: JSONFieldDecoder, metadata: JSONFieldDecoder, readMetadata: Bool)

    /// The decoders for a group of builds: only the fields their handlers read (code projections read everything).
    package static func decoders(for group: [ActiveBuild]) -> Decoders {
        var payloadPaths: [[PathSegment]] = [], metadataPaths: [[PathSegment]] = []
        var readsEverything = false
        for build in group {
            if case .code = build.runnable { readsEverything = true }
            for field in build.definition.requiredFields {
                switch field {
                case .payload(let path): payloadPaths.append(path)
                case .metadata(let path): metadataPaths.append(path)
                default: break
                }
            }
        }
        if readsEverything { return (JSONFieldDecoder(paths: [[]]), JSONFieldDecoder(paths: [[]]), true) }
        let items = JSONFieldDecoder.forEachItems(group.map(\.definition))
        return (JSONFieldDecoder(paths: payloadPaths, forEachItems: items.payload), JSONFieldDecoder(paths: metadataPaths, forEachItems: items.metadata),
                !metadataPaths.isEmpty)
    }

    /// Reads the group's current round in chunks of `chunkSize` events, one step each (the live
    /// worker's chunks). Returns the number of events read.
    package func readRound(
        _ group: [ActiveBuild], reader: EventStoreReader, eventTypes: [String], decoders: Decoders, fetchSize: Int, chunkSize: Int,
        chunkNumber: inout Int, progress: ((_ done: Int64, _ total: Int64) -> Void)? = nil, shouldStop: @Sendable () -> Bool = { false }
    ) async throws -> Int64 {
        try await readRound(
            group, reader: reader, eventTypes: eventTypes, decoders: decoders, fetchSize: fetchSize, chunks: .fixed(chunkSize),
            chunkNumber: &chunkNumber, progress: progress, shouldStop: shouldStop)
    }

    /// Reads the group's current round (visible in its target, not in its base, after its
    /// position) and applies it step by step, committing a chunk whenever `chunks` says. Returns
    /// the number of events read.
    package func readRound(
        _ group: [ActiveBuild], reader: EventStoreReader, eventTypes: [String], decoders: Decoders, fetchSize: Int, chunks: ChunkBounds,
        chunkNumber: inout Int, progress: ((_ done: Int64, _ total: Int64) -> Void)? = nil, shouldStop: @Sendable () -> Bool = { false }
    ) async throws -> Int64 {
        let record = group[0].record
        let spec = EventStoreReader.Round(
            eventTypes: eventTypes, baseSnapshot: record.baseSnapshot, targetSnapshot: record.targetSnapshot,
            afterPosition: group.map(\.record.roundPosition).min() ?? 0, readMetadata: decoders.readMetadata, partition: group[0].partitionSpec,
            envelope: EventStoreReader.envelopeReads(group))
        // A count only for a progress bar (the live worker has none: no count on its hot path).
        // A partition's share of the whole round's count is close enough and spares hashing
        // every key a second time.
        var total: Int64 = 0
        if let progress {
            var whole = spec
            whole.partition = nil
            let roundCount = try await reader.count(whole)
            guard roundCount > 0 else {
                progress(0, 0)
                return 0
            }
            total = spec.partition.map { max(1, roundCount / Int64($0.count)) } ?? roundCount
            progress(0, total)
        }
        let progress = progress ?? { _, _ in }
        var done: Int64 = 0
        var pending: [ProjectionEvent] = []
        let step = chunks.stepEvents
        pending.reserveCapacity(step)
        let pipeline = ChunkPipeline(applier: self, group: group, bounds: chunks, chunkNumber: chunkNumber)
        func submit(_ events: [ProjectionEvent]) async throws {
            guard !events.isEmpty else { return }
            try await pipeline.submit(events)
            done += Int64(events.count)
            progress(done, max(total, done))
            // Only a counted round (a rebuild's) says how much is left.
            if total > 0 { for build in group { build.workspace.noteEventsRead(events.count, leftInRound: total - done) } }
        }
        do {
            try await reader.read(spec, fetchSize: fetchSize, decoder: decoders.payload, metadataDecoder: decoders.metadata, timings: timings) { events in
                // A batch of exactly one step (the default fetch and step sizes): handled as it
                // is, without copying its events into `pending` and out again.
                if pending.isEmpty && events.count == step {
                    if shouldStop() { throw StopRequested() }
                    return try await submit(events)
                }
                pending.append(contentsOf: events)
                while pending.count >= step {
                    if shouldStop() { throw StopRequested() }
                    let events = Array(pending.prefix(step))
                    pending.removeFirst(events.count)
                    try await submit(events)
                }
            }
            if !pending.isEmpty, shouldStop() { throw StopRequested() }
            try await submit(pending)
            try await pipeline.finish()
        } catch let stop as StopRequested {
            // Asked to stop: the events handled so far and the chunk in flight commit (a chunk
            // boundary); nothing new starts.
            try? await pipeline.finish()
            throw stop
        } catch {
            // The chunk in flight is either committed and recorded, or forgotten; the chunk
            // being gathered is dropped (the next run applies it again from the checkpoint).
            await pipeline.abandon()
            throw error
        }
        chunkNumber = pipeline.chunkNumber
        return done
    }

    /// Closes the group's round: everything visible in its target is applied; `nextSnapshot`
    /// becomes the next target.
    package func closeRound(_ group: [ActiveBuild], nextSnapshot: String) async throws {
        try await store.connection.withTransaction { _ in
            for build in group { try await store.checkpoints.closeRound(build.record.checkpoint, nextSnapshot: nextSnapshot) }
        }
        for build in group {
            build.record.baseSnapshot = build.record.targetSnapshot
            build.record.targetSnapshot = nextSnapshot
            build.record.roundPosition = 0
            build.record.rounds += 1
        }
    }


    // MARK: - One chunk: stage -> commit -> record

    /// The chunk being gathered: steps handled since the last chunk was staged.
    struct OpenChunk {
        let opened = ContinuousClock.now
        var events = 0
        var lastPosition: Int64 = 0
        /// Per build of the group, events applied.
        var counts: [Int]

        init(builds: Int) { counts = Array(repeating: 0, count: builds) }

        mutating func add(_ step: [ProjectionEvent], counts applied: [Int]) {
            events += step.count
            lastPosition = step.last?.position ?? lastPosition
            for (index, count) in applied.enumerated() { counts[index] += count }
        }
    }

    /// What a chunk's transaction writes for one build, prepared while the engine goes on.
    struct StagedWrite: Sendable {
        /// The checkpoint the transaction advances (nil: rows only, outside the round order).
        var checkpoint: CheckpointTarget?
        /// Per table: rows MySQL does not hold yet (bulk-loaded), the others (upserted or
        /// deleted), and merge rows that may exist (`MergeRow`).
        var tables: [(layout: TableLayout, physical: String, new: [[ProjectionValue]], rows: [RowKey: [ProjectionValue]?], merges: [MergeBatch])]
        var events: Int
        /// The tables are the build's own (bulk loads allowed): rows that may exist are
        /// rewritten by a bulk load that replaces them too, not by upserts.
        var bulkLoads = false

        var rowCount: Int { tables.reduce(0) { $0 + $1.new.count + $1.rows.count } + mergedRowCount }
        /// Rows bulk-loaded as new to the tables.
        var loadedRowCount: Int { tables.reduce(0) { $0 + $1.new.count } }
        /// Merge rows sent to MySQL to merge into the rows it holds.
        var mergedRowCount: Int { tables.reduce(0) { $0 + $1.merges.reduce(0) { $0 + $1.rows.count } } }
    }

    /// A chunk ready to commit: per build it advances, the rows and the checkpoint.
    struct StagedChunk {
        let number: Int
        let lastPosition: Int64
        let builds: [ActiveBuild]
        let writes: [StagedWrite]
    }

    /// The positions in `events` of the events one build applies: past its checkpoint, handled
    /// by it, and not of a parked stream. Positions, not a filtered copy: copying an event
    /// retains each of its fields, once per build.
    static func indexes(of events: [ProjectionEvent], appliedBy build: ActiveBuild) -> [Int] {
        let after = build.record.roundPosition
        let parked = build.parkedStreams
        var indexes: [Int] = []
        indexes.reserveCapacity(events.count)
        if let declarative = build.declarative {
            // The compiled handlers' short list of types: compared, not hashed.
            for index in events.indices where events[index].position > after && declarative.handles(events[index].type) {
                if parked.isEmpty || !parked.contains(events[index].streamID) { indexes.append(index) }
            }
        } else {
            let handlers = build.definition.handlers
            for index in events.indices where events[index].position > after && handlers[events[index].type] != nil {
                if parked.isEmpty || !parked.contains(events[index].streamID) { indexes.append(index) }
            }
        }
        return indexes
    }

    /// Runs every build's handlers on a step of events; the rows wait in the builds' overlays
    /// (seeing the rows of a chunk still committing). Returns per build the number of events
    /// applied. On a failure no build keeps anything of the chunk being gathered.
    func handle(_ events: [ProjectionEvent], group: [ActiveBuild]) async throws -> [Int] {
        try await handle(events, group: group, next: nil, readAheads: []).counts
    }

    /// `handle`, with the step that comes after this one (`next`): builds that read ahead start
    /// reading its rows while this step's handlers run (`ReadAhead`, one per build of the group,
    /// returned for the next call, which takes them in `readAheads`).
    func handle(_ events: [ProjectionEvent], group: [ActiveBuild], next: [ProjectionEvent]?, readAheads: [ReadAhead?])
        async throws -> (counts: [Int], readAheads: [ReadAhead?])
    {
        var counts: [Int] = [], started: [ReadAhead?] = []
        do {
            for (position, build) in group.enumerated() {
                let relevant = Self.indexes(of: events, appliedBy: build)
                let ahead = position < readAheads.count ? readAheads[position] : nil
                if let declarative = build.declarative, !relevant.isEmpty {
                    let following = next.map { (events: $0, indexes: Self.indexes(of: $0, appliedBy: build)) }
                    started.append(try await applyDeclarative(events, at: relevant, declarative, to: build, store: store, ahead: ahead, next: following))
                } else {
                    await ahead?.discard()
                    try await apply(events, at: relevant, to: build)
                    started.append(nil)
                }
                counts.append(relevant.count)
            }
        } catch {
            // No read outlives the step: the ones started, and the ones this step did not take.
            for ahead in started + readAheads.dropFirst(started.count) { await ahead?.discard() }
            for build in group { build.workspace.discardOverlay() }
            throw error
        }
        return (counts, started)
    }

    /// Moves the gathered chunk's rows to the commit stage, for every build it advances.
    func stage(_ chunk: OpenChunk, number: Int, group: [ActiveBuild], bulkLoadNewRows: Bool = false) -> StagedChunk {
        var builds: [ActiveBuild] = [], writes: [StagedWrite] = []
        for (build, count) in zip(group, chunk.counts) where chunk.lastPosition > build.record.roundPosition {
            builds.append(build)
            writes.append(stageRows(of: build, advancing: build.record.checkpoint, events: count, bulkLoadNewRows: bulkLoadNewRows))
        }
        return StagedChunk(number: number, lastPosition: chunk.lastPosition, builds: builds, writes: writes)
    }

    /// One build's overlay, moved to the commit stage. With `bulkLoadNewRows` (a build's own
    /// tables only: live tables have other writers' rows), rows MySQL does not hold yet are
    /// set apart for a bulk load.
    private func stageRows(of build: ActiveBuild, advancing checkpoint: CheckpointTarget?, events: Int, bulkLoadNewRows: Bool = false) -> StagedWrite {
        let workspace = build.workspace
        if bulkLoadNewRows && !build.writesLiveTables {
            let tables = workspace.stageOverlaySeparatingNewRows().map { split in
                (layout: split.layout, physical: build.tableName(split.layout.name), new: split.new, rows: split.others, merges: split.merges)
            }
            return StagedWrite(checkpoint: checkpoint, tables: tables, events: events, bulkLoads: true)
        }
        // Without bulk loads every merge row may exist: all go by merging upserts.
        let merges = workspace.stageOverlay()
        let tables = zip(workspace.tables, zip(workspace.pendingRows, merges)).compactMap { layout, staged in
            staged.0.isEmpty && staged.1.isEmpty
                ? nil : (layout: layout, physical: build.tableName(layout.name), new: [[ProjectionValue]](), rows: staged.0, merges: staged.1)
        }
        return StagedWrite(checkpoint: checkpoint, tables: tables, events: events)
    }

    /// Writes a staged chunk's rows and checkpoints in one transaction; returns rows written per build.
    /// `committed` is marked once the transaction committed (a failed one is seen when the
    /// pipeline waits for it at the chunk's end, as before).
    func commit(_ writes: [StagedWrite], through lastPosition: Int64, number: Int, committed: CommitCompletion? = nil) async throws -> [Int] {
        let store = store, hooks = hooks
        let started = ContinuousClock.now
        defer { timings.add(.write, ContinuousClock.now - started) }
        let written = try await store.connection.withTransaction { _ in
            var written: [Int] = []
            for write in writes {
                written.append(try await Self.writeRows(write, to: store))
                if let checkpoint = write.checkpoint { try await store.checkpoints.advance(checkpoint, to: lastPosition, events: write.events) }
            }
            try await hooks.beforeChunkCommit(number)
            return written
        }
        // Before the hook: what the hook waits for (a test) then sees the chunk recorded at the next step.
        committed?.mark()
        try await hooks.afterCommitStatement(number)
        return written
    }

    /// Writes one build's staged rows, inside the caller's transaction; returns the rows written.
    private static func writeRows(_ write: StagedWrite, to store: ReadModelStore) async throws -> Int {
        var rows = 0
        for table in write.tables {
            rows += try await store.tables.writeRows(
                table.layout, physical: table.physical, new: table.new, rows: table.rows, merges: table.merges, replacingByLoad: write.bulkLoads)
        }
        return rows
    }

    /// The chunk committed: every build it advanced remembers its rows and its checkpoint.
    func record(_ staged: StagedChunk, written: [Int]) {
        for (build, (write, rows)) in zip(staged.builds, zip(staged.writes, written)) {
            build.workspace.commitPending()
            advanceInMemory(build, to: staged.lastPosition, events: write.events)
            build.rowsWritten += Int64(rows)
            build.rowsLoaded += Int64(write.loadedRowCount)
            build.rowsMerged += Int64(write.mergedRowCount)
        }
    }

    private func advanceInMemory(_ build: ActiveBuild, to position: Int64, events: Int) {
        build.record.roundPosition = position
        build.record.eventsApplied += Int64(events)
        build.eventsApplied += Int64(events)
    }

    /// Whether a chunk whose attempt failed committed all the same (the server committed; its
    /// answer was lost): every build's checkpoint then already stands at the chunk's last
    /// position, and the chunk is recorded as done instead of written again (which would find
    /// the checkpoint moved and stop).
    func recordIfCommitted(_ staged: StagedChunk) async throws -> Bool {
        guard !staged.builds.isEmpty else { return false }
        for build in staged.builds {
            guard try await store.checkpoints.position(build.record.checkpoint) == staged.lastPosition else { return false }
        }
        record(staged, written: staged.writes.map(\.rowCount))
        return true
    }

    /// Reads rows for a chunk, on `rowReads` when set. A read repeats harmlessly, so a lost read
    /// connection is reopened and the read made once more.
    func readRows(_ layout: TableLayout, physical: String, keys: [RowKey], store: ReadModelStore) async throws -> [RowKey: [ProjectionValue]] {
        guard let rowReads else { return try await store.tables.loadRows(layout, physical: physical, keys: keys) }
        return ReadModelTables.rows(try await Self.selectRows(layout, physical: physical, keys: keys, from: rowReads), layout)
    }

    /// The queries of `readRows` on the read connection, their answers unconverted.
    static func selectRows(_ layout: TableLayout, physical: String, keys: [RowKey], from rowReads: ReadModelStore) async throws -> [MySQLResult] {
        do {
            return try await rowReads.tables.selectRows(layout, physical: physical, keys: keys)
        } catch {
            guard TransientFailure.isConnectionLoss(error), await rowReads.connection.isLost else { throw error }
            _ = try await rowReads.connection.reopen()
            return try await rowReads.tables.selectRows(layout, physical: physical, keys: keys)
        }
    }

    /// Before a chunk is redone: a lost MySQL session is reopened here, explicitly, and what it
    /// lost is reported. The writer session holds no named locks, so a reopen that lost any (or
    /// session settings) is not a safe place to redo the chunk: it stops instead.
    func reopenIfLost(chunk: Int) async throws {
        guard await store.connection.isLost else { return }
        let reopened = try await store.connection.reopen()
        await hooks.connectionReopened(chunk, reopened)
        guard reopened.lostNamedLocks.isEmpty, reopened.lostSessionSettings.isEmpty else {
            throw EngineError(.database, message: "chunk \(chunk) cannot be redone on a new session: \(reopened)")
        }
    }

    /// Records why a group's chunk failed for good, for `status`.
    func recordFailure(_ error: any Error, group: [ActiveBuild]) async {
        if let first = group.first { await store.registry.recordError(first.record.buildID, "\(error)") }
    }

    // MARK: - Handlers

    /// Runs one build's handlers on events (already filtered for it); rows go to its overlay.
    func apply(_ events: [ProjectionEvent], to build: ActiveBuild) async throws {
        try await apply(events, at: Array(events.indices), to: build)
    }

    /// Runs one build's handlers on the events at `indexes` (filtered for it); rows go to its overlay.
    func apply(_ events: [ProjectionEvent], at indexes: [Int], to build: ActiveBuild) async throws {
        guard !indexes.isEmpty else { return }
        if let declarative = build.declarative {
            _ = try await applyDeclarative(events, at: indexes, declarative, to: build, store: store)
        } else if case .code(let projection) = build.runnable {
            let events = indexes.count == events.count ? events : indexes.map { events[$0] }
            try await prefetchRowsNeeded(by: events, projection, for: build, store: store)
            let rows = ProjectionRows(workspace: build.workspace, projection: build.name) { layout, keys in
                build.rowReadQueries += 1
                build.rowReadKeys += Int64(keys.count)
                return try await readRows(layout, physical: build.tableName(layout.name), keys: keys, store: store)
            }
            for event in events {
                do {
                    try await projection.handle(event, rows: rows)
                } catch let error as EngineError {
                    var located = error
                    located.position = located.position ?? event.position
                    located.eventType = located.eventType ?? event.type
                    throw located
                } catch {
                    throw EngineError(.handlerFailed, projection: build.name, position: event.position, eventType: event.type, message: "\(error)", underlying: error)
                }
            }
        }
    }

    /// Applies events outside the round order (a parked stream released by an operator) and
    /// runs `alsoInTransaction` in the same MySQL transaction; the checkpoint does not move.
    package func applyOutOfRound(_ events: [ProjectionEvent], to build: ActiveBuild, alsoInTransaction: @escaping @Sendable () async throws -> Void) async throws {
        let store = store
        do {
            try await apply(events, to: build)
            let write = stageRows(of: build, advancing: nil, events: events.count)
            try await store.connection.withTransaction { _ in
                _ = try await Self.writeRows(write, to: store)
                try await alsoInTransaction()
            }
            build.workspace.commitPending()
        } catch {
            build.workspace.reset()
            throw error
        }
    }
}
