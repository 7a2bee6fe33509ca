import ArgumentParser
import RepriseEngine

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Build a new version of a projection beside the live one, catch up, and swap.",
        discussion: """
            Edit the projection file (new columns, fixed handlers, split tables), raise its `version`, \
            then run `reprise migrate <projection>`. The new version is built into its own tables from \
            the event store while the live worker keeps the active version current; it catches up to the \
            head, runs the checks and swaps all tables at once. A running `reprise live` follows the new \
            version without a restart (it reloads the projection files). The previous version's tables \
            are kept for `reprise rollback` (with that version's file) while --keep-retired allows. \
            The new version is built with the chunk, cache and index settings of `reprise rebuild`. \
            SIGTERM or SIGINT cancels the statement in progress, releases the locks and connections \
            and exits with 143 (130 for SIGINT); run the same command again to resume the build. \
            Same exit codes as `reprise rebuild`.
            """)

    @Argument(help: "Projection name (a file in the projections folder, with a raised version).")
    var projection: String

    @Option(help: "Folder of projection files.")
    var projectionsDir = "projections"

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var eventSource: SourceOptions
    @OptionGroup var mysql: MySQLOptions

    @OptionGroup var tuning: BuildTuningOptions

    @Flag(help: "No progress output.")
    var quiet = false

    @Flag(help: "Build the new version and stop before the swap: print what it would change. Then `migrate` again swaps it in, or `migrate --abandon` drops it.")
    var review = false

    @Flag(help: "With --review: print the review as JSON.")
    var json = false

    @Flag(help: "Give up the built, not yet swapped, version (after --review): drop its tables.")
    var abandon = false

    func run() async throws {
        try await reportingFailures {
            let runnable = try ProjectionCatalog.load(directory: projectionsDir).projection(named: projection)
            if abandon { return try await abandonBuilt(runnable.definition) }
            var options = tuning.rebuildOptions
            tuning.warnAboutDeprecatedOptions()
            options.swap = !review
            let engine = RebuildEngine(
                postgresURL: try postgres.resolvedURL(), mysqlURL: try mysql.resolvedURL(), source: try eventSource.eventSource(postgres), options: options)
            let display = RebuildProgressDisplay(quiet: quiet || json)
            let migration: MigrationResult
            let hooks = CommandLineContext.buildHooks
            do {
                migration = try await runningEngine(display) {
                    try await Signals.cancelling {
                        try await engine.migrate(runnable, hooks: hooks) { display.update($0) }
                    }
                }
            } catch let refused as MigrationRefused {
                throw ValidationError(refused.description)
            } catch let interrupted as Interrupted {
                throw interrupted.reported(rerun: "run the same command again to resume the build")
            }
            if review { return try await showReview(engine, runnable.definition, [migration.rebuild]) }
            let result = migration.rebuild
            let rows = result.tableRows.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            Terminal.output("\(result.projection): migrated from v\(migration.fromVersion) (build \(migration.fromBuildID)) to v\(result.version) (build \(result.buildID)); \(result.eventsApplied) events applied; rows: \(rows)")
        }
    }
}
