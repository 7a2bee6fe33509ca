import RepriseSupport
import ArgumentParser
import RepriseEngine
import RepriseMySQL

struct ParkedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parked",
        abstract: "List parked streams, or ask the live worker to retry or skip one after a fix.",
        discussion: """
            A stream is parked when one of its events kept failing in the live worker: that event and \
            every later event of the stream wait, in order, while other streams flow. The failing event \
            is also in the parked queue (<queue>.parked) with the error, projection and position.
              reprise parked                              list
              reprise parked retry <projection> <stream>  apply the waiting events again (after a fix)
              reprise parked skip <projection> <stream>   drop the failing event, apply the later ones
            The running live worker picks the request up on its next batch.
            """)

    @Argument(help: "list (default), retry or skip.")
    var action = "list"

    @Argument(help: "Projection name (retry, skip).")
    var projection: String?

    @Argument(help: "Stream id (retry, skip).")
    var stream: String?

    @OptionGroup var mysql: MySQLOptions

    @Flag(help: "Print the list as JSON lines.")
    var json = false

    func validate() throws {
        guard ["list", "retry", "skip"].contains(action) else { throw ValidationError("action must be list, retry or skip") }
        if action != "list" && (projection == nil || stream == nil) { throw ValidationError("\(action) needs a projection and a stream id") }
    }

    func run() async throws {
        try await reportingFailures {
            let connection = try await MySQLConnection.connect(url: try mysql.resolvedURL())
            let parked = ParkedStreamStore(connection: connection)
            try await parked.ensureTable()
            switch action {
            case "retry", "skip":
                let requested: ParkedStream.Action = action == "retry" ? .retry : .skip
                guard try await parked.request(requested, projection: projection ?? "", streamID: stream ?? "") else {
                    await connection.close()
                    throw ValidationError("stream '\(stream ?? "")' of projection '\(projection ?? "")' is not parked")
                }
                Terminal.output("\(action) requested for stream \(stream ?? "") of \(projection ?? ""); the live worker applies it on its next batch")
            default:
                let entries = try await parked.list()
                if entries.isEmpty && !json { Terminal.output("no parked streams") }
                for entry in entries {
                    if json {
                        LogLineJSON.print(entry)
                    } else {
                        let scope = entry.livePartition.isEmpty ? "" : "  in live partition \(entry.livePartition)"
                        Terminal.output("\(entry.projection)  \(entry.streamID)  position \(entry.position) (\(entry.eventType))\(scope)  \(entry.action.rawValue)  since \(entry.parkedAt)\n    \(entry.error)")
                    }
                }
            }
            await connection.close()
        }
    }
}

enum LogLineJSON {
    static func print(_ entry: ParkedStream) {
        let quote = JSONText.quoted
        Terminal.output("{\"projection\":\(quote(entry.projection)),\"stream\":\(quote(entry.streamID)),\"position\":\(entry.position),\"event_type\":\(quote(entry.eventType)),\"action\":\(quote(entry.action.rawValue)),\"parked_at\":\(quote(entry.parkedAt)),\"live_partition\":\(entry.livePartition.isEmpty ? "null" : quote(entry.livePartition)),\"error\":\(quote(entry.error))}")
    }
}
