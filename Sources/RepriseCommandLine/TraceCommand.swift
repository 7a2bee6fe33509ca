import ArgumentParser
import Foundation
import RepriseEngine

struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Run one stream's events through a projection in memory and show what each operation did.",
        discussion: """
            Reads the stream's events from the event store and applies them with the projection's \
            handlers to rows held in memory, printing per event its position, type, the operations \
            that ran or were skipped (and why: `when` false, row missing) and each touched row's \
            columns before and after (changed ones marked *). Rows start empty, so for a projection \
            whose rows the stream decides the trace ends with the row a rebuild gives; --from-live \
            starts from the live rows instead. A lookup into a table only other streams write (a \
            customer's country for an order's payment) reads the live table (the active version's), \
            as it is now, not as of the event; the trace names those lookups and the rows they read, \
            or says that a row read as missing because there is no live table. Writes nothing \
            anywhere: no rows, no checkpoint, no registry, no lock. A handler error stops the trace; it names the event and the operation \
            and the command exits with 1.
            """)

    @Argument(help: "Projection name (a file in the projections folder).")
    var projection: String

    @Option(help: "The stream to trace.")
    var stream: String

    @Flag(help: "Start from the rows in the live tables instead of empty rows (reads MySQL; without it, only lookups of rows other streams write do).")
    var fromLive = false

    @Option(help: ArgumentHelp("Stop after the event at this global position.", valueName: "position"))
    var upto: Int64?

    @Flag(help: "Print the trace as JSON.")
    var json = false

    @Option(help: "Folder of projection files.")
    var projectionsDir = "projections"

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var eventSource: SourceOptions
    @OptionGroup var mysql: MySQLOptions

    func run() async throws {
        try await reportingFailures {
            let runnable = try ProjectionCatalog.load(directory: projectionsDir).projection(named: projection)
            let (stream, fromLive, upto, postgresURL, source) = (stream, fromLive, upto, try postgres.resolvedURL(), try eventSource.eventSource(postgres))
            let mysqlURL = fromLive ? try mysql.resolvedURL() : try? mysql.resolvedURL()
            // SIGTERM/SIGINT: the read in progress is cancelled on its server (a trace of a
            // payload key scans the store); nothing was written.
            let trace = try await Signals.cancelling(rerun: "a trace writes nothing; run it again to see the stream") {
                try await StreamTracer.trace(
                    runnable, streamID: stream, postgresURL: postgresURL, mysqlURL: mysqlURL, source: source, fromLive: fromLive, upto: upto)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                Terminal.output(String(decoding: try encoder.encode(trace), as: UTF8.self))
            } else {
                Self.print(trace)
            }
            if let failure = trace.failure {
                Terminal.error("error: \(failure)")
                throw ExitCode(RepriseExitCode.failure)
            }
        }
    }

    static func print(_ trace: StreamTrace) {
        let start = trace.fromLive ? "rows start from the live tables" : "rows start empty"
        let limit = trace.upto.map { ", up to position \($0)" } ?? ""
        Terminal.output("trace of \(trace.projection) v\(trace.version), stream \(trace.streamID) (\(start)\(limit); nothing is written)")
        for lookup in trace.lookups {
            let rows = switch lookup.rows {
            case "live": "rows this stream did not write come from the live table, as they are now (not as of the event)"
            case "no live table": "there is no live table of \(lookup.table) (never swapped in, or no --mysql-url): rows this stream did not write read as missing"
            case "from live": "rows come from the live table (--from-live), as they are now"
            default: "this stream writes that table too, so the lookup sees the rows the stream wrote (others read as missing: rows start empty)"
            }
            Terminal.output("lookup \(lookup.alias) (\(lookup.path)) reads \(lookup.table): \(rows)")
        }
        for event in trace.events {
            Terminal.output("")
            Terminal.output("#\(event.position)  \(event.type)  (stream version \(event.streamVersion))\(event.handled ? "" : ": no handler")")
            for read in event.lookupReads {
                let row = read.columns.map { columns in read.columnNames.map { "\($0)=\(columns[$0]?.description ?? "NULL")" }.joined(separator: " ") }
                let what = read.source == "live" ? "live row as of now" : "missing: no live table"
                Terminal.output("  lookup read \(read.table) \(keyText(read.key)) (\(what)): \(row ?? "no such row")")
            }
            if event.handled && event.operations.isEmpty { Terminal.output("  no operation touched a row") }
            for operation in event.operations {
                let reason = operation.reason.map { " (\($0))" } ?? ""
                Terminal.output("  \(operation.path)  \(operation.operation) \(operation.table) \(keyText(operation.key)): \(operation.outcome)\(reason)")
                guard operation.outcome == "ran" else { continue }
                var rows: [[String]] = []
                for column in operation.columns {
                    let before = column.before?.description ?? "-", after = column.after?.description ?? "-"
                    rows.append(column.changed ? [column.name, before, "->", after, "*"] : [column.name, before, "", "", ""])
                }
                Terminal.table(rows, indent: "      ")
            }
        }
        Terminal.output("")
        Terminal.output("rows after \(trace.events.last.map { "#\($0.position)" } ?? "no event"):")
        if trace.finalRows.isEmpty { Terminal.output("  none") }
        for row in trace.finalRows {
            guard let columns = row.columns else {
                Terminal.output("  \(row.table) \(keyText(row.key)): none (deleted)")
                continue
            }
            Terminal.output("  \(row.table) \(keyText(row.key)): " + row.columnNames.map { "\($0)=\(columns[$0]?.description ?? "NULL")" }.joined(separator: " "))
        }
    }

    static func keyText(_ key: [String: TraceValue]) -> String {
        "(" + key.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") + ")"
    }
}
