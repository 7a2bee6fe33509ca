import ArgumentParser
import RepriseEngine
import RepriseMySQL
import ReprisePostgres

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
            Same exit codes as `reprise rebuild`.
            """)

    @Argument(help: "Projection name (a file in the projections folder, with a raised version).")
    var projection: String

    @Option(help: "Folder of projection files.")
    var projectionsDir = "projections"

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var eventSource: SourceOptions
    @OptionGroup var mysql: MySQLOptions

    @Option(help: "Events per chunk.")
    var chunkSize = 5_000

    @Option(help: "Swapped-out builds kept for rollback.")
    var keepRetired = 1

    @Flag(help: "No progress output.")
    var quiet = false

    func run() async throws {
        try await reportingFailures {
            let runnable = try ProjectionCatalog.load(directory: projectionsDir).projection(named: projection)
            let definition = runnable.definition
            let mysqlURL = try mysql.resolvedURL()
            let connection = try await MySQLConnection.connect(url: mysqlURL)
            let store = try await PostgresConnection.connect(url: try postgres.resolvedURL())
            let status = try await ProjectionStatusReader.read(mysql: connection, postgres: store, source: try eventSource.eventSource(postgres))
            await connection.close()
            await store.close()
            guard let active = status.first(where: { $0.projection == definition.name })?.active else {
                throw ValidationError("\(definition.name) has no active version yet: use `reprise rebuild \(definition.name)`")
            }
            guard definition.version > active.version else {
                throw ValidationError("the file says version \(definition.version) and version \(active.version) is active: raise `version` in the file to migrate, or use `reprise rebuild` to rebuild the same version")
            }
            var options = RebuildOptions()
            options.chunkSize = chunkSize
            options.keepRetiredBuilds = keepRetired
            let engine = RebuildEngine(postgresURL: try postgres.resolvedURL(), mysqlURL: mysqlURL, source: try eventSource.eventSource(postgres), options: options)
            let display = RebuildProgressDisplay(quiet: quiet)
            let results = try await runningEngine(display) {
                try await engine.rebuild([runnable]) { display.update($0) }
            }
            for result in results {
                let rows = result.tableRows.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
                Terminal.output("\(result.projection): migrated from v\(active.version) (build \(active.buildID)) to v\(result.version) (build \(result.buildID)); \(result.eventsApplied) events applied; rows: \(rows)")
            }
        }
    }
}
