import ArgumentParser
import Foundation
import RepriseEventSource
import RepriseEventStore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Server URLs, from flags or the environment. Never printed unredacted.
package struct PostgresOptions: ParsableArguments {
    package init() {}

    @Option(name: .customLong("postgres-url"), help: ArgumentHelp("Event store URL (default: $REPRISE_POSTGRES_URL).", valueName: "url"))
    var url: String?

    @Option(name: .customLong("store-schema"), help: "PostgreSQL schema of the event store tables.")
    var schema = "public"

    @Option(name: .customLong("events-table"), help: "Name of the events table.")
    var eventsTable = "events"

    @Option(name: .customLong("outbox-table"), help: "Name of the outbox table.")
    var outboxTable = "outbox"

    package func resolvedURL() throws -> String {
        try url ?? environment("REPRISE_POSTGRES_URL", flag: "--postgres-url")
    }

    package func eventStoreSchema() throws -> EventStoreSchema {
        do {
            return try EventStoreSchema(schema: schema, eventsTable: eventsTable, outboxTable: outboxTable)
        } catch {
            throw ValidationError(error.description)
        }
    }

    package func validate() throws {
        _ = try eventStoreSchema()
    }
}

package struct MySQLOptions: ParsableArguments {
    package init() {}

    @Option(name: .customLong("mysql-url"), help: ArgumentHelp("Read model URL (default: $REPRISE_MYSQL_URL).", valueName: "url"))
    var url: String?

    package func resolvedURL() throws -> String {
        try url ?? environment("REPRISE_MYSQL_URL", flag: "--mysql-url")
    }
}

package struct AMQPOptions: ParsableArguments {
    package init() {}

    @Option(name: .customLong("amqp-url"), help: ArgumentHelp("RabbitMQ URL (default: $REPRISE_AMQP_URL).", valueName: "url"))
    var url: String?

    package func resolvedURL() throws -> String {
        try url ?? environment("REPRISE_AMQP_URL", flag: "--amqp-url")
    }
}

func environment(_ name: String, flag: String) throws -> String {
    guard let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty else {
        throw ValidationError("no \(flag) given and \(name) is not set (for the local servers: eval \"$(scripts/services env)\")")
    }
    return value
}

/// Where rebuild and live read events: Reprise's own store (default) or a mapped table.
struct SourceOptions: ParsableArguments {
    @Option(name: .customLong("source"), help: ArgumentHelp(
        "Event source: a preset (\(EventSource.presetNames.joined(separator: ", "))) or a source mapping file (YAML). Default: Reprise's own store.",
        valueName: "preset-or-file"))
    var source: String?

    /// A job file's inline `source:` mapping, as YAML text.
    @Option(name: .customLong("source-yaml"), help: .hidden)
    var sourceYAML: String?

    /// The mapping: a preset takes `--store-schema` as its schema.
    func eventSource(_ postgres: PostgresOptions) throws -> EventSource {
        do {
            if let sourceYAML { return try EventSourceFile.parse(sourceYAML, path: "job source") }
            guard let source else { return .reprise(try postgres.eventStoreSchema()) }
            if EventSource.presetNames.contains(source) && !FileManager.default.fileExists(atPath: source) {
                return try EventSource.preset(source, schema: postgres.schema)
            }
            return try EventSourceFile.load(path: source)
        } catch let error as EventSourceError {
            throw ValidationError(error.description)
        }
    }

    func validate() throws {
        if source != nil && sourceYAML != nil { throw ValidationError("give --source or a job's source:, not both") }
    }
}
