import ArgumentParser
import RepriseEventStore
import ReprisePostgres

struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the default event store and outbox tables in PostgreSQL.",
        discussion: """
            Idempotent: existing tables with the expected shape are kept as they are. A table of the \
            same name with another shape is never altered; the command stops and names the differences. \
            Reads the catalog first and runs DDL only for what is missing, so on a complete store it \
            runs none. It never blocks writers: each statement on an existing table runs under a lock \
            timeout, and one that would wait behind an open transaction is skipped and printed ("not done") \
            (new schemas and tables are created whole: nobody writes them yet); an index missing \
            from an existing table is built CONCURRENTLY. Run it again when the store is quiet. \
            Exits with 75 when a statement was not done, so a script does not go on with a store \
            that lacks it.
            """)

    @OptionGroup var postgres: PostgresOptions

    @Option(help: "How long a statement may wait for a lock before init gives it up (writers queue behind a waiting DDL statement).")
    var lockTimeoutMs = 200

    func validate() throws {
        guard (1...60_000).contains(lockTimeoutMs) else { throw ValidationError("--lock-timeout-ms is 1 to 60000") }
    }

    func run() async throws {
        try await reportingFailures {
            let connection = try await PostgresConnection.connect(url: try postgres.resolvedURL())
            let store = EventStore(schema: try postgres.eventStoreSchema())
            let report = try await store.initialize(on: connection, lockTimeoutMilliseconds: lockTimeoutMs)
            for table in report.createdTables { Terminal.output("created \(table)") }
            for table in report.existingTables { Terminal.output("kept \(table) (already present with the expected columns)") }
            for index in report.createdIndexes { Terminal.output("created index \(index)") }
            if !report.deferred.isEmpty {
                Terminal.output("not done: a lock was not free within \(lockTimeoutMs) ms (the store is in use); waiting would have blocked writers. It would have run:")
                for statement in report.deferred { Terminal.output("  " + statement.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")) }
                Terminal.output("run `reprise init` again when no transaction holds the table open")
            }
            await connection.close()
            if !report.deferred.isEmpty { throw ExitCode(RepriseExitCode.deferred) }
        }
    }
}
