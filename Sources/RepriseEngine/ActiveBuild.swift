import RepriseProjection

/// One build being written (by a rebuild, or by the live worker), with what the engine keeps about it.
package final class ActiveBuild {
    package var record: BuildRecord
    let runnable: RunnableProjection
    let declarative: DeclarativeProjection?
    let workspace: RowWorkspace
    let resumed: Bool
    var eventsApplied: Int64 = 0
    var rowsWritten: Int64 = 0
    var catchUpRounds = 0

    package init(record: BuildRecord, runnable: RunnableProjection, fresh: Bool, cacheLimit: Int) {
        self.record = record
        self.runnable = runnable
        if case .file(let definition) = runnable { declarative = DeclarativeProjection(definition) } else { declarative = nil }
        workspace = RowWorkspace(tables: runnable.definition.tables, freshTables: fresh, cacheLimit: cacheLimit)
        resumed = !fresh
    }

    package var definition: ProjectionDefinition { runnable.definition }
    /// Rebuilds write the build's own tables (`t__N`); the live worker writes the live ones (`t`).
    package var writesLiveTables = false
    /// Streams whose events wait (parked after a poison event); their events are not applied.
    package var parkedStreams: Set<String> = []
    /// Set while this build reads one partition of a partitioned rebuild.
    package var partitionSpec: EventStoreReader.PartitionSpec?

    func tableName(_ table: String) -> String { writesLiveTables ? table : record.physicalName(table) }
    package var name: String { runnable.definition.name }
}
