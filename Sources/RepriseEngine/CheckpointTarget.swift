import RepriseMySQL

/// Where a build's checkpoint is kept while events are applied to it: the build's own row, one
/// partition of a partitioned rebuild, or one live partition of an active build. The one place
/// that tells the three apart; `Checkpoints` writes each of them the same way.
///
/// ```swift
/// try await store.checkpoints.advance(build.record.checkpoint, to: lastPosition, events: count)
/// ```
package enum CheckpointTarget: Sendable, Equatable {
    /// `reprise_builds`: the build's rounds.
    case build(BuildRecord)
    /// `reprise_build_partitions`: partition `number` of the build's first round (no rounds,
    /// no snapshots of its own).
    case partition(BuildRecord, number: Int)
    /// `reprise_live_partitions`: a live partition, with rounds of its own (the record carries
    /// the partition's base, target and position).
    case livePartition(BuildRecord, LivePartition)

    init(_ record: BuildRecord) {
        if let live = record.livePartition {
            self = .livePartition(record, live)
        } else if let partition = record.partition {
            self = .partition(record, number: partition.number)
        } else {
            self = .build(record)
        }
    }

    package var record: BuildRecord {
        switch self {
        case .build(let record), .partition(let record, _), .livePartition(let record, _): record
        }
    }

    package var table: String {
        switch self {
        case .build: BuildRegistry.table
        case .partition: PartitionLedger.rebuildTable
        case .livePartition: PartitionLedger.liveTable
        }
    }

    /// The row, and the round the record believes in (its target snapshot; a rebuild partition
    /// has only the build's first round).
    package var row: (condition: String, parameters: [MySQLValue]) {
        let id = MySQLValue.int(record.buildID), target = MySQLValue.string(record.targetSnapshot)
        return switch self {
        case .build: ("build_id = ? AND target_snapshot = ?", [id, target])
        // A fenced owner's claim (epoch) no longer matches: its chunk finds no row and rolls back.
        case .partition(let record, let number): ("build_id = ? AND partition_no = ? AND owner_epoch = ?", [id, .int(Int64(number)), .int(record.partition?.epoch ?? 0)])
        case .livePartition(_, let live): ("build_id = ? AND partition_no = ? AND target_snapshot = ?", [id, .int(Int64(live.number)), target])
        }
    }

    /// The column that says when the row last moved (a partition's doubles as its owner's heartbeat).
    package var stamp: String {
        if case .build = self { "updated_at = UTC_TIMESTAMP(6)" } else { "heartbeat_at = UTC_TIMESTAMP(6)" }
    }

    /// A rebuild partition reads within the build's first round: the build's own row closes or
    /// retargets that round, never a partition's.
    package func requireRounds() throws(EngineError) {
        guard case .partition(let record, let number) = self else { return }
        throw EngineError(.inconsistentState, projection: record.projection, message: "partition \(number) of build \(record.buildID) has no rounds of its own")
    }

    /// Another writer moved the checkpoint (the compare-and-set found no row).
    package var movedOn: EngineError {
        let record = record
        let message = switch self {
        case .build: "build \(record.buildID) moved on under us (another process writing it?)"
        case .partition(_, let number): "partition \(number) of build \(record.buildID) moved on under us (another worker writing it?)"
        case .livePartition(_, let live):
            "live partition \(live.number) of \(live.count) of build \(record.buildID) moved on under us (another consumer applying it?)"
        }
        return EngineError(.inconsistentState, projection: record.projection, message: message)
    }
}

extension BuildRecord {
    /// Where this record's progress is kept.
    package var checkpoint: CheckpointTarget { CheckpointTarget(self) }
}
