import RepriseMySQL
import RepriseProjection
import RepriseSupport

/// A projection the engine can run: a projection file, or Swift code.
public enum RunnableProjection: Sendable {
    case file(ProjectionDefinition)
    case code(any Projection)

    public var definition: ProjectionDefinition {
        switch self {
        case .file(let definition): definition
        case .code(let projection): projection.definition
        }
    }
}

/// Settings of a rebuild. The defaults were measured on the 2-core benchmark machine (README).
public struct RebuildOptions: Sendable {
    /// Most events per chunk (one MySQL transaction and checkpoint each). nil: no count; a chunk
    /// ends when its changed rows reach `flushBytes`, after `flushInterval`, at the end of a
    /// round or at a stop. A row changed by many events of a chunk is written once.
    public var chunkSize: Int?
    /// Changed rows held in memory (estimated bytes, summed over the projections read together)
    /// that end a chunk.
    public var flushBytes = RebuildOptions.defaultFlushBytes
    /// Longest a chunk gathers events: bounds what a crash makes the next run redo.
    public var flushInterval: Duration = .seconds(10)
    /// Events handled per step inside a chunk (one batched row read per table, one pass of the handlers).
    public var stepSize = 5_000
    /// Rows new to a build's tables are written with one bulk load per table and chunk
    /// (`LOAD DATA LOCAL INFILE` from memory) instead of multi-row upserts.
    public var bulkLoad = true
    /// Read the next step's rows on the read connection while a step's handlers run (projections
    /// without lookups; `ReadAhead`). Off by default: at 10M events it took the handlers' wait
    /// for rows read back from 35 s to about 1.5 s, but its peak resident size was 445-559 MB
    /// against 398-459 MB without (docs/throughput-readahead.md).
    public var readAhead = false
    /// Rows of merge tables (every operation on them an upsert that sets columns from the
    /// event, adds to integer counters or fills columns once) are never read: each chunk's
    /// change is merged into the row MySQL holds (`MergeRow`, docs/merge-tables.md). Off, they
    /// are read back and cached like any row.
    public var mergeTables = true
    /// Rows per `FETCH` from the PostgreSQL cursor.
    public var fetchSize = 5_000
    /// Rows known from committed chunks kept in memory: estimated bytes, summed over the
    /// projections read together (`RowCacheBudget`); past it the rows used least recently are
    /// dropped (they stay in MySQL). Bounds the cache by the settings, not by the history.
    public var rowCacheBytes = RebuildOptions.defaultRowCacheBytes
    /// Also bounds each projection's cache by rows (the bound before `rowCacheBytes`; `Int.max`: none).
    public var rowCacheLimit = Int.max
    /// ALTER TABLEs adding a new build's secondary indexes at once after the bulk phase, each on
    /// a connection of its own (MySQL builds an ALTER's indexes on one thread; nothing else runs
    /// then). 1: one table after the other.
    public var indexBuilds = 2
    /// Swapped-out builds kept for rollback, per projection.
    public var keepRetiredBuilds = 1
    /// Catch-up rounds after the bulk read before swapping anyway.
    public var maxCatchUpRounds = 5
    /// Seconds to wait for the projection lock (held by a live worker while it applies a chunk).
    public var swapLockTimeoutSeconds = 30
    /// Build the green tables but do not swap them in.
    public var swap = true
    /// Continue a build an interrupted run left behind (same version and definition). When false,
    /// such a build is abandoned (its tables dropped) and a new one starts.
    public var resume = true
    /// Partitioned rebuilds: only help a build other workers started; wait this long for one to
    /// appear, then give up with `NothingToJoin` (a late worker never starts a rebuild of its own).
    public var joinOnly: Duration?
    /// Partitioned rebuilds: a partition whose owner has not committed a chunk for this long is
    /// taken from it (its PostgreSQL session is terminated, its MySQL connection killed), so a
    /// frozen worker (paused, swapping, half-partitioned from the network) cannot hold it forever.
    public var leaseSeconds = 120
    /// Keys the first segment of a new build's written-key filters is sized for (1 MiB per table;
    /// tests make it small so that the segments sized by the outlook show in a small history).
    package var writtenKeyFilterFirstKeys = KeyFilter.defaultExpectedKeys


    public init() {}

    /// Measured on the 2-core benchmark machine (docs/throughput-io.md).
    public static let defaultFlushBytes = 64 << 20
    /// Measured on the 2-core benchmark machine (docs/merge-tables.md): since merge tables are
    /// never read, the three samples' 10M rebuild reads back about 63,000 order rows with 24,
    /// 32 or 64 MiB alike, and 32 MiB holds 25-40 MB less than 64.
    public static let defaultRowCacheBytes = 32 << 20
    /// Events handled per step (never more than a chunk): one batched row read per table, one
    /// pass of the handlers; also the catch-up round small enough to end a rebuild.
    var step: Int { max(1, min(chunkSize ?? stepSize, stepSize)) }

    /// A catch-up round with fewer events than this leaves little for the live worker: the rebuild swaps.
    var smallRound: Int { step }

    /// Rows per projection for paths that read in fixed chunks without the group's byte budget
    /// (merging a retired build's live partitions): the byte bound at about 512 bytes a row.
    var rowCacheRowsInFixedChunks: Int { min(rowCacheLimit, max(2, rowCacheBytes / 512)) }

    var chunkBounds: ChunkBounds {
        ChunkBounds(
            stepEvents: step, maxEvents: chunkSize ?? .max, maxBytes: flushBytes, maxAge: flushInterval, bulkLoadNewRows: bulkLoad,
            rowCache: RowCacheBudget(bytes: rowCacheBytes))
    }
}

/// When a chunk (one MySQL transaction and checkpoint) ends. Events are handled in steps of
/// `stepEvents`; the chunk ends after the step that reaches a bound.
package struct ChunkBounds: Sendable {
    var stepEvents: Int
    var maxEvents: Int
    var maxBytes: Int
    var maxAge: Duration?
    /// Rows new to a build's own tables go by bulk load.
    var bulkLoadNewRows = false
    /// Bounds the group's cached rows (the live worker's caches are bounded by rows only).
    var rowCache = RowCacheBudget(bytes: .max)

    /// What the chunk being gathered may hold while the chunk before it commits: three quarters
    /// of `maxBytes`, then the handlers wait for the commit, and the chunk ends when it ends.
    /// Commits take 0.55-0.7 of a chunk's gathering time at 1M and 10M events alike
    /// (docs/throughput-10m.md), so this only stops the slow ones, which otherwise hold two
    /// whole chunks at once: the highest resident sizes of a long rebuild. Ending the chunk
    /// there keeps MySQL busy while commits are the slower side (docs/throughput-allocator.md).
    var bytesGatheredWhileCommitting: Int {
        maxBytes < .max ? maxBytes / 4 * 3 : .max
    }

    /// The least time between two returns of free pages to the system, after big chunks.
    ///
    /// A rebuild's chunks (bounded in bytes) free tens of megabytes each, between rows that live
    /// on (the cache, the next chunk), so the arenas' free pages grow with every chunk until they
    /// are returned: measured at 10M events (docs/throughput-10m.md), 20-30 MB resident above
    /// what is live within three chunks, returned by each trim. So after every chunk, at most
    /// every `MemoryRelease.minimumInterval` (the walk takes 15-35 ms, a chunk about 3 s). The
    /// live worker's chunks (no byte bound) free little each: every `MemoryRelease.interval`.
    var freePagesSpacing: Duration {
        maxBytes < .max ? MemoryRelease.minimumInterval : MemoryRelease.interval
    }

    /// Chunks of `events` events, one step each (the live worker's small chunks), all rows upserted.
    package static func fixed(_ events: Int) -> ChunkBounds {
        ChunkBounds(stepEvents: events, maxEvents: events, maxBytes: .max, maxAge: nil)
    }
}

/// What a rebuild is doing, for progress bars.
public struct RebuildProgress: Sendable {
    public enum Phase: Sendable, Equatable {
        case reading
        case catchingUp(round: Int)
        /// After the bulk read: adding the secondary indexes `indexes` to the build's table `table`
        /// (one `ALTER TABLE`; it may take a while on a big table).
        case buildingIndexes(table: String, indexes: [String])
        case checking
        case swapping
        case done
        /// A partitioned rebuild took `partition` from `owner`, silent past its lease.
        case tookOver(partition: Int, owner: String, silentSeconds: Int)
        /// A partitioned rebuild whose chunk `chunk` failed ended the sessions of `owner`, silent
        /// past its lease on `partition`, before writing the chunk again: an owner frozen inside
        /// a chunk's transaction holds row locks other workers' chunks can wait on.
        case fencedOff(partition: Int, owner: String, silentSeconds: Int, beforeRedoingChunk: Int)
    }

    public var projections: [String]
    public var phase: Phase
    public var eventsDone: Int64
    public var eventsTotal: Int64
    /// The partition being read, in a partitioned rebuild.
    public var partition: Int? = nil
}

/// The outcome of a rebuild, per projection.
public struct RebuildResult: Sendable {
    public var projection: String
    public var version: Int
    public var buildID: Int64
    /// True when this run continued a build an earlier run had started.
    public var resumed: Bool
    /// Events applied by this run.
    public var eventsApplied: Int64
    /// Row writes (bulk-loaded rows, upserts and deletes) issued by this run.
    public var rowsWritten: Int64
    /// Catch-up rounds after the bulk read.
    public var catchUpRounds: Int
    /// Rows per table after the build, by table name.
    public var tableRows: [String: Int64]
    /// True when the build's tables were swapped in.
    public var swapped: Bool
    /// The build that was live before, if any (kept for rollback while retention allows).
    public var previousBuildID: Int64?
    /// Every event visible in this PostgreSQL snapshot is applied (where a live worker continues).
    public var appliedSnapshot: String?
    /// In a partitioned rebuild: the partitions this worker applied (wholly or from a checkpoint).
    public var partitionsApplied: [Int] = []
    /// Queries this run made to read rows from MySQL (batched per chunk and table).
    public var rowReadQueries: Int64 = 0
    /// The part of `rowReadQueries` that read rows for lookups.
    public var lookupQueries: Int64 = 0
    /// Keys those queries asked for (rows the workspace did not know: evicted, or maybe written).
    public var rowReadKeys: Int64 = 0
    /// The part of `rowsWritten` bulk-loaded as rows new to the build's tables.
    public var rowsLoaded: Int64 = 0
    /// The part of `rowReadKeys` read while the step before was handled (`ReadAhead`).
    public var rowReadKeysAhead: Int64 = 0
    /// The part of `rowsWritten` sent as merge rows of merge tables (rows that may exist, merged
    /// by MySQL into the row it holds: docs/merge-tables.md); none with `mergeTables` off.
    public var rowsMerged: Int64 = 0
    /// Bytes of the written-key filters at the end (they grow with the keys a new build writes:
    /// the part of a rebuild's memory that follows the history's length).
    public var writtenKeyFilterBytes = 0
}

/// Points where a test (or an operator's fault drill) can act during a rebuild.
public struct RebuildHooks: Sendable {
    /// After a chunk's rows are written, before its transaction commits.
    public var beforeChunkCommit: @Sendable (_ chunk: Int) async throws -> Void = { _ in }
    /// The chunk being gathered reached `bytesGatheredWhileCommitting` (`gatheredBytes`) while
    /// chunk `chunk` still commits: the handlers wait for that commit.
    public var gatheringWaitsForCommit: @Sendable (_ chunk: Int, _ gatheredBytes: Int) async -> Void = { _, _ in }
    /// After a chunk's transaction committed.
    public var afterChunkCommit: @Sendable (_ chunk: Int) async throws -> Void = { _ in }
    /// Right after the COMMIT of a chunk's transaction, inside the commit step: a throw here is
    /// a connection lost after the server committed (fault tests).
    public var afterCommitStatement: @Sendable (_ chunk: Int) async throws -> Void = { _ in }
    /// After a round of reading ended (0 is the bulk read), before the next snapshot is taken.
    public var afterRound: @Sendable (_ round: Int) async throws -> Void = { _ in }
    /// Before each `ALTER TABLE` that adds a build's missing secondary indexes, numbered from 0 in this run.
    public var beforeIndexBuild: @Sendable (_ alter: Int) async throws -> Void = { _ in }
    /// After checks passed, before the swap.
    public var beforeSwap: @Sendable () async throws -> Void = {}
    /// Inside the swap: after the `RENAME TABLE`, before the build registry records it (a crash
    /// here is what `reconcileSwap` finishes on the next run).
    public var afterSwapRename: @Sendable () async throws -> Void = {}
    /// A MySQL session was lost and reopened explicitly: the writer before `chunk` is redone, or
    /// (chunk nil) the lock session, whose lost named locks were taken back. `reopened` says
    /// what the old session lost.
    public var connectionReopened: @Sendable (_ chunk: Int?, _ reopened: MySQLReopened) async -> Void = { _, _ in }

    public init() {}
}

/// A `--join` worker found no partitioned build in progress to help.
public struct NothingToJoin: Error, Sendable, CustomStringConvertible {
    public var projection: String
    public var description: String { "no partitioned rebuild of \(projection) is in progress: nothing to join" }
}
