import ArgumentParser
import RepriseEventStore
import ReprisePostgres

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the default event store and outbox tables in PostgreSQL.",
        discussion: """
            Idempotent: existing tables with the expected shape are kept as they are. A table of the \
            same name with another shape is never altered; the command stops and names the differences.
            """)

    @OptionGroup var postgres: PostgresOptions

    func run() async throws {
        try await reportingFailures {
            let connection = try await PostgresConnection.connect(url: try postgres.resolvedURL())
            let store = EventStore(schema: try postgres.eventStoreSchema())
            let report = try await store.initialize(on: connection)
            for table in report.createdTables { Terminal.output("created \(table)") }
            for table in report.existingTables { Terminal.output("kept \(table) (already present with the expected columns)") }
            await connection.close()
        }
    }
}
