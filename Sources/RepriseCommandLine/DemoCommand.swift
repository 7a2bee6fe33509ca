import ArgumentParser
import RepriseDemo
import RepriseEventStore
import ReprisePostgres

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Demo data: a realistic e-commerce event history.",
        subcommands: [SeedCommand.self])

    struct SeedCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "seed",
            abstract: "Append a deterministic e-commerce history to the event store.",
            discussion: """
                Products, customers, orders with items, payments, shipments and cancellations, with a few \
                hot customers and products. The same --seed always gives the same events. Events and \
                their outbox rows are written through the append API, in batches of one transaction each. \
                Creates the event store tables first when they are missing.
                """)

        @OptionGroup var postgres: PostgresOptions

        @Option(help: "Number of events to append.")
        var events = 100_000

        @Option(help: "Seed of the history (same seed, same events).")
        var seed: UInt64 = 42

        @Option(help: "Events per append transaction.")
        var batchSize = 5_000

        @Option(help: "Connections appending in parallel (streams are split among them).")
        var connections = 2

        @Flag(help: "Do not write outbox rows (a history for rebuilds only).")
        var noOutbox = false

        @Flag(help: "When this seed's history is already in the store, say so and succeed instead of failing.")
        var skipIfSeeded = false

        @Flag(help: "No progress output.")
        var quiet = false

        func validate() throws {
            guard events > 0 else { throw ValidationError("--events must be positive") }
            guard (1...20_000).contains(batchSize) else { throw ValidationError("--batch-size must be between 1 and 20000") }
            guard (1...16).contains(connections) else { throw ValidationError("--connections must be between 1 and 16") }
        }

        func run() async throws {
            try await reportingFailures {
                let url = try postgres.resolvedURL()
                var pool: [PostgresConnection] = []
                for _ in 0..<connections { pool.append(try await PostgresConnection.connect(url: url)) }
                let connection = pool[0]
                let store = EventStore(schema: try postgres.eventStoreSchema())
                try await store.initialize(on: connection)
                var progress = ProgressLine(label: "seeding", total: events, quiet: quiet)
                let seeder = DemoSeeder(store: store, batchSize: batchSize, writeOutbox: !noOutbox)
                let written: Int
                do {
                    written = try await seeder.seed(events: events, seed: seed, on: pool) { done in
                        progress.update(done: done)
                    }
                } catch DemoSeedError.alreadySeeded where skipIfSeeded {
                    Terminal.output("the demo history of seed \(seed) is already in the store; nothing to do")
                    for connection in pool { await connection.close() }
                    return
                }
                progress.finish()
                let seconds = progress.elapsedSeconds
                Terminal.output("seeded \(written) events (seed \(seed)) in \(ProgressLine.duration(seconds)), \(Int(Double(written) / max(seconds, 0.001))) events/s")
                for connection in pool { await connection.close() }
            }
        }
    }
}
