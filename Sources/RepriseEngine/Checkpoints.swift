import RepriseMySQL

/// Reads and moves checkpoints, whichever row keeps them (`CheckpointTarget`). Every write is a
/// compare-and-set on the position (and round) the caller believes in, so a second writer of
/// the same checkpoint fails instead of applying twice. Callers run `advance` in the
/// transaction of the rows it covers.
package struct Checkpoints: Sendable {
    package let connection: MySQLConnection

    /// Records progress inside the chunk's transaction.
    package func advance(_ target: CheckpointTarget, to position: Int64, events: Int) async throws {
        try await update(
            target, set: "round_position = ?, events_applied = events_applied + ?", [.int(position), .int(Int64(events))],
            expecting: target.record.roundPosition)
    }

    /// Where the checkpoint stands now (nil when its round moved to another target, or the row is gone).
    package func position(_ target: CheckpointTarget) async throws -> Int64? {
        let row = target.row
        let result = try await connection.query("SELECT round_position FROM \(target.table) WHERE \(row.condition)", row.parameters)
        return result.rowCount == 1 ? result.int64(0, 0) : nil
    }

    /// Closes a round: its target becomes the base, `nextSnapshot` the next target.
    package func closeRound(_ target: CheckpointTarget, nextSnapshot: String) async throws {
        try target.requireRounds()
        let rounds = if case .build = target { ", rounds = rounds + 1" } else { "" }
        try await update(
            target, set: "base_snapshot = target_snapshot, target_snapshot = ?, round_position = 0" + rounds, [.string(nextSnapshot)],
            expecting: target.record.roundPosition)
    }

    /// Points a round that has not applied anything yet at a newer snapshot (the live worker's
    /// rounds always read up to now).
    package func retarget(_ target: CheckpointTarget, snapshot: String) async throws {
        try target.requireRounds()
        try await update(target, set: "target_snapshot = ?", [.string(snapshot)], expecting: 0)
    }

    /// `UPDATE … SET <assignments> WHERE <the target's row> AND round_position = <expected>`,
    /// which must find its one row.
    private func update(_ target: CheckpointTarget, set assignments: String, _ values: [MySQLValue], expecting position: Int64) async throws {
        let row = target.row
        let updated = try await connection.execute(
            "UPDATE \(target.table) SET \(assignments), \(target.stamp) WHERE \(row.condition) AND round_position = ?",
            values + row.parameters + [.int(position)])
        guard updated == 1 else {
            // A rebuild partition taken over by a newer claim: this worker stops, the new owner goes on.
            if case .partition(let record, let number) = target, let claimed = record.partition,
                let current = try await PartitionLedger(connection: connection).partitions(of: record.buildID).first(where: { $0.number == number }),
                current.epoch != claimed.epoch
            {
                throw PartitionLedger.partitionTakenOver(record.buildID, claimed, projection: record.projection)
            }
            throw target.movedOn
        }
    }
}
