import RepriseMySQL
import RepriseProjection

/// Applies events to builds in chunks: the one place that decides transactions and checkpoints,
/// shared by rebuilds and the live worker.
package struct ChunkApplier: Sendable {
    let store: ReadModelStore
    let hooks: RebuildHooks
    var timings = EngineTimings()

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
        return (JSONFieldDecoder(paths: payloadPaths), JSONFieldDecoder(paths: metadataPaths), !metadataPaths.isEmpty)
    }

    /// Reads the group's current round (visible in its target, not in its base, after its
    /// position) and applies it chunk by chunk. Returns the number of events read.
    package func readRound(
        _ group: [ActiveBuild], reader: EventStoreReader, eventTypes: [String], decoders: Decoders, fetchSize: Int, chunkSize: Int,
        chunkNumber: inout Int, progress: ((_ done: Int64, _ total: Int64) -> Void)? = nil, shouldStop: @Sendable () -> Bool = { false }
    ) async throws -> Int64 {
        let record = group[0].record
        let spec = EventStoreReader.Round(
            eventTypes: eventTypes, baseSnapshot: record.baseSnapshot, targetSnapshot: record.targetSnapshot,
            afterPosition: group.map(\.record.roundPosition).min() ?? 0, readMetadata: decoders.readMetadata, partition: group[0].partitionSpec)
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
        pending.reserveCapacity(chunkSize)
        var number = chunkNumber
        let pipeline = ChunkPipeline(applier: self, group: group)
        do {
            try await reader.read(spec, fetchSize: fetchSize, decoder: decoders.payload, metadataDecoder: decoders.metadata, timings: timings) { events in
                pending.append(contentsOf: events)
                while pending.count >= chunkSize {
                    // Asked to stop: the chunk in flight still commits (`finish` below); no new one starts.
                    if shouldStop() { throw StopRequested() }
                    let chunk = Array(pending.prefix(chunkSize))
                    pending.removeFirst(chunk.count)
                    number += 1
                    try await pipeline.submit(chunk, number: number)
                    done += Int64(chunk.count)
                    progress(done, max(total, done))
                }
            }
            if !pending.isEmpty {
                if shouldStop() { throw StopRequested() }
                number += 1
                try await pipeline.submit(pending, number: number)
                done += Int64(pending.count)
                progress(done, max(total, done))
            }
            try await pipeline.finish()
        } catch {
            // Whatever failed, the chunk in flight is either committed and recorded, or forgotten.
            try? await pipeline.finish()
            throw error
        }
        chunkNumber = number
        return done
    }

    /// Closes the group's round: everything visible in its target is applied; `nextSnapshot`
    /// becomes the next target.
    package func closeRound(_ group: [ActiveBuild], nextSnapshot: String) async throws {
        try await store.connection.withTransaction { _ in
            for build in group { try await store.closeRound(build.record, nextSnapshot: nextSnapshot) }
        }
        for build in group {
            build.record.baseSnapshot = build.record.targetSnapshot
            build.record.targetSnapshot = nextSnapshot
            build.record.roundPosition = 0
            build.record.rounds += 1
        }
    }

    /// Applies one chunk to every build of the group and commits rows and checkpoints together.
    /// `mayHaveCommitted`: an earlier attempt of this chunk failed after sending its COMMIT.
    func applyChunk(
        _ events: [ProjectionEvent], number: Int, group: [ActiveBuild], store: ReadModelStore, hooks: RebuildHooks, mayHaveCommitted: Bool = false
    ) async throws {
        guard let lastPosition = events.last?.position else { return }
        var attempt = 0
        while true {
            attempt += 1
            do {
                if attempt > 1 || mayHaveCommitted, try await chunkCommitted(events, group: group, through: lastPosition) {
                    try await hooks.afterChunkCommit(number)
                    return
                }
                var counts: [Int] = []
                for build in group {
                    let relevant = events.filter {
                        $0.position > build.record.roundPosition && build.definition.handlers[$0.type] != nil
                            && !build.parkedStreams.contains($0.streamID)
                    }
                    try await apply(relevant, to: build, store: store)
                    counts.append(relevant.count)
                }
                var written: [Int] = []
                let writeStarted = ContinuousClock.now
                defer { timings.add(.write, ContinuousClock.now - writeStarted) }
                try await store.connection.withTransaction { _ in
                    for (build, count) in zip(group, counts) where lastPosition > build.record.roundPosition {
                        var rows = 0
                        for (table, changes) in build.workspace.overlay {
                            guard let layout = build.workspace.layouts[table] else { continue }
                            rows += try await store.writeRows(layout, physical: build.tableName(table), rows: changes)
                        }
                        written.append(rows)
                        try await store.advance(build.record, to: lastPosition, events: count)
                    }
                    try await hooks.beforeChunkCommit(number)
                }
                var index = 0
                for (build, count) in zip(group, counts) where lastPosition > build.record.roundPosition {
                    build.workspace.commitOverlay()
                    build.record.roundPosition = lastPosition
                    build.record.eventsApplied += Int64(count)
                    build.eventsApplied += Int64(count)
                    build.rowsWritten += Int64(written[index])
                    index += 1
                }
                try await hooks.afterChunkCommit(number)
                return
            } catch {
                for build in group { build.workspace.reset() }
                // A dropped connection or a deadlock loses the transaction, never its effect twice:
                // the chunk is applied again from the events in memory.
                if attempt < Self.maxAttempts, Self.isRetryable(error, group: group) {
                    try await Task.sleep(for: TransientFailure.backoff(attempt: attempt))
                    continue
                }
                if let first = group.first { await store.recordError(first.record.buildID, "\(error)") }
                throw error
            }
        }
    }

    /// Whether a chunk whose transaction failed with a lost connection committed all the same
    /// (the server committed; its answer was lost): every build's checkpoint then already stands
    /// at the chunk's last position, and the chunk is recorded as done instead of applied again
    /// (which would find the checkpoint moved and stop). Row caches were reset, so later chunks
    /// read the committed rows from MySQL.
    func chunkCommitted(_ events: [ProjectionEvent], group: [ActiveBuild], through lastPosition: Int64) async throws -> Bool {
        let pending = group.filter { lastPosition > $0.record.roundPosition }
        guard !pending.isEmpty else { return false }
        for build in pending {
            guard try await store.checkpointPosition(build.record) == lastPosition else { return false }
        }
        for build in pending {
            let count = Int64(events.filter {
                $0.position > build.record.roundPosition && build.definition.handlers[$0.type] != nil && !build.parkedStreams.contains($0.streamID)
            }.count)
            build.record.roundPosition = lastPosition
            build.record.eventsApplied += count
            build.eventsApplied += count
        }
        return true
    }

    /// What a chunk's transaction writes for one build, prepared while the engine goes on.
    struct StagedWrite: Sendable {
        var record: BuildRecord
        var tables: [(layout: TableLayout, physical: String, rows: [RowKey: [ProjectionValue]?])]
        var events: Int
    }

    /// Writes staged chunks' rows and checkpoints in one transaction; returns rows written per build.
    func commit(_ writes: [StagedWrite], to lastPosition: Int64, number: Int) async throws -> [Int] {
        let store = store, hooks = hooks
        let started = ContinuousClock.now
        defer { timings.add(.write, ContinuousClock.now - started) }
        let written = try await store.connection.withTransaction { _ in
            var written: [Int] = []
            for write in writes {
                var rows = 0
                for table in write.tables {
                    rows += try await store.writeRows(table.layout, physical: table.physical, rows: table.rows)
                }
                written.append(rows)
                try await store.advance(write.record, to: lastPosition, events: write.events)
            }
            try await hooks.beforeChunkCommit(number)
            return written
        }
        try await hooks.afterCommitStatement(number)
        return written
    }

    /// A MySQL failure the chunk survives by running again: a lost or refused connection (a
    /// restarting server), a deadlock, a lock wait timeout.
    /// Live tables are not retried here: a reconnect loses the named locks (projection or
    /// partition apply lock) that keep a swap, or a new owner after a lease expired, away. The
    /// live worker reopens its runner instead, takes the locks again and resumes from the
    /// committed checkpoints.
    static func isRetryable(_ error: any Error, group: [ActiveBuild]) -> Bool {
        (error is MySQLError || error is MySQLTransactionError) && TransientFailure.isTransient(error) && !group.contains(where: \.writesLiveTables)
    }

    /// Attempts per chunk: with the backoff, about 25 s for a server to come back.
    static let maxAttempts = 10

    func apply(_ events: [ProjectionEvent], to build: ActiveBuild, store: ReadModelStore) async throws {
        guard !events.isEmpty else { return }
        let workspace = build.workspace
        if let declarative = build.declarative {
            var keys: [String: Set<RowKey>] = [:]
            for event in events { declarative.keysTouched(by: event, into: &keys) }
            for (table, tableKeys) in keys {
                guard let layout = workspace.layouts[table] else { continue }
                let unknown = tableKeys.filter { if case .unknown = workspace.lookup(table, $0) { true } else { false } }
                guard !unknown.isEmpty else { continue }
                let fetched = try await timings.measure(.prefetch) {
                    try await store.loadRows(layout, physical: build.tableName(table), keys: Array(unknown))
                }
                workspace.remember(table, fetched: fetched, requested: unknown)
            }
            try timings.measure(.handle) {
                for event in events { try declarative.apply(event, to: workspace) }
            }
        } else if case .code(let projection) = build.runnable {
            let rows = ProjectionRows(workspace: workspace, projection: build.name) { layout, keys in
                try await store.loadRows(layout, physical: build.tableName(layout.name), keys: keys)
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
                    throw EngineError(.handlerFailed, projection: build.name, position: event.position, eventType: event.type, message: "\(error)")
                }
            }
        }
    }

    /// Applies events outside the round order (a parked stream released by an operator) and
    /// runs `alsoInTransaction` in the same MySQL transaction; the checkpoint does not move.
    package func applyOutOfRound(_ events: [ProjectionEvent], to build: ActiveBuild, alsoInTransaction: @escaping @Sendable () async throws -> Void) async throws {
        do {
            try await apply(events, to: build, store: store)
            try await store.connection.withTransaction { _ in
                for (table, changes) in build.workspace.overlay {
                    guard let layout = build.workspace.layouts[table] else { continue }
                    _ = try await store.writeRows(layout, physical: build.tableName(table), rows: changes)
                }
                try await alsoInTransaction()
            }
            build.workspace.commitOverlay()
        } catch {
            build.workspace.reset()
            throw error
        }
    }
}

/// Two-stage chunk pipeline: while chunk N's rows and checkpoint commit in MySQL (on the MySQL
/// connection's own thread), the handlers already run on chunk N+1 against a workspace that sees
/// chunk N's rows. Chunk N+1 is staged only after N committed, so checkpoints stay in order. If
/// N's transaction fails, both chunks are applied again, one at a time, from the events in memory.
final class ChunkPipeline {
    let applier: ChunkApplier
    let group: [ActiveBuild]
    private var inFlight: (task: Task<[Int], any Error>, events: [ProjectionEvent], counts: [Int], lastPosition: Int64, number: Int, builds: [ActiveBuild])?

    init(applier: ChunkApplier, group: [ActiveBuild]) {
        self.applier = applier
        self.group = group
    }

    func submit(_ events: [ProjectionEvent], number: Int) async throws {
        guard let lastPosition = events.last?.position else { return }
        var counts: [Int] = []
        do {
            for build in group {
                let relevant = events.filter {
                    $0.position > build.record.roundPosition && build.definition.handlers[$0.type] != nil
                        && !build.parkedStreams.contains($0.streamID)
                }
                try await applier.apply(relevant, to: build, store: applier.store)
                counts.append(relevant.count)
            }
        } catch {
            for build in group { build.workspace.discardOverlay() }
            throw error
        }
        // The previous chunk must be committed before this one is staged.
        guard try await settle(thenRedo: (events, number)) else { return }
        var writes: [ChunkApplier.StagedWrite] = []
        var builds: [ActiveBuild] = []
        var stagedCounts: [Int] = []
        for (build, count) in zip(group, counts) where lastPosition > build.record.roundPosition {
            build.workspace.stageOverlay()
            let tables = build.workspace.pending.compactMap { table, rows in
                build.workspace.layouts[table].map { (layout: $0, physical: build.tableName(table), rows: rows) }
            }
            writes.append(ChunkApplier.StagedWrite(record: build.record, tables: tables, events: count))
            builds.append(build)
            stagedCounts.append(count)
        }
        let applier = applier
        let task = Task { try await applier.commit(writes, to: lastPosition, number: number) }
        inFlight = (task, events, stagedCounts, lastPosition, number, builds)
    }

    /// Waits for the chunk in flight and records it.
    func finish() async throws {
        _ = try await settle(thenRedo: nil)
    }

    /// Waits for the chunk in flight. When its transaction failed for a retryable reason, applies
    /// it again, then `thenRedo` (whose handlers ran on top of it), one at a time, and returns false.
    private func settle(thenRedo next: (events: [ProjectionEvent], number: Int)?) async throws -> Bool {
        guard let previous = inFlight else { return true }
        inFlight = nil
        do {
            let written = try await previous.task.value
            record(previous.builds, counts: previous.counts, written: written, lastPosition: previous.lastPosition)
            try await applier.hooks.afterChunkCommit(previous.number)
            return true
        } catch {
            for build in group { build.workspace.reset() }
            guard ChunkApplier.isRetryable(error, group: group) else {
                if let first = group.first { await applier.store.recordError(first.record.buildID, "\(error)") }
                throw error
            }
            try await applier.applyChunk(
                previous.events, number: previous.number, group: group, store: applier.store, hooks: applier.hooks, mayHaveCommitted: true)
            if let next {
                try await applier.applyChunk(next.events, number: next.number, group: group, store: applier.store, hooks: applier.hooks)
            }
            return false
        }
    }

    private func record(_ builds: [ActiveBuild], counts: [Int], written: [Int], lastPosition: Int64) {
        for (index, build) in builds.enumerated() {
            build.workspace.commitPending()
            build.record.roundPosition = lastPosition
            build.record.eventsApplied += Int64(counts[index])
            build.eventsApplied += Int64(counts[index])
            build.rowsWritten += Int64(written[index])
        }
    }
}
