import RepriseEngine
import RepriseEventSource
import RepriseEventStore
import RepriseMySQL
import RepriseProjection
import ReprisePostgres

/// Keeps the *active* build of projections current: each call to `catchUp` applies every event
/// committed since the last one, by snapshot round, into the live tables, under the projection
/// lock that rebuild swaps also take. After a swap it continues on the newly active build, from
/// that build's own checkpoint: nothing is applied twice, nothing skipped.
///
/// Used by the live worker, which calls `catchUp` when messages arrive (and on a timer).
public final class LiveProjectionRunner {
    public struct Options: Sendable {
        public var chunkSize = 1_000
        public var fetchSize = 1_000
        public var rowCacheLimit = 100_000
        public var lockTimeoutSeconds = 60
        /// Checked between chunks of a catch-up: true ends it after the chunk in flight commits
        /// (the round stays open and continues from its checkpoint next time).
        public var shouldStop: @Sendable () -> Bool = { false }
        public init() {}
    }

    /// What happened during a catch-up, per projection.
    public struct Outcome: Sendable {
        public var projection: String
        public var buildID: Int64
        public var eventsApplied: Int64
        /// Set when the active build changed since the last call (a rebuild or migration swapped).
        public var switchedFromBuild: Int64?
        public var releasedStreams: [String]
    }

    /// A handler failure the caller decides about (retry, park the stream, or stop).
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var error: EngineError
        public var streamID: String?
        /// Set when the event failed while a split finished the round an unpartitioned worker
        /// left open (the build this runner would split): the stream is parked in the whole
        /// projection, and the split then parks it in every partition.
        public var splittingBuild: Int64? = nil
        public var description: String { error.description }
    }

    /// One live partition this runner applies (`reprise live --partitions N`), and who it is.
    public struct Partition: Sendable, Equatable {
        public var number: Int
        public var count: Int
        /// Shown in `reprise status` (host and process id).
        public var owner: String
        public init(number: Int, count: Int, owner: String) {
            self.number = number
            self.count = count
            self.owner = owner
        }
    }

    private(set) var projections: [RunnableProjection]
    /// Set when this runner applies one live partition; nil: the whole projection.
    public let partition: Partition?
    /// Finds the definition of a newer active version (after a migration) by name, version and hash.
    let resolve: @Sendable (_ name: String, _ version: Int, _ hash: String) throws -> RunnableProjection?
    let options: Options
    let reader: EventStoreReader
    let snapshots: EventStoreReader
    let store: ReadModelStore
    let parked: ParkedStreamStore
    let locks: MySQLConnection
    let database: String
    private var builds: [String: ActiveBuild] = [:]

    private init(projections: [RunnableProjection], partition: Partition?, options: Options, reader: EventStoreReader,
                 snapshots: EventStoreReader, store: ReadModelStore, locks: MySQLConnection, database: String,
                 resolve: @escaping @Sendable (String, Int, String) throws -> RunnableProjection?) {
        self.projections = projections
        self.partition = partition
        self.resolve = resolve
        self.options = options
        self.reader = reader
        self.snapshots = snapshots
        self.store = store
        self.parked = ParkedStreamStore(connection: store.connection)
        self.locks = locks
        self.database = database
    }

    /// Connects and checks that every projection has an active build of the same definition.
    /// `resolve` is asked for the definition when a migration made another version active.
    public static func open(
        projections: [RunnableProjection], postgresURL: String, mysqlURL: String, source: EventSource = .reprise(.standard),
        partition: Partition? = nil, options: Options = Options(),
        resolve: @escaping @Sendable (String, Int, String) throws -> RunnableProjection? = { _, _, _ in nil }
    ) async throws -> LiveProjectionRunner {
        if let partition {
            guard (1...PartitionSlots.count).contains(partition.count), (0..<partition.count).contains(partition.number) else {
                throw EngineError(.invalidRequest, message: "live partitions must be between 1 and \(PartitionSlots.count) (partition \(partition.number) of \(partition.count))")
            }
            try requirePartitionKeys(projections)
        }
        // The live worker keeps the connect timeout on its writer: a silent server is reported
        // (`live.store_unavailable`) within seconds, and its chunks are never redone in place
        // (the runner is reopened), so a lock wait taken for a lost session costs one reopen.
        let connections = try await EngineConnections.open(postgresURL: postgresURL, mysqlURL: mysqlURL, writerReadTimeoutSeconds: nil)
        let resolved: ResolvedEventSource
        do {
            resolved = try await RebuildEngine.resolve(source, on: connections.control)
        } catch {
            await connections.close()
            throw error
        }
        let runner = LiveProjectionRunner(
            projections: projections, partition: partition, options: options,
            reader: EventStoreReader(connection: connections.reader, source: resolved),
            snapshots: EventStoreReader(connection: connections.control, source: resolved), store: connections.store,
            locks: connections.locks, database: connections.database, resolve: resolve)
        do {
            try await runner.parked.ensureTable()
            for runnable in projections {
                if partition != nil {
                    do {
                        try await runner.ensureSplit(runnable)
                    } catch is Failure {
                        // A poison in the round the split finishes: split at the first catch-up,
                        // where the caller's poison policy applies.
                    }
                } else {
                    _ = try await runner.activeRecord(runnable)
                }
            }
        } catch {
            await runner.close()
            throw error
        }
        return runner
    }

    public func close() async {
        await reader.connection.close()
        await snapshots.connection.close()
        await store.connection.close()
        await locks.close()
    }

    /// Where this runner parks streams: its live partition, or the whole projection ("").
    var parkScope: String { partition.map { ParkedStream.scope(partition: $0.number, of: $0.count) } ?? "" }

    /// Live partitions split events by each projection's `partition_key`, which must decide
    /// every row an event writes.
    public static func requirePartitionKeys(_ projections: [RunnableProjection]) throws {
        for runnable in projections where runnable.definition.partitionKey == nil {
            throw EngineError(
                .invalidRequest, projection: runnable.definition.name,
                message: "\(runnable.definition.name) declares no partition_key, so its events cannot be split between live partitions; run it in an unpartitioned `reprise live` (with its own --queue)")
        }
        for runnable in projections {
            if let reason = runnable.definition.partitionUnsafeLookup {
                throw EngineError(.invalidRequest, projection: runnable.definition.name,
                                  message: "\(runnable.definition.name) cannot be split between live partitions: \(reason); run it in an unpartitioned `reprise live` (with its own --queue)")
            }
        }
    }

    /// The event types any of the projections handles (for queue bindings).
    public var eventTypes: [String] { Array(Set(projections.flatMap(\.definition.eventTypes))).sorted() }

    /// The active build of a projection and the definition it was built from; follows a
    /// migration to another version.
    func activeRecord(_ runnable: RunnableProjection) async throws -> (BuildRecord, RunnableProjection) {
        let definition = runnable.definition
        guard let active = try await store.registry.builds(of: definition.name, states: [.active]).last else {
            throw EngineError(.invalidRequest, projection: definition.name, message: "no active build: run `reprise rebuild \(definition.name)` first")
        }
        if active.version != definition.version || active.definitionHash != definition.definitionHash,
            let migrated = try resolve(definition.name, active.version, active.definitionHash),
            migrated.definition.version == active.version, migrated.definition.definitionHash == active.definitionHash
        {
            // A migration swapped another version in: continue with its definition.
            if partition != nil { try Self.requirePartitionKeys([migrated]) }
            if let index = projections.firstIndex(where: { $0.definition.name == definition.name }) { projections[index] = migrated }
            return (active, migrated)
        }
        guard active.version == definition.version else {
            throw EngineError(.invalidRequest, projection: definition.name, message: "the active build is version \(active.version) but the projection file says version \(definition.version): rebuild or migrate first")
        }
        guard active.definitionHash == definition.definitionHash else {
            throw EngineError(.invalidRequest, projection: definition.name, message: "the projection file changed without a version bump (definition hash \(definition.definitionHash), active build has \(active.definitionHash))")
        }
        return (active, runnable)
    }

    /// The active build of a projection (for a partitioned runner: with its partition's round);
    /// follows a swap to a newer one.
    private func currentBuild(_ runnable: RunnableProjection) async throws -> (ActiveBuild, switchedFrom: Int64?)? {
        var (active, runnable) = try await activeRecord(runnable)
        let name = runnable.definition.name
        let previous = builds[name]?.record.buildID
        if let partition { return try await partitionBuild(active, runnable, partition, previous: previous) }
        // Checked on every call: a partitioned consumer group may have split the build since.
        if try await !store.ledger.livePartitions(of: active.buildID).isEmpty {
            active = try await LivePartitions.merge(
                active, runnable: runnable, checkOwners: true, writesLiveTables: true,
                parkedStreams: Set(try await parked.list(projection: name, scope: "").map(\.streamID)), store: store, reader: reader,
                snapshots: snapshots, database: database, chunkSize: options.chunkSize, fetchSize: options.fetchSize,
                cacheLimit: options.rowCacheLimit)
            builds[name] = nil
        }
        // A repair (`reprise repair`) replaced live rows this worker's cache may hold.
        let repairs = try await store.repairCount(active.buildID)
        if let known = builds[name], known.record.buildID == active.buildID {
            if known.repairs != repairs { known.dropCachedRows(); known.repairs = repairs }
            return (known, nil)
        }
        let build = ActiveBuild(record: active, runnable: runnable, fresh: false, cacheLimit: options.rowCacheLimit)
        build.repairs = repairs
        build.writesLiveTables = true
        build.parkedStreams = Set(try await parked.list(projection: name, scope: "").map(\.streamID))
        builds[name] = build
        return (build, previous)
    }

    /// The active build with this runner's live partition; nil when the build is not split for
    /// this runner (the caller splits it with `ensureSplit`, outside the apply lock).
    private func partitionBuild(_ active: BuildRecord, _ runnable: RunnableProjection, _ partition: Partition, previous: Int64?) async throws -> (ActiveBuild, switchedFrom: Int64?)? {
        let name = runnable.definition.name
        guard let row = try await store.ledger.livePartitions(of: active.buildID).first(where: { $0.number == partition.number && $0.count == partition.count }) else {
            return nil
        }
        let record = LivePartitions.record(active, partition: row)
        // The cached rows are only valid while nobody else wrote this partition since.
        if let known = builds[name], known.record.buildID == record.buildID, known.record.baseSnapshot == record.baseSnapshot,
            known.record.targetSnapshot == record.targetSnapshot, known.record.roundPosition == record.roundPosition
        {
            return (known, nil)
        }
        let build = ActiveBuild(record: record, runnable: runnable, fresh: false, cacheLimit: options.rowCacheLimit)
        build.writesLiveTables = true
        build.partitionSpec = .live(keys: RebuildEngine.partitionKeys(runnable.definition, source: reader.source.source), number: partition.number, count: partition.count)
        build.parkedStreams = Set(try await parked.list(projection: name, scope: parkScope).map(\.streamID))
        try await store.ledger.touchLive(active.buildID, partition.number, owner: partition.owner)
        builds[name] = build
        return (build, previous == active.buildID ? nil : previous)
    }

    /// Splits the active build for this runner's partition count if it is not yet. Called
    /// without an apply lock: a swap takes the projection lock, then the apply locks, and the
    /// split takes the projection lock, so holding an apply lock here could deadlock with it.
    func ensureSplit(_ runnable: RunnableProjection) async throws {
        guard let partition else { return }
        let (active, runnable) = try await activeRecord(runnable)
        if try await store.ledger.livePartitions(of: active.buildID).first?.count != partition.count {
            try await split(active, runnable, into: partition.count)
        }
    }

    /// Splits the active build into `count` live partitions, under the projection lock (which
    /// the unpartitioned worker and swaps take): first merges a split of another size whose
    /// consumers are gone, and finishes a round an unpartitioned worker left half done.
    private func split(_ active: BuildRecord, _ runnable: RunnableProjection, into count: Int) async throws {
        let name = runnable.definition.name
        let lock = RebuildEngine.projectionLockName(name, database: database)
        let timeout = options.lockTimeoutSeconds
        try await locks.withNamedLocks([lock], timeoutSeconds: timeout, busy: { lock in
            EngineError(.locked, projection: name, message: "could not take \(lock) within \(timeout)s to split build \(active.buildID) into live partitions")
        }) {
            try await splitHoldingLock(active, runnable, into: count)
        }
    }

    private func splitHoldingLock(_ active: BuildRecord, _ runnable: RunnableProjection, into count: Int) async throws {
        let name = runnable.definition.name
        guard var current = try await store.registry.build(active.buildID), current.state == .active else {
            throw EngineError(.inconsistentState, projection: name, message: "build \(active.buildID) stopped being active while splitting it")
        }
        let existing = try await store.ledger.livePartitions(of: current.buildID)
        if existing.first?.count == count { return }
        let parkedStreams = Set(try await parked.list(projection: name, scope: "").map(\.streamID))
        if !existing.isEmpty {
            current = try await LivePartitions.merge(
                current, runnable: runnable, checkOwners: true, writesLiveTables: true, parkedStreams: parkedStreams, store: store,
                reader: reader, snapshots: snapshots, database: database, chunkSize: options.chunkSize, fetchSize: options.fetchSize,
                cacheLimit: options.rowCacheLimit)
        }
        if current.roundPosition > 0 {
            let whole = ActiveBuild(record: current, runnable: runnable, fresh: false, cacheLimit: options.rowCacheLimit)
            whole.writesLiveTables = true
            whole.parkedStreams = parkedStreams
            let applier = ChunkApplier(store: store)
            var chunkNumber = 0
            do {
                _ = try await applier.readRound(
                    [whole], reader: reader, eventTypes: Array(runnable.definition.eventTypes).sorted(), decoders: ChunkApplier.decoders(for: [whole]),
                    fetchSize: options.fetchSize, chunkSize: options.chunkSize, chunkNumber: &chunkNumber)
            } catch let error as EngineError where error.kind == .handlerFailed || error.kind == .badPayload {
                // The chunks before the failing one are committed; the next split goes on from there.
                throw Failure(error: error, streamID: try await streamOf(error.position), splittingBuild: current.buildID)
            }
            try await applier.closeRound([whole], nextSnapshot: whole.record.targetSnapshot)
            current = whole.record
        }
        let split = current
        try await store.connection.withTransaction { [parked, store] _ in
            try await parked.scopeToPartitions(projection: name, count: count)
            try await store.ledger.splitLive(split, count: count)
        }
    }

    /// Applies everything committed up to now to every projection. Throws `Failure` for a
    /// handler error, after committing everything before the failing chunk.
    public func catchUp() async throws -> [Outcome] {
        var outcomes: [Outcome] = []
        for name in projections.map(\.definition.name) where !options.shouldStop() {
            guard let runnable = projections.first(where: { $0.definition.name == name }) else { continue }
            if let outcome = try await catchUpLocked(runnable) {
                outcomes.append(outcome)
            } else {
                // Not split for this runner (first start, or a swap brought a new build): split
                // outside the apply lock, then catch up.
                try await ensureSplit(runnable)
                outcomes.append(try await catchUpLocked(runnable) ?? Outcome(
                    projection: name, buildID: 0, eventsApplied: 0, switchedFromBuild: nil, releasedStreams: []))
            }
        }
        return outcomes
    }

    /// One catch-up under the projection lock (or this runner's partition's apply lock); nil
    /// when the active build is not split for this runner's partition.
    private func catchUpLocked(_ runnable: RunnableProjection) async throws -> Outcome? {
        let lock = partition.map { LivePartitions.applyLockName(projection: runnable.definition.name, database: database, number: $0.number) }
            ?? RebuildEngine.projectionLockName(runnable.definition.name, database: database)
        // A partition's apply lock is held by the connection that writes its chunks: killing
        // that one connection (a silent owner's lease expired) frees both.
        let holder = partition == nil ? locks : store.connection
        guard try await holder.getLock(lock, timeoutSeconds: options.lockTimeoutSeconds) else {
            throw EngineError(.locked, projection: runnable.definition.name, message: "could not take \(lock) within \(options.lockTimeoutSeconds)s")
        }
        do {
            let outcome = try await catchUp(runnable)
            _ = try await holder.releaseLock(lock)
            return outcome
        } catch {
            _ = try? await holder.releaseLock(lock)
            throw error
        }
    }

    private func catchUp(_ runnable: RunnableProjection) async throws -> Outcome? {
        guard let (build, switchedFrom) = try await currentBuild(runnable) else { return nil }
        let released = try await releaseRequestedStreams(build)
        if build.record.roundPosition == 0 {
            let now = try await snapshots.currentSnapshot()
            if now != build.record.targetSnapshot {
                try await store.checkpoints.retarget(build.record.checkpoint, snapshot: now)
                build.record.targetSnapshot = now
            }
        }
        let applier = ChunkApplier(store: store)
        var chunkNumber = 0
        let applied: Int64
        do {
            applied = try await applier.readRound(
                [build], reader: reader, eventTypes: Array(build.definition.eventTypes).sorted(), decoders: ChunkApplier.decoders(for: [build]),
                fetchSize: options.fetchSize, chunkSize: options.chunkSize, chunkNumber: &chunkNumber, shouldStop: options.shouldStop)
        } catch is StopRequested {
            // Stopped between chunks: what committed stays; the round is not closed.
            return Outcome(projection: build.name, buildID: build.record.buildID, eventsApplied: 0, switchedFromBuild: switchedFrom, releasedStreams: released)
        } catch let error as EngineError where error.kind == .handlerFailed || error.kind == .badPayload {
            throw Failure(error: error, streamID: try await streamOf(error.position))
        }
        if build.record.baseSnapshot != build.record.targetSnapshot {
            try await applier.closeRound([build], nextSnapshot: build.record.targetSnapshot)
        } else if let partition {
            // A heartbeat for `status`, when nothing moved.
            try await store.ledger.touchLive(build.record.buildID, partition.number, owner: partition.owner)
        }
        return Outcome(projection: build.name, buildID: build.record.buildID, eventsApplied: applied, switchedFromBuild: switchedFrom, releasedStreams: released)
    }

    private func streamOf(_ position: Int64?) async throws -> String? {
        guard let position else { return nil }
        return try await reader.streamID(at: position)
    }

    /// Parks a stream: its events wait (in order) while every other stream keeps flowing.
    public func park(projection: String, streamID: String, failure: Failure) async throws {
        // Failed in a split's round: in the whole projection (the split then parks it in every partition).
        let build = failure.splittingBuild == nil ? builds[projection] : nil
        guard let buildID = failure.splittingBuild ?? build?.record.buildID else { return }
        try await parked.park(ParkedStream(
            projection: projection, streamID: streamID, buildID: buildID, position: failure.error.position ?? 0,
            eventType: failure.error.eventType ?? "", error: failure.error.description, action: .wait, parkedAt: "",
            livePartition: build == nil ? "" : parkScope))
        build?.parkedStreams.insert(streamID)
    }

    /// Applies the waiting events of streams an operator asked to retry or skip.
    private func releaseRequestedStreams(_ build: ActiveBuild) async throws -> [String] {
        // Only between rounds: inside one, the stream's events past the base are partly applied
        // and partly not, and a replay "visible in the base" would miss them.
        guard !build.parkedStreams.isEmpty, build.record.roundPosition == 0 else { return [] }
        guard let base = build.record.baseSnapshot else { return [] }
        var released: [String] = []
        for entry in try await parked.list(projection: build.name, scope: parkScope) where entry.action != .wait {
            // Not before the round the event failed in closed: that round still reads the event
            // (it skips the stream while it is parked), so a skip or retry now would meet it again.
            guard try await isInBase(parkedAt: entry, base: base) else { continue }
            let from = entry.action == .skip ? entry.position + 1 : entry.position
            let events = try await reader.streamEvents(entry.streamID, from: from, visibleIn: base, partition: build.partitionSpec)
                .filter { build.definition.handlers[$0.type] != nil }
            build.parkedStreams.remove(entry.streamID)
            let parkedStore = parked, projection = build.name, stream = entry.streamID, scope = parkScope
            do {
                try await ChunkApplier(store: store).applyOutOfRound(events, to: build) {
                    try await parkedStore.remove(projection: projection, streamID: stream, scope: scope)
                }
                released.append(entry.streamID)
            } catch {
                build.parkedStreams.insert(entry.streamID)
                try await parked.setWaiting(projection: build.name, streamID: entry.streamID, scope: parkScope, error: "\(error)")
            }
        }
        return released
    }

    /// Whether the event a stream was parked at is visible in `base`, that is, the round it
    /// failed in is closed. Checked over the whole stream: a stream parked before a split waits
    /// in every partition, also in those its parked event does not belong to.
    private func isInBase(parkedAt entry: ParkedStream, base: String) async throws -> Bool {
        if try await reader.streamEvents(entry.streamID, from: entry.position, visibleIn: base).first?.position == entry.position { return true }
        // An event deleted from the store since cannot be waited for.
        return try await reader.streamID(at: entry.position) == nil
    }

    /// The envelope of an event, for a parked (dead-letter) message.
    public func event(at position: Int64) async throws -> (streamID: String, streamVersion: Int64, type: String, eventID: String, payload: String, recordedAt: String)? {
        guard let (event, payload) = try await reader.event(at: position) else { return nil }
        return (event.streamID, event.streamVersion, event.type, event.eventID, payload, event.recordedAt)
    }

    /// Events committed but not yet applied by every projection, and the age of the oldest of them.
    public func lag() async throws -> (events: Int64, seconds: Double) {
        var worst: (Int64, Double) = (0, 0)
        for build in builds.values {
            guard let base = build.record.baseSnapshot else { continue }
            let lag = try await snapshots.lag(since: base, partition: build.partitionSpec)
            if lag.events > worst.0 { worst = lag }
        }
        return worst
    }

    /// Streams parked now, over all projections.
    public var parkedStreamCount: Int { builds.values.reduce(0) { $0 + $1.parkedStreams.count } }
}
