import ArgumentParser
import RepriseEventStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Server URLs, from flags or the environment. Never printed unredacted.
struct PostgresOptions: ParsableArguments {
    @Option(name: .customLong("postgres-url"), help: ArgumentHelp("Event store URL (default: $REPRISE_POSTGRES_URL).", valueName: "url"))
    var url: String?

    @Option(name: .customLong("store-schema"), help: "PostgreSQL schema of the event store tables.")
    var schema = "public"

    @Option(name: .customLong("events-table"), help: "Name of the events table.")
    var eventsTable = "events"

    @Option(name: .customLong("outbox-table"), help: "Name of the outbox table.")
    var outboxTable = "outbox"

    func resolvedURL() throws -> String {
        try url ?? environment("REPRISE_POSTGRES_URL", flag: "--postgres-url")
    }

    func eventStoreSchema() throws -> EventStoreSchema {
        do {
            return try EventStoreSchema(schema: schema, eventsTable: eventsTable, outboxTable: outboxTable)
        } catch {
            throw ValidationError(error.description)
        }
    }

    func validate() throws {
        _ = try eventStoreSchema()
    }
}

struct MySQLOptions: ParsableArguments {
    @Option(name: .customLong("mysql-url"), help: ArgumentHelp("Read model URL (default: $REPRISE_MYSQL_URL).", valueName: "url"))
    var url: String?

    func resolvedURL() throws -> String {
        try url ?? environment("REPRISE_MYSQL_URL", flag: "--mysql-url")
    }
}

struct AMQPOptions: ParsableArguments {
    @Option(name: .customLong("amqp-url"), help: ArgumentHelp("RabbitMQ URL (default: $REPRISE_AMQP_URL).", valueName: "url"))
    var url: String?

    func resolvedURL() throws -> String {
        try url ?? environment("REPRISE_AMQP_URL", flag: "--amqp-url")
    }
}

func environment(_ name: String, flag: String) throws -> String {
    guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else {
        throw ValidationError("no \(flag) given and \(name) is not set (for the local servers: eval \"$(scripts/services env)\")")
    }
    return value
}
