import ArgumentParser
import RepriseEngine

struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Make the previous build of a projection live again, caught up first.",
        discussion: """
            Takes the most recently retired build (its tables are kept while --keep-retired allows), \
            applies every event committed since it was retired, then swaps it in with one RENAME TABLE. \
            The build that was live is retired in turn, so a second rollback rolls forward again. \
            A running live worker follows the swap. The retired build must be of the projection file's \
            version and definition. SIGTERM or SIGINT cancels the statement in progress, releases the \
            locks and connections and exits with 143 (130 for SIGINT); run the same command again to \
            roll back (the catch-up goes on from its last committed chunk).
            """)

    @Argument(help: "Projection name (a file in the projections folder).")
    var projection: String

    @Option(help: "Folder of projection files.")
    var projectionsDir = "projections"

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var eventSource: SourceOptions
    @OptionGroup var mysql: MySQLOptions

    func run() async throws {
        try await reportingFailures {
            let runnable = try ProjectionCatalog.load(directory: projectionsDir).projection(named: projection)
            let engine = RebuildEngine(postgresURL: try postgres.resolvedURL(), mysqlURL: try mysql.resolvedURL(), source: try eventSource.eventSource(postgres))
            let result = try await Signals.cancelling(rerun: "run the same command again to roll back") { try await engine.rollback(runnable) }
            let rows = result.tableRows.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            Terminal.output("\(result.projection): build \(result.buildID) is live again (caught up \(result.eventsApplied) events); build \(result.previousBuildID.map(String.init) ?? "-") retired; rows: \(rows)")
        }
    }
}
