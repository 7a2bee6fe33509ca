import RepriseEngine
import RepriseEventSource
import RepriseMySQL
import ReprisePostgres
import RepriseProjection

/// Everything the status endpoints and the dashboard show, read in one go: the projections
/// (`ProjectionStatusReader`, the data of `reprise status`), the parked streams with their
/// errors, the running relays, and an estimate of the events in the store (for the progress of
/// rebuilds). Reading changes nothing.
public struct StatusSnapshot: Sendable {
    public var projections: [ProjectionStatus]
    public var parked: [ParkedStream]
    public var relays: [OutboxRelay.Announcement]
    /// Events in the store, from PostgreSQL's statistics (`pg_class.reltuples`), or counted when
    /// the table was never analyzed. Only an estimate: it drives progress bars and ETAs.
    public var storeEvents: Int64?

    public init(projections: [ProjectionStatus], parked: [ParkedStream] = [], relays: [OutboxRelay.Announcement] = [], storeEvents: Int64? = nil) {
        self.projections = projections
        self.parked = parked
        self.relays = relays
        self.storeEvents = storeEvents
    }

    /// How to connect and what to read; URLs are kept only in this value, never shown.
    public struct Source: Sendable {
        public var postgresURL: String
        public var mysqlURL: String
        public var eventSource: EventSource
        /// Projection definitions by name (partition keys for per-partition lag).
        public var definitions: [String: ProjectionDefinition]

        public init(postgresURL: String, mysqlURL: String, eventSource: EventSource, definitions: [String: ProjectionDefinition] = [:]) {
            self.postgresURL = postgresURL
            self.mysqlURL = mysqlURL
            self.eventSource = eventSource
            self.definitions = definitions
        }
    }

    /// Opens one connection to each server, reads, closes them (also when reading fails).
    public static func read(_ source: Source) async throws -> StatusSnapshot {
        let mysql = try await MySQLConnection.connect(url: source.mysqlURL)
        let postgres: PostgresConnection
        do {
            postgres = try await PostgresConnection.connect(url: source.postgresURL)
        } catch {
            await mysql.close()
            throw error
        }
        do {
            let snapshot = try await read(mysql: mysql, postgres: postgres, source: source)
            await mysql.close()
            await postgres.close()
            return snapshot
        } catch {
            await mysql.close()
            await postgres.close()
            throw error
        }
    }

    static func read(mysql: MySQLConnection, postgres: PostgresConnection, source: Source) async throws -> StatusSnapshot {
        let projections = try await ProjectionStatusReader.read(
            mysql: mysql, postgres: postgres, source: source.eventSource, definitions: source.definitions)
        let parked = try await ParkedStreamStore(connection: mysql).list()
        let relays = try await OutboxRelay.announcements(on: postgres)
        var storeEvents: Int64?
        if !projections.flatMap(\.building).isEmpty {
            storeEvents = try await estimatedEvents(postgres, table: source.eventSource.qualifiedTable)
        }
        return StatusSnapshot(projections: projections, parked: parked, relays: relays, storeEvents: storeEvents)
    }

    private static func estimatedEvents(_ postgres: PostgresConnection, table: String) async throws -> Int64? {
        let estimate = try await postgres.query(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)", [.text(table)])
        if let rows = estimate.int64(0, 0), rows > 0 { return rows }
        // Never analyzed (reltuples -1) or empty: count, once per page load.
        return try await postgres.query("SELECT count(*) FROM \(table)").int64(0, 0)
    }
}
