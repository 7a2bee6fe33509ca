import RepriseEventSource
import RepriseMySQL
import RepriseProjection
import ReprisePostgres

/// Partitioned rebuilds: any number of worker processes, on any machines, share one build.
///
/// The first round (everything visible in the build's snapshot) is split into `partitions` by a
/// hash of each event's partition key, computed in PostgreSQL, so each worker reads only its
/// share. Workers claim partitions with PostgreSQL advisory locks (a dead worker's lock goes with
/// its session, and the next worker to look takes the partition over); each partition's
/// checkpoint is a row of `reprise_build_partitions`, committed in the same MySQL transaction as
/// its chunk, so a taken-over partition resumes exactly where the dead worker's last chunk ended.
/// When every partition is done, one worker (the first to take the build's finish lock) runs
/// the catch-up rounds, the checks and the single swap. The partition key must decide every row
/// an event writes (`partition_key` in the projection file), so no two partitions write one row.
extension RebuildEngine {
    public func rebuildPartitioned(
        _ projections: [RunnableProjection], partitions: Int, worker: String,
        hooks: RebuildHooks = RebuildHooks(),
        progress: @escaping @Sendable (RebuildProgress) -> Void = { _ in }
    ) async throws -> [RebuildResult] {
        guard (1...1024).contains(partitions) else { throw EngineError(.invalidRequest, message: "partitions must be between 1 and 1024") }
        for runnable in projections where runnable.definition.partitionKey == nil {
            throw EngineError(
                .invalidRequest, projection: runnable.definition.name,
                message: "\(runnable.definition.name) declares no partition_key: a partitioned rebuild needs one, chosen so that every row an event writes is decided by it (event.stream_id, payload.<path>, or one per event type)")
        }
        for runnable in projections {
            if let reason = runnable.definition.partitionUnsafeLookup {
                throw EngineError(.invalidRequest, projection: runnable.definition.name,
                                  message: "\(runnable.definition.name) cannot be rebuilt with --partitions: \(reason); rebuild it without --partitions")
            }
        }
        return try await EngineConnections.with(postgresURL: postgresURL, mysqlURL: mysqlURL) { connections in
            let resolved = try await Self.resolve(source, on: connections.control)
            // The server's clock, so a joiner can tell a build finished since it came from one
            // finished before (any skew between machines does not matter).
            let started = try await connections.store.connection.query("SELECT UTC_TIMESTAMP(6)").string(0, 0) ?? ""
            var results: [RebuildResult] = []
            for runnable in projections {
                results.append(try await rebuildPartitioned(runnable, partitions: partitions, worker: worker, connections: connections,
                                                            source: resolved, started: started, hooks: hooks, progress: progress))
            }
            progress(RebuildProgress(projections: projections.map(\.definition.name), phase: .done, eventsDone: 0, eventsTotal: 0))
            return results
        }
    }

    private func rebuildPartitioned(
        _ runnable: RunnableProjection, partitions: Int, worker: String, connections: EngineConnections, source: ResolvedEventSource,
        started: String, hooks: RebuildHooks, progress: @escaping @Sendable (RebuildProgress) -> Void
    ) async throws -> RebuildResult {
        let definition = runnable.definition
        let (store, control, locks, database) = (connections.store, connections.control, connections.locks, connections.database)
        let snapshots = EventStoreReader(connection: control, source: source)
        let reader = EventStoreReader(connection: connections.reader, source: source)

        if let wait = options.joinOnly {
            // Waits outside the setup lock, which the worker creating the build needs.
            let deadline = ContinuousClock.now + wait
            while try await !hasPartitionedBuild(definition, partitions: partitions, store: store) {
                // The build this worker came to help was swapped in meanwhile: nothing left to do.
                if try await store.ledger.partitionedBuildActivated(definition, partitions: partitions, since: started) {
                    throw NothingToJoin(projection: definition.name)
                }
                guard ContinuousClock.now < deadline else { throw NothingToJoin(projection: definition.name) }
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        // One worker at a time finds or creates the shared build and its partitions.
        let setupLock = LockNames.partitionSetup(definition.name, database: database)
        guard try await locks.getLock(setupLock, timeoutSeconds: 60) else {
            throw EngineError(.locked, projection: definition.name, message: "could not take \(setupLock) within 60 s")
        }
        let record: BuildRecord
        // A plain rebuild of this projection holds its rebuild lock for its whole run; its build
        // must not gain partitions under it. Held (not only tested) through the setup, so a
        // plain rebuild cannot start in between and take the build before it has partitions.
        let rebuildLock = Self.rebuildLockName(definition.name, database: database)
        do {
            guard try await locks.getLock(rebuildLock, timeoutSeconds: 0) else {
                throw EngineError(.locked, projection: definition.name, message: "a rebuild of \(definition.name) without --partitions is running")
            }
            record = try await sharedBuild(runnable, partitions: partitions, store: store, snapshots: snapshots)
            _ = try await locks.releaseLock(rebuildLock)
            _ = try await locks.releaseLock(setupLock)
        } catch {
            _ = try? await locks.releaseLock(rebuildLock)
            _ = try? await locks.releaseLock(setupLock)
            throw error
        }

        let keys = Self.partitionKeys(definition, source: source.source)
        var done = PartitionsDone()
        var chunkNumber = 0
        let applier = ChunkApplier(store: store, hooks: hooks, timings: timings)
        let decoders = ChunkApplier.decoders(for: [ActiveBuild(record: record, runnable: runnable, fresh: false, cacheLimit: 1)])
        while true {
            let states = try await store.ledger.partitions(of: record.buildID)
            guard states.count == partitions else {
                throw EngineError(.inconsistentState, projection: definition.name, message: "build \(record.buildID) has \(states.count) partitions, not \(partitions)")
            }
            var claimed: BuildPartition?
            for partition in states where partition.state != .done {
                let key = LockNames.rebuildPartition(definition.name, database: database, build: record.buildID, partition: partition.number)
                // Held by the cursor's session: ending that one session (lease expiry) frees the
                // partition and stops the old owner's reads together.
                if try await connections.reader.tryAdvisoryLock(key) {
                    claimed = partition
                    break
                }
                if let age = try await expireLeaseIfSilent(partition, key: key, buildID: record.buildID, control: control, store: store) {
                    progress(RebuildProgress(
                        projections: [definition.name], phase: .tookOver(partition: partition.number, owner: partition.owner ?? "?", silentSeconds: Int(age)),
                        eventsDone: 0, eventsTotal: 0, partition: partition.number))
                }
            }
            guard var partition = claimed else {
                if states.allSatisfy({ $0.state == .done }) { break }
                // Others hold the rest; one of them may die, and its partition becomes claimable.
                try await Task.sleep(for: .milliseconds(250))
                continue
            }
            // Re-read under the lock: the previous owner may have finished it meanwhile.
            // Claimed in the ledger (a new epoch fences the previous owner off), then read as it
            // stands: the previous owner may have finished it, or committed a chunk, meanwhile.
            guard let current = try await store.ledger.claimPartition(record.buildID, partition.number, owner: worker) else {
                _ = try await connections.reader.advisoryUnlock(LockNames.rebuildPartition(definition.name, database: database, build: record.buildID, partition: partition.number))
                continue
            }
            partition = current
            var partitionRecord = record
            partitionRecord.partition = partition
            partitionRecord.roundPosition = partition.roundPosition
            let build = ActiveBuild(
                record: partitionRecord, runnable: runnable, fresh: partition.eventsApplied == 0, cacheLimit: options.rowCacheLimit,
                mergeTables: options.mergeTables, filterFirstKeys: options.writtenKeyFilterFirstKeys)
            build.partitionSpec = .rebuild(keys: keys, number: partition.number, count: partitions)
            let number = partition.number
            var applier = applier
            applier.beforeRedo = { [self] chunk in
                try await fenceSilentOwners(
                    except: number, beforeRedoingChunk: chunk, definition: definition, buildID: record.buildID, database: database,
                    control: control, store: store, progress: progress)
            }
            _ = try await applier.readRound(
                [build], reader: reader, eventTypes: Array(definition.eventTypes).sorted(), decoders: decoders,
                fetchSize: options.fetchSize, chunks: options.chunkBounds, chunkNumber: &chunkNumber
            ) { done, total in
                progress(RebuildProgress(projections: [definition.name], phase: .reading, eventsDone: done, eventsTotal: total, partition: number))
            }
            try await store.ledger.finishPartition(record.buildID, partition, owner: worker, projection: definition.name)
            _ = try await connections.reader.advisoryUnlock(LockNames.rebuildPartition(definition.name, database: database, build: record.buildID, partition: partition.number))
            done.add(build, partition: partition.number)
        }

        // Every partition is done: the first worker here finishes the build, the others leave.
        let finishKey = LockNames.rebuildFinish(definition.name, database: database, build: record.buildID)
        return try await control.withAdvisoryLock(finishKey) {
            try await finish(
                runnable, record: record, partitionsDone: done, connections: connections, reader: reader, snapshots: snapshots,
                applier: applier, hooks: hooks, progress: progress)
        }
    }

    /// Every partition is done; holding the build's finish lock: the catch-up rounds, the
    /// checks and the swap, unless another worker finished the build first.
    private func finish(
        _ runnable: RunnableProjection, record: BuildRecord, partitionsDone: PartitionsDone,
        connections: EngineConnections, reader: EventStoreReader, snapshots: EventStoreReader, applier: ChunkApplier, hooks: RebuildHooks,
        progress: @escaping @Sendable (RebuildProgress) -> Void
    ) async throws -> RebuildResult {
        let definition = runnable.definition
        let store = connections.store
        guard let current = try await store.registry.build(record.buildID), current.state == .building else {
            return partitionsDone.result(
                projection: definition.name, version: definition.version, buildID: record.buildID, catchUpRounds: 0, tableRows: [:], swapped: false,
                previousBuildID: nil, appliedSnapshot: nil)
        }
        let build = ActiveBuild(record: current, runnable: runnable, fresh: false, cacheLimit: options.rowCacheLimit, mergeTables: options.mergeTables)
        if current.baseSnapshot == nil {
            // The partitions together applied the first round: the build moves to catch-up rounds.
            try await store.ledger.sumPartitions(into: current)
            try await applier.closeRound([build], nextSnapshot: try await snapshots.currentSnapshot())
        }
        try await runRounds([build], reader: reader, snapshots: snapshots, store: store, hooks: hooks, progress: progress)
        let (tableRows, previous) = try await checkAndSwap(build, connections: connections, hooks: hooks, progress: progress)
        var done = partitionsDone
        done.add(build, partition: nil)
        return done.result(
            projection: definition.name, version: definition.version, buildID: record.buildID, catchUpRounds: build.catchUpRounds,
            tableRows: tableRows, swapped: options.swap, previousBuildID: previous, appliedSnapshot: build.record.baseSnapshot)
    }

    /// Takes a partition from a worker that stopped committing chunks (frozen, not dead) once
    /// it has been silent past the lease: its PostgreSQL session ends (the partition lock goes
    /// with it) and its MySQL connection is killed (an open chunk transaction rolls back).
    /// Should it wake up, its next checkpoint compare-and-set fails: it cannot apply anything
    /// twice. Returns how long the owner was silent when it was fenced off (nil: not silent past
    /// the lease, or no session of it left).
    private func expireLeaseIfSilent(
        _ partition: BuildPartition, key: PostgresAdvisoryLockKey, buildID: Int64, control: PostgresConnection, store: ReadModelStore
    ) async throws -> Double? {
        guard partition.state == .running, let age = partition.secondsSinceHeartbeat, age > Double(options.leaseSeconds) else { return nil }
        guard try await control.terminateAdvisoryLockHolders(key) > 0 else { return nil }
        // The owner may have disconnected already; then there is nothing to kill.
        try await store.ledger.partitionOwnerSession(buildID, partition.number)?.kill(on: store.connection)
        return age
    }

    /// Before a failed chunk of partition `current` is written again: the owners of the other
    /// partitions silent past their lease are fenced off, as a worker looking for a partition
    /// would. A worker frozen inside a chunk's transaction holds its row locks, and this worker's
    /// chunk may have waited on them (a replacing load's duplicate check locks the gap after a
    /// page's last key, which partitions share); a worker inside its own partition would
    /// otherwise never look at leases. The partitions are claimed later, between partitions.
    private func fenceSilentOwners(
        except current: Int, beforeRedoingChunk chunk: Int, definition: ProjectionDefinition, buildID: Int64, database: String,
        control: PostgresConnection, store: ReadModelStore, progress: @escaping @Sendable (RebuildProgress) -> Void
    ) async throws {
        for partition in try await store.ledger.partitions(of: buildID) where partition.number != current {
            let key = LockNames.rebuildPartition(definition.name, database: database, build: buildID, partition: partition.number)
            if let age = try await expireLeaseIfSilent(partition, key: key, buildID: buildID, control: control, store: store) {
                progress(RebuildProgress(
                    projections: [definition.name],
                    phase: .fencedOff(partition: partition.number, owner: partition.owner ?? "?", silentSeconds: Int(age), beforeRedoingChunk: chunk),
                    eventsDone: 0, eventsTotal: 0, partition: current))
            }
        }
    }

    private func hasPartitionedBuild(_ definition: ProjectionDefinition, partitions: Int, store: ReadModelStore) async throws -> Bool {
        for build in try await store.registry.builds(of: definition.name, states: [.building])
        where build.version == definition.version && build.definitionHash == definition.definitionHash {
            if try await store.ledger.partitions(of: build.buildID).count == partitions { return true }
        }
        return false
    }

    /// The building build of this definition split into `partitions`, or a new one.
    private func sharedBuild(_ runnable: RunnableProjection, partitions: Int, store: ReadModelStore, snapshots: EventStoreReader) async throws -> BuildRecord {
        let definition = runnable.definition
        // A crash between RENAME TABLE and the registry update left a build to finish first.
        try await reconcileSwap(definition, store: store)
        for build in try await store.registry.builds(of: definition.name, states: [.building])
        where build.version == definition.version && build.definitionHash == definition.definitionHash && options.resume {
            let existing = try await store.ledger.partitions(of: build.buildID)
            if existing.count == partitions { return build }
            if !existing.isEmpty || build.roundPosition > 0 || build.eventsApplied > 0 {
                throw EngineError(
                    .invalidRequest, projection: definition.name,
                    message: "build \(build.buildID) is in progress with \(existing.isEmpty ? "no" : String(existing.count)) partitions; finish it with the same --partitions, or start again with --restart")
            }
        }
        if options.joinOnly != nil { throw NothingToJoin(projection: definition.name) }
        // No shared build yet: the usual preparation (abandons builds of other definitions), then partitions.
        let prepared = try await prepareBuild(runnable, store: store, snapshot: try await snapshots.currentSnapshot(), partitioned: true)
        if try await store.ledger.partitions(of: prepared.record.buildID).isEmpty {
            try await store.ledger.createPartitions(of: prepared.record.buildID, count: partitions)
        }
        return prepared.record
    }

    /// The partition key of each handled event type, by the stored type names that mean it.
    package static func partitionKeys(_ definition: ProjectionDefinition, source: EventSource) -> [(storedTypes: [String], field: EventSource.PartitionKeyField)] {
        var byField: [EventSource.PartitionKeyField: [String]] = [:]
        for (type, reference) in definition.partitionKey ?? [:] {
            let field: EventSource.PartitionKeyField = switch reference {
            case .payload(let path): .payload(path.map(\.description))
            case .metadata(let path): .metadata(path.map(\.description))
            default: .streamID
            }
            byField[field, default: []] += source.storedNames(for: [type])
        }
        return byField.map { (storedTypes: $0.value.sorted(), field: $0.key) }.sorted { $0.field.description < $1.field.description }
    }
}

/// What this worker's partitions (and the catch-up rounds of the one who finishes the build)
/// applied, summed for its `RebuildResult`.
struct PartitionsDone {
    var applied: [Int] = []
    var eventsApplied: Int64 = 0
    var rowsWritten: Int64 = 0
    var rowsLoaded: Int64 = 0
    var rowsMerged: Int64 = 0
    var rowReadQueries: Int64 = 0
    var lookupQueries: Int64 = 0
    var rowReadKeys: Int64 = 0
    /// The largest of its builds' written-key filters (one partition's build at a time).
    var writtenKeyFilterBytes = 0

    /// Adds what `build` applied; `partition`: the partition it was (nil: catch-up rounds).
    mutating func add(_ build: ActiveBuild, partition: Int?) {
        if let partition { applied.append(partition) }
        eventsApplied += build.eventsApplied
        rowsWritten += build.rowsWritten
        rowsLoaded += build.rowsLoaded
        rowsMerged += build.rowsMerged
        rowReadQueries += build.rowReadQueries
        lookupQueries += build.lookupQueries
        rowReadKeys += build.rowReadKeys
        writtenKeyFilterBytes = max(writtenKeyFilterBytes, build.workspace.filterBytes)
    }

    func result(
        projection: String, version: Int, buildID: Int64, catchUpRounds: Int, tableRows: [String: Int64], swapped: Bool,
        previousBuildID: Int64?, appliedSnapshot: String?
    ) -> RebuildResult {
        var result = RebuildResult(
            projection: projection, version: version, buildID: buildID, resumed: false, eventsApplied: eventsApplied, rowsWritten: rowsWritten,
            catchUpRounds: catchUpRounds, tableRows: tableRows, swapped: swapped, previousBuildID: previousBuildID,
            appliedSnapshot: appliedSnapshot, partitionsApplied: applied, rowReadQueries: rowReadQueries, lookupQueries: lookupQueries,
            rowReadKeys: rowReadKeys, rowsLoaded: rowsLoaded, rowsMerged: rowsMerged)
        result.writtenKeyFilterBytes = writtenKeyFilterBytes
        return result
    }
}
