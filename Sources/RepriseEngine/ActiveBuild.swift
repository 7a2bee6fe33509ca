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
    /// The part of `rowsWritten` that was bulk-loaded (rows new to the build's tables).
    var rowsLoaded: Int64 = 0
    /// Rows of merge tables written by merging upserts (`MergeRow`): rows that may exist.
    var rowsMerged: Int64 = 0
    var catchUpRounds = 0
    /// Queries that read rows from MySQL for chunks (prefetches and code projections' reads).
    var rowReadQueries: Int64 = 0
    /// The part of `rowReadQueries` that read rows for lookups (or rows a code projection declared).
    var lookupQueries: Int64 = 0
    /// Keys `rowReadQueries` asked for.
    var rowReadKeys: Int64 = 0
    /// The part of `rowReadKeys` read ahead of their step (`ReadAhead`).
    var rowReadKeysAhead: Int64 = 0
    /// Repairs of this build's live rows seen so far (the live worker drops its cache on a new one).
    package var repairs: Int64 = 0

    /// `mergeTables`: the workspace merges into the rows of the projection's merge tables, never reading them.
    package init(
        record: BuildRecord, runnable: RunnableProjection, fresh: Bool, cacheLimit: Int, mergeTables: Bool = true,
        filterFirstKeys: Int? = nil
    ) {
        self.record = record
        self.runnable = runnable
        if case .file(let definition) = runnable { declarative = DeclarativeProjection(definition) } else { declarative = nil }
        workspace = RowWorkspace(tables: runnable.definition.tables, freshTables: fresh, cacheLimit: cacheLimit,
            filterFirstKeys: filterFirstKeys ?? KeyFilter.defaultExpectedKeys)
        workspace.tracksEvents = declarative?.hasLookups ?? false
        if let declarative, mergeTables { workspace.mergeUnreadRows(of: declarative.mergeTablePositions) }
        resumed = !fresh
    }

    package var definition: ProjectionDefinition { runnable.definition }
    /// Rebuilds write the build's own tables (`t__N`); the live worker writes the live ones (`t`).
    package var writesLiveTables = false
    /// Streams whose events wait (parked after a poison event); their events are not applied.
    package var parkedStreams: Set<String> = []
    /// Set while this build reads one partition of a partitioned rebuild.
    package var partitionSpec: EventStoreReader.PartitionSpec?

    /// Forgets the cached rows (a repair replaced live rows behind this build's back).
    package func dropCachedRows() { workspace.reset() }

    func tableName(_ table: String) -> String { writesLiveTables ? table : record.physicalName(table) }
    package var name: String { runnable.definition.name }
}
