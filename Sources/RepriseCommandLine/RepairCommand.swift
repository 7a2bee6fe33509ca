import ArgumentParser
import RepriseEngine

struct RepairCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Recompute the rows one stream decides and replace them in the live tables.",
        discussion: """
            For a projection whose rows one stream decides (its partition_key is event.stream_id, \
            every table's key comes from event.stream_id, or every table's key is the partition key), \
            recomputes the stream's rows from the events the live tables already cover (the active \
            build's checkpoint) and replaces them in one MySQL transaction, under the projection lock \
            the live worker takes for each catch-up: a running `reprise live` waits, then goes on with \
            the repaired rows. The checkpoint does not move. With a partition key in the payload, the \
            events carrying the stream's key are found across the store (a scan of the handled event \
            types). Refused, with the reason, for projections whose rows one stream does not decide \
            (product_sales_daily: an order's lines write the rows of many products), for a parked \
            stream, and while the active build is split into live partitions.
            """)

    @Argument(help: "Projection name (a file in the projections folder, the version that is live).")
    var projection: String

    @Option(help: "The stream whose rows to recompute.")
    var stream: String

    @Option(help: "Seconds to wait for the projection lock (a live worker holds it while it applies a chunk).")
    var lockTimeout = 60

    @Option(help: "Folder of projection files.")
    var projectionsDir = "projections"

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var eventSource: SourceOptions
    @OptionGroup var mysql: MySQLOptions

    func run() async throws {
        try await reportingFailures {
            let runnable = try ProjectionCatalog.load(directory: projectionsDir).projection(named: projection)
            let (stream, postgresURL, mysqlURL, source, lockTimeout) = (
                stream, try postgres.resolvedURL(), try mysql.resolvedURL(), try eventSource.eventSource(postgres), lockTimeout
            )
            // SIGTERM/SIGINT: the wait for the lock or the statement in progress is cancelled;
            // the repair's transaction is all or nothing, so the rows are as they were.
            let result = try await Signals.cancelling(rerun: "the stream's rows are as they were; run the same command again to repair them") {
                try await StreamRepair.repair(
                    runnable, streamID: stream, postgresURL: postgresURL, mysqlURL: mysqlURL, source: source, lockTimeoutSeconds: lockTimeout)
            }
            Terminal.output("\(result.projection): stream \(result.streamID), rows decided by \(result.decidedBy); build \(result.buildID); recomputed from the \(result.eventsApplied) events the live tables cover")
            for row in result.rows {
                let key = TraceCommand.keyText(row.key)
                let changed = row.changedColumns
                if changed.isEmpty {
                    Terminal.output("  \(row.table) \(key): unchanged")
                } else if row.before == nil {
                    Terminal.output("  \(row.table) \(key): missing, inserted")
                } else if row.after == nil {
                    Terminal.output("  \(row.table) \(key): deleted")
                } else {
                    let details = changed.map { "\($0) \(row.before?[$0]?.description ?? "-") -> \(row.after?[$0]?.description ?? "-")" }
                    Terminal.output("  \(row.table) \(key): replaced; " + details.joined(separator: ", "))
                }
            }
            Terminal.output("checkpoint unchanged")
        }
    }
}
