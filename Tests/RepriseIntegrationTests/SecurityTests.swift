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
        try await RebuildEnvironment.with { environment in
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
            defer { try? FileManager.default.removeItem(atPath: folder) }
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
            // Their grants go first (DROP OWNED), or the roles could not be dropped.
            for role in [reader, relayRole] {
                _ = try? await environment.postgres.execute("DROP OWNED BY \(role)")
                _ = try? await environment.postgres.execute("DROP ROLE \(role)")
            }
        }
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

    }

    /// The help says what the default is (documentation; the bind itself is checked on a socket below).
    @Test func theHelpNamesTheLoopbackDefault() throws {
        for command in ["live", "relay"] {
            let help = try runReprise([command, "--help"])
            let flat = help.standardOutput.split(whereSeparator: \.isWhitespace).joined(separator: " ")
            #expect(flat.contains("--metrics-host <metrics-host> Address the HTTP endpoint binds to. (default: 127.0.0.1)"), "\(command) --help: \(flat)")
        }
    }

    /// A running relay's metrics endpoint, as the kernel lists its listening sockets: bound to
    /// 127.0.0.1 only, with no --metrics-host given (the help text is not the check).
    @Test func aRunningRelaysMetricsEndpointListensOnLoopbackOnly() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            let port = try closedPort()
            let relay = try BackgroundProcess(
                ["relay", "--store-schema", environment.storeSchema.schema, "--exchange", harness.exchange, "--metrics-port", String(port)],
                environment: ["REPRISE_POSTGRES_URL": TestServers.postgresURL, "REPRISE_AMQP_URL": TestServers.amqpURL])
            try await waitUntil("the relay's metrics endpoint to listen") { !listeningAddresses(port: port).isEmpty || !relay.process.isRunning }
            let addresses = listeningAddresses(port: port)
            relay.signal(SIGTERM)
            let outcome = try await relay.finish()
            await harness.cleanUp()
            try #require(addresses == ["127.0.0.1"], "listening on \(addresses); relay said: \(outcome.standardError)")
            FaultLedger.record(.security, "status endpoints bind 127.0.0.1 by default")
        }
    }
}

/// The local addresses of the TCP sockets listening on `port`, from /proc/net/tcp and tcp6
/// (IPv4 addresses are little-endian hex; an IPv6 wildcard shows as "::").
func listeningAddresses(port: UInt16) -> [String] {
    var found: [String] = []
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            guard fields.count > 3, fields[3] == "0A" else { continue }  // 0A: LISTEN
            let local = fields[1].split(separator: ":")
            guard local.count == 2, UInt16(local[1], radix: 16) == port else { continue }
            if local[0].count == 8, let value = UInt32(local[0], radix: 16) {
                found.append((0..<4).map { String((value >> (8 * $0)) & 0xFF) }.joined(separator: "."))
            } else {
                found.append(local[0].allSatisfy { $0 == "0" } ? "::" : String(local[0]))
            }
        }
    }
    return found
}
