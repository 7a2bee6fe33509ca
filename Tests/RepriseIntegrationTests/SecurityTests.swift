import Foundation
import RepriseEngine
import Prometheus
import RepriseHTTP
import RepriseLive
import RepriseMySQL
import ReprisePostgres
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension BrokerSuites {
/// Reprise runs with the least privilege the README lists: these are exactly those GRANTs.
@Suite("Security: least privilege (real servers)")
struct LeastPrivilegeTests {
    /// The statements of the README's "Least privilege" section, for one store schema and database.
    static func postgresGrants(schema: String, reader: String, relay: String, password: String) -> [String] {
        let s = PostgresIdentifier.quote(schema)
        return [
            "CREATE ROLE \(reader) LOGIN PASSWORD '\(password)'",
            "GRANT USAGE ON SCHEMA \(s) TO \(reader)",
            "GRANT SELECT ON \(s).events TO \(reader)",
            "CREATE ROLE \(relay) LOGIN PASSWORD '\(password)'",
            "GRANT USAGE ON SCHEMA \(s) TO \(relay)",
            "GRANT SELECT ON \(s).events TO \(relay)",
            "GRANT SELECT, UPDATE, DELETE ON \(s).outbox TO \(relay)",
        ]
    }

    static func mysqlGrants(database: String, user: String, password: String) -> [String] {
        [
            "CREATE USER '\(user)'@'127.0.0.1' IDENTIFIED BY '\(password)'",
            "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX ON `\(database)`.* TO '\(user)'@'127.0.0.1'",
        ]
    }

    @Test func rebuildRelayAndLiveWorkWithOnlyTheListedGrants() async throws {
        let environment = try await RebuildEnvironment.make()
        let harness = LiveHarness(environment: environment)
        let suffix = UInt32.random(in: 0...UInt32.max)
        let (reader, relayRole, mysqlUser) = ("reprise_reader_\(suffix)", "reprise_relay_\(suffix)", "reprise_app_\(suffix)")
        let password = "lp_\(suffix)_secret"
        SecretWatch.register(password)
        for statement in Self.postgresGrants(schema: environment.storeSchema.schema, reader: reader, relay: relayRole, password: password) {
            try await environment.postgres.execute(statement)
        }
        for statement in Self.mysqlGrants(database: environment.database, user: mysqlUser, password: password) {
            try await environment.mysql.execute(statement)
        }
        let readerURL = TestServers.withCredentials(TestServers.postgresURL, user: reader, password: password)
        let relayURL = TestServers.withCredentials(TestServers.postgresURL, user: relayRole, password: password)
        let mysqlURL = TestServers.withCredentials(environment.mysqlURL, user: mysqlUser, password: password)
        // The reader cannot write the store, nor the app account another database.
        let readerConnection = try await PostgresConnection.connect(url: readerURL)
        await #expect(throws: PostgresError.self) { try await readerConnection.execute("DELETE FROM \(environment.storeSchema.qualifiedOutbox)") }
        await readerConnection.close()
        let app = try await MySQLConnection.connect(url: mysqlURL)
        await #expect(throws: MySQLError.self) { try await app.execute("CREATE TABLE reprise_test.lp_probe_\(suffix) (id int)") }
        await app.close()
        FaultLedger.record(.security, "restricted accounts refused outside their grants")

        try await environment.seed(events: 300, seed: 170)
        let folder = try streamCountsFolder()
        let rebuilt = try runReprise(
            ["rebuild", "stream_counts", "--projections-dir", folder, "--store-schema", environment.storeSchema.schema, "--quiet"],
            environment: ["REPRISE_POSTGRES_URL": readerURL, "REPRISE_MYSQL_URL": mysqlURL])
        #expect(rebuilt.status == 0, "\(rebuilt.standardError)")

        var relayConfiguration = harness.relayConfiguration()
        relayConfiguration.postgresURL = relayURL
        var workerConfiguration = harness.worker(.file(try streamCounts())).configuration
        workerConfiguration.postgresURL = readerURL
        workerConfiguration.mysqlURL = mysqlURL
        let stop = StopSignal()
        let relay = Task { try await OutboxRelay(relayConfiguration).run(stop: stop) }
        let worker = Task { try await LiveWorker(workerConfiguration, projections: [.file(try streamCounts())]).run(stop: stop) }
        try await environment.seed(events: 300, seed: 171)
        try await waitUntil("the restricted worker to apply new events") {
            try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment))
        }
        stop.stop()
        try await relay.value
        try await worker.value
        FaultLedger.record(.security, "rebuild, relay and live with least-privilege accounts")

        try await environment.mysql.execute("DROP USER '\(mysqlUser)'@'127.0.0.1'")
        await harness.cleanUp()
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
        for role in [reader, relayRole] { _ = try? await environment.postgres.execute("DROP ROLE \(role)") }
    }
}
}

@Suite("Security: endpoints and process titles")
struct EndpointSecurityTests {
    /// One HTTP/1.1 exchange with the status endpoint (the server closes the connection after it).
    static func request(_ method: String, _ path: String, port: UInt16) throws -> String {
        try httpRequest(port: port, "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    }

    @Test func theStatusEndpointsAreReadOnlyAndLocalByDefault() async throws {
        let prometheus = PrometheusCollectorRegistry()
        let metrics = MetricsRegistry(factory: PrometheusMetricsFactory(registry: prometheus))
        metrics.add("reprise_test_total", 1, help: "a counter")
        try await withStatusEndpoint(StatusEndpoint(port: 0, prometheus: prometheus, metrics: metrics)) { port in
            for method in ["POST", "PUT", "DELETE", "PATCH"] {
                for path in ["/metrics", "/health", "/", "/status"] {
                    let answer = try Self.request(method, path, port: port)
                    #expect(answer.contains(" 405 "), "\(method) \(path)")
                }
            }
            let unknown = try Self.request("GET", "/admin", port: port)
            let page = try Self.request("GET", "/metrics", port: port)
            #expect(unknown.contains(" 404 "))
            #expect(page.contains("reprise_test_total 1"))
        }
        // Nothing above changed a value.
        #expect(metrics.value("reprise_test_total") == 1)
        #expect(prometheus.emitToString().contains("reprise_test_total 1"))
        FaultLedger.record(.security, "status endpoints refuse every method but GET")

        for command in ["live", "relay"] {
            let help = try runReprise([command, "--help"])
            let flat = help.standardOutput.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(flat.contains("--metrics-host <metrics-host> Address the HTTP endpoint binds to. (default: 127.0.0.1)"), "\(command) --help: \(flat)")
        }
        FaultLedger.record(.security, "status endpoints bind 127.0.0.1 by default")
    }
}
