import RepriseSupport
import RepriseEventSource
import RepriseEventStore
import RepriseMySQL
import RepriseProjection
import ReprisePostgres
import Synchronization

/// Full rebuilds: streams events from PostgreSQL into new (green) tables in checkpointed
/// chunks, catches up with events committed meanwhile, checks, and swaps the tables in with
/// one `RENAME TABLE`. Resumes after any crash from the last committed chunk.
///
/// ```swift
/// let engine = RebuildEngine(postgresURL: pg, mysqlURL: my)
/// let results = try await engine.rebuild([.file(orderSummary)]) { progress in print(progress.eventsDone) }
/// ```
public struct RebuildEngine: Sendable {
    public let postgresURL: String
    public let mysqlURL: String
    /// Where events are read: Reprise's own store or a mapped table.
    public let source: EventSource
    public let options: RebuildOptions
    /// Where the time of this engine's rebuilds went (summed over its runs).
    public let timings = EngineTimings()

    public init(postgresURL: String, mysqlURL: String, source: EventSource, options: RebuildOptions = RebuildOptions()) {
        self.postgresURL = postgresURL
        self.mysqlURL = mysqlURL
        self.source = source
        self.options = options
    }

    /// A rebuild from Reprise's own store.
    public init(postgresURL: String, mysqlURL: String, storeSchema: EventStoreSchema = .standard, options: RebuildOptions = RebuildOptions()) {
        self.init(postgresURL: postgresURL, mysqlURL: mysqlURL, source: .reprise(storeSchema), options: options)
    }

    /// The lock a rebuild of `projection` holds for its whole run (`LockNames.rebuild`).
    public static func rebuildLockName(_ projection: String, database: String) -> String {
        LockNames.rebuild(projection, database: database)
    }

    /// The lock that serializes writers of a projection's live tables (`LockNames.projection`).
    public static func projectionLockName(_ projection: String, database: String) -> String {
        LockNames.projection(projection, database: database)
    }

    public func rebuild(
        _ projections: [RunnableProjection],
        hooks: RebuildHooks = RebuildHooks(),
        progress: @escaping @Sendable (RebuildProgress) -> Void = { _ in }
    ) async throws -> [RebuildResult] {
        guard !projections.isEmpty else { throw EngineError(.invalidRequest, message: "no projection to rebuild") }
        let names = projections.map(\.definition.name)
        guard Set(names).count == names.count else { throw EngineError(.invalidRequest, message: "a projection is named twice") }

        // The plain rebuild never queries the store while its cursor is open (snapshots are
        // taken before and between rounds), so one PostgreSQL session serves as reader and
        // control: each login costs the client SCRAM's 4,096 HMAC rounds and a TLS handshake
        // (docs/throughput-decode3.md).
        return try await EngineConnections.with(postgresURL: postgresURL, mysqlURL: mysqlURL, controlSession: .reader) { connections in
            // One rebuild per projection at a time.
            let locks = names.map { Self.rebuildLockName($0, database: connections.database) }
            return try await connections.locks.withNamedLocks(locks, busy: { lock in
                let name = names[locks.firstIndex(of: lock) ?? 0]
                return EngineError(.locked, projection: name, message: "a rebuild of \(name) is already running (lock \(lock) is held)")
            }) {
                try await rebuild(projections, names: names, connections: connections, hooks: hooks, progress: progress)
            }
        }
    }

    /// A rebuild holding its connections and its projections' rebuild locks.
    private func rebuild(
        _ projections: [RunnableProjection], names: [String], connections: EngineConnections, hooks: RebuildHooks,
        progress: @escaping @Sendable (RebuildProgress) -> Void
    ) async throws -> [RebuildResult] {
        let (reader, control, store) = (connections.reader, connections.control, connections.store)
        let resolved = try await Self.resolve(source, on: control)
        let snapshotReader = EventStoreReader(connection: control, source: resolved)
        let startSnapshot = try await snapshotReader.currentSnapshot()
        var builds: [ActiveBuild] = []
        for runnable in projections {
            builds.append(try await prepareBuild(runnable, store: store, snapshot: startSnapshot))
        }

        // Builds that are at the same round read together: one cursor, one decode.
        var groups: [[ActiveBuild]] = []
        for build in builds {
            if let index = groups.firstIndex(where: {
                $0[0].record.baseSnapshot == build.record.baseSnapshot && $0[0].record.targetSnapshot == build.record.targetSnapshot
            }) {
                groups[index].append(build)
            } else {
                groups.append([build])
            }
        }
        try await withRowReadConnection { rowReads in
            for group in groups {
                try await runRounds(group, reader: EventStoreReader(connection: reader, source: resolved), snapshots: snapshotReader,
                                    store: store, rowReads: rowReads, hooks: hooks, progress: progress)
            }
        }

        var results: [RebuildResult] = []
        for build in builds {
            let (tableRows, previous) = try await checkAndSwap(build, connections: connections, hooks: hooks, progress: progress)
            var result = RebuildResult(
                projection: build.name, version: build.definition.version, buildID: build.record.buildID, resumed: build.resumed,
                eventsApplied: build.eventsApplied, rowsWritten: build.rowsWritten, catchUpRounds: build.catchUpRounds,
                tableRows: tableRows, swapped: options.swap, previousBuildID: previous, appliedSnapshot: build.record.baseSnapshot,
                rowReadQueries: build.rowReadQueries, lookupQueries: build.lookupQueries, rowReadKeys: build.rowReadKeys, rowsLoaded: build.rowsLoaded,
                rowReadKeysAhead: build.rowReadKeysAhead, rowsMerged: build.rowsMerged)
            result.writtenKeyFilterBytes = build.workspace.filterBytes
            results.append(result)
        }
        progress(RebuildProgress(projections: names, phase: .done, eventsDone: 0, eventsTotal: 0))
        return results
    }

    /// Counts the green tables' rows, then (unless `--no-swap`) runs the checks, swaps the tables
    /// in and applies retention. Returns the row counts and the build that was live before.
    func checkAndSwap(
        _ build: ActiveBuild, connections: EngineConnections, hooks: RebuildHooks, progress: @escaping @Sendable (RebuildProgress) -> Void
    ) async throws -> (tableRows: [String: Int64], previous: Int64?) {
        let store = connections.store
        var tableRows: [String: Int64] = [:]
        for table in build.definition.tables {
            tableRows[table.name] = try await store.tables.rowCount(build.record.physicalName(table.name))
        }
        guard options.swap else { return (tableRows, nil) }
        progress(RebuildProgress(projections: [build.name], phase: .checking, eventsDone: 0, eventsTotal: 0))
        try await runChecks(build, store: store, tableRows: tableRows)
        try await hooks.beforeSwap()
        progress(RebuildProgress(projections: [build.name], phase: .swapping, eventsDone: 0, eventsTotal: 0))
        let previous = try await connections.retakingLostLocks(hooks: hooks) {
            try await swap(build, store: store, locks: connections.locks, database: connections.database, afterRename: hooks.afterSwapRename)
        }
        try await applyRetention(build.name, store: store)
        return (tableRows, previous)
    }

    // MARK: - Rollback

    /// Makes the most recently retired build of a projection live again: catches its tables up
    /// with every event committed since it was retired (same rounds as a rebuild), then swaps it in
    /// with one `RENAME TABLE`. The build that was live becomes retired (kept for a roll forward).
    /// The retired build must be of `runnable`'s version and definition.
    public func rollback(_ runnable: RunnableProjection, progress: @escaping @Sendable (RebuildProgress) -> Void = { _ in }) async throws -> RebuildResult {
        let definition = runnable.definition
        return try await EngineConnections.with(postgresURL: postgresURL, mysqlURL: mysqlURL) { connections in
            let lock = Self.rebuildLockName(definition.name, database: connections.database)
            return try await connections.locks.withNamedLocks([lock], busy: { lock in
                EngineError(.locked, projection: definition.name, message: "a rebuild of \(definition.name) is running (lock \(lock) is held)")
            }) {
                try await rollback(runnable, connections: connections, progress: progress)
            }
        }
    }

    /// A rollback holding its connections and the projection's rebuild lock.
    private func rollback(
        _ runnable: RunnableProjection, connections: EngineConnections, progress: @escaping @Sendable (RebuildProgress) -> Void
    ) async throws -> RebuildResult {
        let definition = runnable.definition
        let (reader, control, locks, store, database) =
            (connections.reader, connections.control, connections.locks, connections.store, connections.database)
        guard let retired = try await store.registry.builds(of: definition.name, states: [.retired]).last else {
            throw EngineError(.invalidRequest, projection: definition.name, message: "no retired build with tables to roll back to (see `reprise status`)")
        }
        guard retired.version == definition.version, retired.definitionHash == definition.definitionHash else {
            throw EngineError(
                .invalidRequest, projection: definition.name,
                message: "retired build \(retired.buildID) is version \(retired.version) with definition \(retired.definitionHash); give the projection file of that version (this one is version \(definition.version), \(definition.definitionHash))")
        }
        guard try await tablesExist(definition, retired, store) else {
            throw EngineError(.inconsistentState, projection: definition.name, message: "the tables of retired build \(retired.buildID) are gone")
        }
        let applier = ChunkApplier(store: store, hooks: RebuildHooks())
        let resolved = try await Self.resolve(source, on: control)
        let snapshots = EventStoreReader(connection: control, source: resolved)
        let events = EventStoreReader(connection: reader, source: resolved)
        // Retired while split between live partitions: one checkpoint first. Nobody applies a
        // retired build, so no owner check.
        let merged = try await LivePartitions.merge(
            retired, runnable: runnable, checkOwners: false, writesLiveTables: false, parkedStreams: [], store: store, reader: events,
            snapshots: snapshots, database: database, chunkSize: options.smallRound, fetchSize: options.fetchSize, cacheLimit: options.rowCacheRowsInFixedChunks)
        let build = ActiveBuild(record: merged, runnable: runnable, fresh: false, cacheLimit: options.rowCacheLimit, mergeTables: options.mergeTables)
        var chunkNumber = 0
        for round in 0...options.maxCatchUpRounds {
            if build.record.roundPosition == 0 {
                let now = try await snapshots.currentSnapshot()
                try await store.checkpoints.retarget(build.record.checkpoint, snapshot: now)
                build.record.targetSnapshot = now
            }
            let done = try await applier.readRound(
                [build], reader: events, eventTypes: Array(definition.eventTypes).sorted(), decoders: ChunkApplier.decoders(for: [build]),
                fetchSize: options.fetchSize, chunks: options.chunkBounds, chunkNumber: &chunkNumber
            ) { done, total in
                progress(RebuildProgress(projections: [definition.name], phase: .catchingUp(round: round), eventsDone: done, eventsTotal: total))
            }
            try await applier.closeRound([build], nextSnapshot: build.record.targetSnapshot)
            build.catchUpRounds += 1
            if done < Int64(options.smallRound) { break }
        }
        progress(RebuildProgress(projections: [definition.name], phase: .swapping, eventsDone: 0, eventsTotal: 0))
        let previous = try await swap(build, store: store, locks: locks, database: database)
        var tableRows: [String: Int64] = [:]
        for table in definition.tables { tableRows[table.name] = try await store.tables.rowCount(table.name) }
        return RebuildResult(
            projection: definition.name, version: definition.version, buildID: retired.buildID, resumed: true,
            eventsApplied: build.eventsApplied, rowsWritten: build.rowsWritten, catchUpRounds: build.catchUpRounds, tableRows: tableRows,
            swapped: true, previousBuildID: previous, appliedSnapshot: build.record.baseSnapshot,
            rowReadQueries: build.rowReadQueries, lookupQueries: build.lookupQueries, rowsLoaded: build.rowsLoaded, rowsMerged: build.rowsMerged)
    }

    /// Checks the source mapping against the table PostgreSQL has.
    package static func resolve(_ source: EventSource, on connection: PostgresConnection) async throws -> ResolvedEventSource {
        do {
            return try await ResolvedEventSource.resolve(source, on: connection)
        } catch let error as EventSourceError {
            throw EngineError(.invalidRequest, message: error.description)
        }
    }

    // MARK: - Builds

    /// Resumes the build an interrupted run left (same version and definition), or starts a new one.
    func prepareBuild(_ runnable: RunnableProjection, store: ReadModelStore, snapshot: String, partitioned: Bool = false) async throws -> ActiveBuild {
        let definition = runnable.definition
        try await reconcileSwap(definition, store: store)
        // A changed meaning needs a new version: otherwise two different read models would carry
        // the same version and nobody could tell which one a reader sees.
        for existing in try await store.registry.builds(of: definition.name, states: [.active, .retired])
        where existing.version == definition.version && existing.definitionHash != definition.definitionHash {
            throw EngineError(
                .invalidRequest, projection: definition.name,
                message: "the definition of \(definition.name) changed without a version bump: build \(existing.buildID) (\(existing.state.rawValue)) is version \(existing.version) with definition \(existing.definitionHash), the file gives \(definition.definitionHash); raise `version` in the file to build it as a new version (reprise migrate), or restore the file")
        }
        let building = try await store.registry.builds(of: definition.name, states: [.building])
        var resumable: BuildRecord?
        for build in building {
            if !partitioned, try await !store.ledger.partitions(of: build.buildID).isEmpty, build.version == definition.version,
                build.definitionHash == definition.definitionHash, options.resume
            {
                // Workers of a partitioned rebuild may be running it: an unpartitioned run must not write it too.
                throw EngineError(
                    .locked, projection: definition.name,
                    message: "build \(build.buildID) is a partitioned rebuild in progress: run `reprise rebuild --partitions N` to help finish it, or --restart to abandon it")
            }
            if options.resume, resumable == nil, build.version == definition.version, build.definitionHash == definition.definitionHash,
                try await tablesExist(definition, build, store)
            {
                resumable = build
            } else {
                // A build of another definition, or with tables gone: it can never be swapped in.
                try await store.tables.drop(definition.tables.map { build.physicalName($0.name) })
                try await store.registry.setState(build, .abandoned, error: "replaced by a new build")
            }
        }
        if let resumable {
            try await store.tables.create(definition, build: resumable)
            return ActiveBuild(record: resumable, runnable: runnable, fresh: false, cacheLimit: options.rowCacheLimit, mergeTables: options.mergeTables)
        }
        let record = try await store.registry.createBuild(definition, snapshot: snapshot)
        try await store.tables.create(definition, build: record)
        return ActiveBuild(
            record: record, runnable: runnable, fresh: true, cacheLimit: options.rowCacheLimit, mergeTables: options.mergeTables,
            filterFirstKeys: options.writtenKeyFilterFirstKeys)
    }

    func tablesExist(_ definition: ProjectionDefinition, _ build: BuildRecord, _ store: ReadModelStore) async throws -> Bool {
        for table in definition.tables where !(try await store.tables.exists(build.physicalName(table.name))) { return false }
        return true
    }

    /// A crash between `RENAME TABLE` and the registry update leaves a build whose tables
    /// already carry the live names; finish its bookkeeping.
    func reconcileSwap(_ definition: ProjectionDefinition, store: ReadModelStore) async throws {
        let building = try await store.registry.builds(of: definition.name, states: [.building])
        let active = try await store.registry.builds(of: definition.name, states: [.active]).last
        for build in building {
            let tables = definition.tables.map(\.name)
            var greenMissing = true, liveExists = true
            for table in tables {
                if try await store.tables.exists(build.physicalName(table)) { greenMissing = false }
                if !(try await store.tables.exists(table)) { liveExists = false }
            }
            var previousRetired = true
            if let active {
                for table in tables where !(try await store.tables.exists(active.physicalName(table))) { previousRetired = false }
            }
            if greenMissing && liveExists && previousRetired {
                if let active { try await store.registry.setState(active, .retired) }
                try await store.registry.setState(build, .active)
            }
        }
    }

    // MARK: - Rounds and chunks

    func runRounds(
        _ group: [ActiveBuild], reader: EventStoreReader, snapshots: EventStoreReader, store: ReadModelStore,
        rowReads: ReadModelStore? = nil, hooks: RebuildHooks, progress: @escaping @Sendable (RebuildProgress) -> Void
    ) async throws {
        let names = group.map(\.name)
        let eventTypes = Array(Set(group.flatMap(\.definition.eventTypes))).sorted()
        let decoders = ChunkApplier.decoders(for: group)

        var round = 0
        var chunkNumber = 0
        var applier = ChunkApplier(store: store, hooks: hooks, timings: timings)
        applier.rowReads = rowReads
        applier.readsAhead = options.readAhead && rowReads != nil
        var indexesBuilt = false
        while true {
            let record = group[0].record
            let isCatchUp = record.baseSnapshot != nil
            // The first round is applied (now, or by an earlier run): the tables get their
            // secondary indexes before the catch-up rounds, the checks and the swap.
            if isCatchUp && !indexesBuilt {
                try await buildMissingIndexes(group, store: store, hooks: hooks, progress: progress)
                indexesBuilt = true
            }
            let phase: RebuildProgress.Phase = isCatchUp ? .catchingUp(round: record.rounds) : .reading
            let done = try await applier.readRound(
                group, reader: reader, eventTypes: eventTypes, decoders: decoders,
                fetchSize: options.fetchSize, chunks: options.chunkBounds, chunkNumber: &chunkNumber
            ) { done, total in
                progress(RebuildProgress(projections: names, phase: phase, eventsDone: done, eventsTotal: total))
            }
            try await hooks.afterRound(round)
            round += 1

            try await applier.closeRound(group, nextSnapshot: try await snapshots.currentSnapshot())
            if isCatchUp { for build in group { build.catchUpRounds += 1 } }
            // A catch-up round small enough to leave little for the live worker ends the rebuild.
            if isCatchUp && (done < Int64(options.smallRound) || group[0].catchUpRounds >= options.maxCatchUpRounds) { break }
        }
    }

    /// Adds the secondary indexes the group's green tables lack, one `ALTER TABLE` per table.
    /// New builds create their tables with the primary key only (`ReadModelTables.create`): during
    /// the bulk phase InnoDB would update every secondary index row by row at random keys, which
    /// costs more than the rest of the writes together once the tables outgrow the buffer pool;
    /// built afterwards, each index is one sort. Checked against the table, not recorded, so a run
    /// resumed after a crash or a cancellation at any point (an interrupted ALTER adds nothing)
    /// adds exactly what is missing, and tables of older versions (created with their indexes)
    /// get nothing. Builds that write live tables are never touched.
    ///
    /// MySQL builds an ALTER's indexes on one thread, and nothing else runs meanwhile: up to
    /// `RebuildOptions.indexBuilds` ALTERs (of different tables) run at once, the biggest tables
    /// first, each on a connection of its own with a long read timeout
    /// (`indexBuildReadTimeoutSeconds`, unless the URL sets `read-timeout`): on a 10M-event build
    /// an index build takes longer than the 10 s a read may otherwise wait, and was cut off as a
    /// lost connection. The first failure cancels the others.
    func buildMissingIndexes(
        _ group: [ActiveBuild], store: ReadModelStore, hooks: RebuildHooks, progress: @escaping @Sendable (RebuildProgress) -> Void
    ) async throws {
        let indexed = group.filter { build in
            !build.writesLiveTables && build.record.state == .building && build.definition.tables.contains { !$0.indexes.isEmpty }
        }
        guard !indexed.isEmpty else { return }
        var pending: [IndexBuild] = []
        for build in indexed {
            for table in build.definition.tables where !table.indexes.isEmpty {
                let physical = build.record.physicalName(table.name)
                let missing = try await store.tables.missingIndexes(table, physical: physical)
                if !missing.isEmpty { pending.append(IndexBuild(projection: build.name, physical: physical, indexes: missing)) }
            }
        }
        guard !pending.isEmpty else { return }
        // Biggest first: the longest ALTER starts at once, the small ones fill in beside it.
        let rows = try await store.tables.estimatedRows(pending.map(\.physical))
        pending.sort { rows[$0.physical] ?? 0 > rows[$1.physical] ?? 0 }
        let queue = IndexBuildQueue(pending)
        let mysqlURL = mysqlURL
        try await timings.measure(.indexBuild) {
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for _ in 0..<min(max(1, options.indexBuilds), pending.count) {
                    tasks.addTask {
                        let connection = try await MySQLConnection.connect(url: mysqlURL, readTimeoutSeconds: Self.indexBuildReadTimeoutSeconds)
                        try await withCleanup({
                            let tables = ReadModelStore(connection: connection).tables
                            while let (alter, build) = queue.next() {
                                try Task.checkCancellation()
                                progress(RebuildProgress(
                                    projections: [build.projection], phase: .buildingIndexes(table: build.physical, indexes: build.indexes.map(\.description)),
                                    eventsDone: 0, eventsTotal: 0))
                                try await hooks.beforeIndexBuild(alter)
                                do {
                                    try await tables.addIndexes(build.indexes, physical: build.physical)
                                } catch let error as MySQLError where error.code != .cancelled {
                                    throw EngineError(
                                        .database, projection: build.projection,
                                        message: "adding the indexes \(build.indexes.map(\.description).joined(separator: ", ")) to \(build.physical) failed; the next run adds the missing ones",
                                        underlying: error)
                                }
                            }
                        }, cleanup: { await connection.close() })
                    }
                }
                try await tasks.waitForAll()
            }
        }
    }

    /// One table's missing secondary indexes, added by one `ALTER TABLE`.
    private struct IndexBuild: Sendable {
        let projection: String
        let physical: String
        let indexes: [SecondaryIndex]
    }

    /// The ALTERs left, taken in turn by the connections that run them.
    private final class IndexBuildQueue: Sendable {
        private let state: Mutex<(next: Int, builds: [IndexBuild])>
        init(_ builds: [IndexBuild]) { state = Mutex((0, builds)) }

        /// The next ALTER and its number (from 0, in the order taken); nil when none is left.
        func next() -> (Int, IndexBuild)? {
            state.withLock { state in
                guard state.next < state.builds.count else { return nil }
                defer { state.next += 1 }
                return (state.next, state.builds[state.next])
            }
        }
    }

    /// How long a read may wait on the writer connection (a `read-timeout` in the MySQL URL
    /// wins). A chunk's statement may wait on row locks (InnoDB answers error 1205 after
    /// `innodb_lock_wait_timeout`, 50 s by default) or load a big chunk into a big table. With
    /// the connect timeout (10 s) such a wait was reported as a lost session, reopened and redone:
    /// a partitioned worker waiting on the locks of an owner frozen inside a chunk's transaction
    /// spent its ten attempts that way. A silent server is still noticed, in minutes.
    static let writerReadTimeoutSeconds = 300

    /// How long a read may wait on an index-building connection: an index build of a big table
    /// takes minutes (8 hours, MySQL's default `wait_timeout`; SIGTERM still ends it at once).
    static let indexBuildReadTimeoutSeconds = 8 * 3600

    /// A MySQL connection of its own for the rows chunks read back (evicted rows, keys the filter
    /// cannot rule out): on the writer's connection each read waited behind the statements of the
    /// chunk committing meanwhile (about 50 ms a query at 10M events). It sees what is committed;
    /// the committing chunk's rows are in the workspace and never read.
    func withRowReadConnection<Result: Sendable>(_ body: (ReadModelStore) async throws -> Result) async throws -> Result {
        let connection = try await MySQLConnection.connect(url: mysqlURL)
        return try await withCleanup({ try await body(ReadModelStore(connection: connection)) }, cleanup: { await connection.close() })
    }

    // MARK: - Checks, swap, retention

    func runChecks(_ build: ActiveBuild, store: ReadModelStore, tableRows: [String: Int64]) async throws {
        for check in build.definition.checks {
            switch check {
            case .minimumRows(let table, let rows):
                let actual = tableRows[table] ?? 0
                guard actual >= Int64(rows) else {
                    throw EngineError(.checkFailed, projection: build.name, message: "table \(table) has \(actual) rows, the check asks for at least \(rows); the live tables were left in place")
                }
            case .queryReturnsNoRows(let name, let sql):
                var pointed = sql
                for table in build.definition.tables {
                    pointed = MySQLIdentifier.replacingTable(table.name, with: MySQLIdentifier.quote(build.record.physicalName(table.name)), in: pointed)
                }
                let result = try await store.connection.query(pointed + " LIMIT 1")
                guard result.rowCount == 0 else {
                    let sample = result.rows[0].map { $0 ?? "NULL" }.joined(separator: ", ")
                    throw EngineError(.checkFailed, projection: build.name, message: "check \(name) returned rows (first: \(sample)); the live tables were left in place")
                }
            }
        }
    }

    /// Makes the build's tables live in one `RENAME TABLE`; returns the build that was live before.
    /// Holds the projection lock, and the apply locks of the active build's live partitions
    /// (their consumers write the live tables under those, not the projection lock), for the swap.
    func swap(
        _ build: ActiveBuild, store: ReadModelStore, locks: MySQLConnection, database: String, afterRename: @Sendable () async throws -> Void = {}
    ) async throws -> Int64? {
        let lock = Self.projectionLockName(build.name, database: database)
        let timeout = options.swapLockTimeoutSeconds
        return try await locks.withNamedLocks([lock], timeoutSeconds: timeout, busy: { lock in
            EngineError(.locked, projection: build.name, message: "could not take \(lock) within \(timeout)s to swap")
        }) {
            let previous = try await store.registry.builds(of: build.name, states: [.active]).last
            guard let previous else { return try await swapHoldingLocks(build, previous: nil, store: store, afterRename: afterRename) }
            return try await LivePartitions.withApplyLocks(of: previous, store: store, locks: locks, database: database, timeoutSeconds: timeout) {
                try await swapHoldingLocks(build, previous: previous, store: store, afterRename: afterRename)
            }
        }
    }

    private func swapHoldingLocks(
        _ build: ActiveBuild, previous: BuildRecord?, store: ReadModelStore, afterRename: @Sendable () async throws -> Void
    ) async throws -> Int64? {
        var renames: [(String, String)] = []
        if let previous {
            for table in try await store.registry.tableNames(of: previous.buildID) where try await store.tables.exists(table) {
                renames.append((table, previous.physicalName(table)))
            }
        }
        for table in build.definition.tables {
            if previous == nil || !renames.contains(where: { $0.0 == table.name }), try await store.tables.exists(table.name) {
                throw EngineError(
                    .inconsistentState, projection: build.name,
                    message: "table \(table.name) exists but no active build of \(build.name) owns it; rename or drop it before the first swap")
            }
            renames.append((build.record.physicalName(table.name), table.name))
        }
        // One statement: readers see all old tables or all new ones, never a mix or a gap.
        try await store.connection.execute(
            "RENAME TABLE " + renames.map { "\(MySQLIdentifier.quote($0.0)) TO \(MySQLIdentifier.quote($0.1))" }.joined(separator: ", "))
        try await afterRename()
        try await store.connection.withTransaction { _ in
            if let previous { try await store.registry.setState(previous, .retired) }
            try await store.registry.setState(build.record, .active)
        }
        build.record.state = .active
        return previous?.buildID
    }

    func applyRetention(_ projection: String, store: ReadModelStore) async throws {
        let retired = try await store.registry.builds(of: projection, states: [.retired]).sorted { $0.buildID > $1.buildID }
        for build in retired.dropFirst(options.keepRetiredBuilds) {
            let tables = try await store.registry.tableNames(of: build.buildID).map(build.physicalName)
            try await store.tables.drop(tables)
            try await store.ledger.deleteLivePartitions(of: build.buildID)
            try await store.registry.setState(build, .dropped)
        }
    }
}

/// The connections a rebuild or rollback works with: a cursor reader and a snapshot taker on
/// PostgreSQL, a writer and a lock holder on MySQL.
package struct EngineConnections: Sendable {
    package let reader: PostgresConnection
    /// The reader itself when opened with `.reader`.
    package let control: PostgresConnection
    let writer: MySQLConnection
    package let locks: MySQLConnection
    package let store: ReadModelStore
    /// The read-model database (named locks are server-wide and include it).
    package let database: String

    /// Runs `body` with freshly opened connections and closes them all before returning,
    /// whether `body` returned or threw (closing the lock connection releases any named lock
    /// left on it).
    package static func with<Result: Sendable>(
        postgresURL: String, mysqlURL: String, controlSession: ControlSession = .own, _ body: (EngineConnections) async throws -> Result
    ) async throws -> Result {
        let connections = try await open(postgresURL: postgresURL, mysqlURL: mysqlURL, controlSession: controlSession)
        return try await withCleanup({ try await body(connections) }, cleanup: { await connections.close() })
    }

    /// Where the control statements (snapshots, source resolution, advisory locks) run.
    package enum ControlSession: Sendable {
        /// A PostgreSQL session of their own: for callers that use it while the reader's cursor
        /// is open (partitioned rebuilds, the live worker).
        case own
        /// The reader's session: for callers that never do, so they log in once, not twice.
        case reader
    }

    /// Opens the connections; those opened before a failure are closed again.
    /// `writerReadTimeoutSeconds`: how long the writer waits for an answer (nil: the connect
    /// timeout; see `RebuildEngine.writerReadTimeoutSeconds`).
    package static func open(
        postgresURL: String, mysqlURL: String, controlSession: ControlSession = .own,
        writerReadTimeoutSeconds: Int? = RebuildEngine.writerReadTimeoutSeconds
    ) async throws -> EngineConnections {
        var opened: [@Sendable () async -> Void] = []
        do {
            let writer = try await MySQLConnection.connect(url: mysqlURL, readTimeoutSeconds: writerReadTimeoutSeconds)
            opened.append { await writer.close() }
            let reader = try await PostgresConnection.connect(url: postgresURL)
            opened.append { await reader.close() }
            let control: PostgresConnection
            switch controlSession {
            case .own:
                control = try await PostgresConnection.connect(url: postgresURL)
                opened.append { await control.close() }
            case .reader:
                control = reader
            }
            let locks = try await MySQLConnection.connect(url: mysqlURL)
            opened.append { await locks.close() }
            let store = ReadModelStore(connection: writer)
            try await store.ensureRegistry()
            return EngineConnections(
                reader: reader, control: control, writer: writer, locks: locks, store: store,
                database: try await writer.query("SELECT DATABASE()").string(0, 0) ?? "")
        } catch {
            for close in opened.reversed() { await close() }
            throw error
        }
    }

    /// Runs `body` (which uses the lock session) again once if the lock session turns out lost:
    /// a killed idle connection shows only at its next statement. The session is reopened
    /// explicitly, what it lost is reported, and the named locks it held are taken back; if
    /// another process took one meanwhile, this stops with `.locked` instead of going on
    /// without it.
    func retakingLostLocks<Result: Sendable>(hooks: RebuildHooks, _ body: () async throws -> Result) async throws -> Result {
        do {
            return try await body()
        } catch {
            guard TransientFailure.isConnectionLoss(error), await locks.isLost else { throw error }
            let reopened = try await locks.reopen()
            await hooks.connectionReopened(nil, reopened)
            for lock in reopened.lostNamedLocks {
                guard try await locks.getLock(lock, timeoutSeconds: 0) else {
                    throw EngineError(
                        .locked, message: "the lock session was lost and another process took \(lock) meanwhile (\(reopened))", underlying: error)
                }
            }
            return try await body()
        }
    }

    /// Closes every connection, the lock holder last; closing it releases its named locks.
    package func close() async {
        await reader.close()
        if control !== reader { await control.close() }
        await writer.close()
        await locks.close()
    }
}
