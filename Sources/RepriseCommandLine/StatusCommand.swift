import RepriseSupport
import ArgumentParser
import RepriseEngine
import RepriseLive
import RepriseMySQL
import ReprisePostgres

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show each projection's active version, lag, rebuilds in progress and parked streams.",
        discussion: """
            Lag counts the events committed in the event store that the active build has not applied \
            yet (any event type), and the age of the oldest of them: with a live worker running it \
            stays near zero; while the worker is stopped it grows with every append.
            """)

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var eventSource: SourceOptions
    @OptionGroup var mysql: MySQLOptions

    @Option(help: "Folder of projection files (for the lag of each live partition).")
    var projectionsDir = "projections"

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        try await reportingFailures {
            let my = try await MySQLConnection.connect(url: try mysql.resolvedURL())
            let pg = try await PostgresConnection.connect(url: try postgres.resolvedURL())
            // Projection files, when present, give the partition keys for per-partition lag.
            let definitions = Dictionary(
                ((try? ProjectionCatalog.load(directory: projectionsDir).all) ?? []).map { ($0.definition.name, $0.definition) }, uniquingKeysWith: { $1 })
            let statuses = try await ProjectionStatusReader.read(
                mysql: my, postgres: pg, source: try eventSource.eventSource(postgres), definitions: definitions)
            let relays = try await OutboxRelay.announcements(on: pg)
            await my.close()
            await pg.close()
            if json {
                Terminal.output(ProjectionStatus.jsonText(statuses))
                return
            }
            guard !statuses.isEmpty else {
                Terminal.output("no projection has been built yet: run `reprise rebuild --all`")
                return
            }
            var table = [["PROJECTION", "ACTIVE", "BUILD", "LAG (EVENTS)", "LAG (S)", "IN PROGRESS", "RETIRED", "PARKED", "LAST ERROR"]]
            for status in statuses {
                let active = status.active
                let progress = status.building.map { build in
                    guard !build.partitions.isEmpty else { return "build \(build.buildID) v\(build.version): \(build.eventsApplied) events, round \(build.rounds)" }
                    let done = build.partitions.filter { $0.state == .done }.count
                    let events = build.partitions.reduce(Int64(0)) { $0 + $1.eventsApplied }
                    return "build \(build.buildID) v\(build.version): \(done)/\(build.partitions.count) partitions done, \(events) events"
                }.joined(separator: "; ")
                let error = (status.building.compactMap(\.lastError) + [active?.lastError].compactMap { $0 }).last ?? ""
                table.append([
                    status.projection, active.map { "v\($0.version)" } ?? "-", active.map { String($0.buildID) } ?? "-",
                    status.lagEvents.map(String.init) ?? "-", status.lagSeconds.map { String(Int($0.rounded())) } ?? "-",
                    progress.isEmpty ? "-" : progress, status.retired.map { "\($0.buildID) (v\($0.version))" }.joined(separator: ", ").ifEmpty("-"),
                    String(status.parkedStreams), String(error.prefix(80)),
                ])
            }
            Terminal.table(table)
            // Active relays, from their PostgreSQL sessions: who publishes which outbox shares.
            if !relays.isEmpty {
                Terminal.output("")
                Terminal.output("relays:")
                var rows = [["OWNER", "OUTBOX", "SHARES", "SESSION AGE (S)"]]
                for relay in relays {
                    rows.append([relay.owner, relay.outbox, (relay.shares.isEmpty ? "standing by" : relay.shares.map(String.init).joined(separator: ",")) + " of \(relay.of)", String(Int(relay.sessionSeconds))])
                }
                Terminal.table(rows, indent: "  ")
            }
            // Live partitions of active builds: one line per partition.
            for status in statuses where !status.livePartitions.isEmpty {
                Terminal.output("")
                Terminal.output("\(status.projection) build \(status.active.map { String($0.buildID) } ?? "-"), live partitions:")
                var rows = [["PARTITION", "OWNER", "EVENTS", "POSITION", "LAG (EVENTS)", "LEASE AGE (S)"]]
                for (partition, lag) in status.livePartitions {
                    rows.append([
                        "\(partition.number) of \(partition.count)", partition.owner ?? "-", String(partition.eventsApplied), String(partition.roundPosition),
                        lag.map(String.init) ?? "-", partition.secondsSinceHeartbeat.map { String(format: "%.0f", $0) } ?? "-",
                    ])
                }
                Terminal.table(rows, indent: "  ")
            }
            // Partitioned rebuilds in progress: one line per partition.
            for status in statuses {
                for build in status.building where !build.partitions.isEmpty {
                    Terminal.output("")
                    Terminal.output("\(status.projection) build \(build.buildID), partitions:")
                    var rows = [["PARTITION", "STATE", "OWNER", "EVENTS", "POSITION", "LEASE AGE (S)"]]
                    for partition in build.partitions {
                        rows.append([
                            String(partition.number), partition.state.rawValue, partition.owner ?? "-", String(partition.eventsApplied),
                            String(partition.roundPosition), partition.secondsSinceHeartbeat.map { String(format: "%.0f", $0) } ?? "-",
                        ])
                    }
                    Terminal.table(rows, indent: "  ")
                }
            }
        }
    }
}

extension String {
    func ifEmpty(_ replacement: String) -> String { isEmpty ? replacement : self }
}
