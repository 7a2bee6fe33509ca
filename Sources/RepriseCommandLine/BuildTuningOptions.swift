import ArgumentParser
import RepriseEngine

/// How a build's chunks, row cache and indexes are bounded: the settings `rebuild` and `migrate`
/// share (one engine builds both, with the same defaults). A team that tuned its nightly rebuild
/// tunes the migration of the same projection the same way, on the command line or in a job file.
struct BuildTuningOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Most events per chunk (one MySQL transaction and checkpoint each). Default: no count; a chunk ends at --flush-mib of changed rows or after --flush-seconds, and writes each row it changed once.",
        valueName: "events"))
    var chunkSize: Int?

    @Option(help: ArgumentHelp("Changed rows held in memory (MiB, estimated, all projections together) that end a chunk.", valueName: "MiB"))
    var flushMib = RebuildOptions.defaultFlushBytes >> 20

    @Option(help: ArgumentHelp("Longest a chunk gathers events before it commits (what a crash makes the next run redo).", valueName: "seconds"))
    var flushSeconds = 10.0

    @Flag(help: "Upsert every row, also rows new to the build's tables (by default those are bulk-loaded with LOAD DATA LOCAL INFILE from memory).")
    var noBulkLoad = false

    @Flag(help: "Read back and cache the rows of merge tables too (tables changed only by upserts that set, add to counters or fill columns once, which by default are merged by MySQL without being read; docs/merge-tables.md). For comparison.")
    var noMergeTables = false

    @Flag(help: "Read the rows each step needs while the step before runs its handlers (faster when the row cache misses often, as on long histories; uses more memory).")
    var readAhead = false

    @Option(help: "Rows per FETCH from the PostgreSQL cursor.")
    var fetchSize = 5_000

    @Option(help: ArgumentHelp(
        "Rows known from earlier chunks kept in memory (MiB, all projections together); past it the rows used least recently are dropped and read again when needed.",
        valueName: "MiB"))
    var rowCacheMib = RebuildOptions.defaultRowCacheBytes >> 20

    @Option(help: ArgumentHelp("Deprecated: use --row-cache-mib. Also bounds each projection's cache by rows.", valueName: "rows"))
    var rowCacheLimit: Int?

    @Option(help: ArgumentHelp(
        "ALTER TABLEs adding the new tables' secondary indexes at once after the bulk phase, each on a MySQL connection of its own (MySQL builds one ALTER on one thread). 1: one table after the other.",
        valueName: "n"))
    var indexBuilds = 2

    @Option(help: "Swapped-out builds kept for rollback, per projection.")
    var keepRetired = 1

    func validate() throws {
        guard chunkSize ?? 1 > 0, fetchSize > 0 else { throw ValidationError("--chunk-size and --fetch-size must be positive") }
        guard flushMib > 0, flushSeconds > 0 else { throw ValidationError("--flush-mib and --flush-seconds must be positive") }
        guard keepRetired >= 0 else { throw ValidationError("--keep-retired cannot be negative") }
        guard rowCacheLimit ?? 2 >= 2 else { throw ValidationError("--row-cache-limit must be at least 2") }
        guard rowCacheMib > 0 else { throw ValidationError("--row-cache-mib must be positive") }
        guard (1...64).contains(indexBuilds) else { throw ValidationError("--index-builds is between 1 and 64") }
    }

    /// The engine's settings these options stand for (the rest at their defaults).
    var rebuildOptions: RebuildOptions {
        var options = RebuildOptions()
        options.chunkSize = chunkSize
        options.flushBytes = flushMib << 20
        options.flushInterval = .milliseconds(Int64(flushSeconds * 1000))
        options.bulkLoad = !noBulkLoad
        options.mergeTables = !noMergeTables
        options.readAhead = readAhead
        options.fetchSize = fetchSize
        options.rowCacheBytes = rowCacheMib << 20
        if let rowCacheLimit { options.rowCacheLimit = rowCacheLimit }
        options.indexBuilds = indexBuilds
        options.keepRetiredBuilds = keepRetired
        return options
    }

    /// Says that `--row-cache-limit` is deprecated, when it was given.
    func warnAboutDeprecatedOptions() {
        guard rowCacheLimit != nil else { return }
        Terminal.error("warning: --row-cache-limit is deprecated: the row cache is bounded in bytes by --row-cache-mib (\(rowCacheMib) MiB); the row count bounds each projection as well")
    }
}
