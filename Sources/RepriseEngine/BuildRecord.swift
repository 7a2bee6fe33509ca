/// One build of a projection version: the physical tables `<table>__<buildID>` and how far
/// events have been applied to them. Stored in MySQL (`reprise_builds`) in the same
/// transactions as the rows it covers.
///
/// Progress is a *round*: every event visible in `targetSnapshot` but not in `baseSnapshot`
/// (nil: none), in position order, applied up to `roundPosition`. When a round ends, its target
/// becomes the base and a newer snapshot the next target. PostgreSQL snapshots say exactly which
/// transactions had committed, so an event committed late (a lower position becoming visible
/// after a higher one) belongs to the round of the snapshot that first sees it: never skipped,
/// never applied twice.
public struct BuildRecord: Sendable, Equatable {
    public enum State: String, Sendable {
        /// Being filled; its tables are green.
        case building
        /// Its tables are the live ones.
        case active
        /// Swapped out; tables kept for rollback until retention drops them.
        case retired
        /// Tables dropped.
        case dropped
        /// Given up (a newer build of the projection replaced it before its swap).
        case abandoned
    }

    public var buildID: Int64
    public var projection: String
    public var version: Int
    public var definitionHash: String
    public var state: State
    /// Everything visible in this snapshot is applied (nil: nothing yet).
    public var baseSnapshot: String?
    /// The snapshot of the round in progress.
    public var targetSnapshot: String
    /// Within the round, events up to this position are applied.
    public var roundPosition: Int64
    public var eventsApplied: Int64
    public var rounds: Int
    /// Set while one partition of a partitioned rebuild is being read: progress is then the
    /// partition's (`reprise_build_partitions`), within the build's first round.
    public var partition: BuildPartition?
    /// Set while a live consumer applies one live partition of an active build: base, target and
    /// round position are then the partition's (`reprise_live_partitions`).
    public var livePartition: LivePartition?

    /// The physical name of a table of this build while it is not live.
    /// (See `BuildPartition` for partitioned progress.)
    public func physicalName(_ table: String) -> String { "\(table)__\(buildID)" }
}

/// One partition of a partitioned rebuild: the events whose partition key hashes to `number`
/// (of `count`), and how far they are applied.
public struct BuildPartition: Sendable, Equatable {
    public enum State: String, Sendable {
        case pending, running, done
    }

    public var number: Int
    public var count: Int
    public var state: State
    public var roundPosition: Int64
    public var eventsApplied: Int64
    /// The worker that claimed it last, and seconds since its last chunk.
    public var owner: String?
    public var secondsSinceHeartbeat: Double?
    /// Raised by every claim: the claim a worker's chunks commit under.
    public var epoch: Int64 = 0
}

/// One live partition of an active build: the events whose partition key falls in its slots
/// (`PartitionSlots`), applied by one `reprise live --partitions N` consumer at a time, with a
/// round of its own. The build's own checkpoint stays where the split happened until the
/// partitions are merged back into one snapshot.
public struct LivePartition: Sendable, Equatable {
    public var number: Int
    public var count: Int
    public var baseSnapshot: String?
    public var targetSnapshot: String
    public var roundPosition: Int64
    /// Applied by this partition since the split.
    public var eventsApplied: Int64
    public var owner: String?
    /// Seconds since its consumer last looked at it (every catch-up, with or without events).
    public var secondsSinceHeartbeat: Double?
}
