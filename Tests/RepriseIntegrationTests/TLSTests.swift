import Foundation
import RepriseAMQP
import RepriseMySQL
import ReprisePostgres
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// TLS to the three servers, set through the URLs, with the private CA `scripts/services` made
/// (the servers present a certificate for 127.0.0.1 signed by it) and a second CA the test makes,
/// which must be refused.
enum TLSFixture {
    static var trustedCA: String {
        ProcessInfo.processInfo.environment["REPRISE_TEST_TLS_CA"] ?? RebuildEnvironment.repositoryRoot() + "/.reprise-local/tls/ca.pem"
    }

    static var amqpsPort: String { ProcessInfo.processInfo.environment["REPRISE_TEST_AMQPS_PORT"] ?? "55671" }

    /// A CA that signed nothing the servers present.
    static func untrustedCA() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.uniqueName("other-ca")).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let made = try runProcess("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=Untrusted test CA",
            "-keyout", folder + "/ca.key", "-out", folder + "/ca.pem",
        ])
        guard made.status == 0 else { throw TestSetupError("openssl failed: \(made.standardError)") }
        return folder + "/ca.pem"
    }

    static func postgresURL(ca: String) -> String { TestServers.postgresURL + "?sslmode=verify-full&sslrootcert=\(ca)" }
    static func mysqlURL(_ base: String = TestServers.mysqlURL, ca: String) -> String { base + "?ssl-mode=verify-identity&ssl-ca=\(ca)" }
    /// By name: rabbitmq-c checks the certificate's DNS names, not IP addresses.
    static func amqpURL(ca: String) -> String {
        TestServers.amqpURL.replacingOccurrences(of: "amqp://", with: "amqps://")
            .replacingOccurrences(of: "@127.0.0.1:55672/", with: "@localhost:\(amqpsPort)/") + "?cacert=\(ca)"
    }
}

@Suite("Security: TLS (real servers)")
struct TLSTests {
    @Test func postgresqlVerifyFullConnectsAndRefusesAnUntrustedCA() async throws {
        let db = try await PostgresConnection.connect(url: TLSFixture.postgresURL(ca: TLSFixture.trustedCA))
        #expect(try await db.query("SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()").string(0, 0) == "true")
        await db.close()
        let other = try TLSFixture.untrustedCA()
        let error = await #expect(throws: PostgresError.self) { try await PostgresConnection.connect(url: TLSFixture.postgresURL(ca: other)) }
        #expect(error?.description.contains("certificate verify failed") == true, "\(String(describing: error))")
        #expect(error?.description.contains("reprise_local_pw") == false)
        FaultLedger.record(.security, "TLS to PostgreSQL (verify-full; an untrusted CA refused)")
    }

    @Test func mysqlVerifyIdentityConnectsAndRefusesAnUntrustedCA() async throws {
        let db = try await MySQLConnection.connect(url: TLSFixture.mysqlURL(ca: TLSFixture.trustedCA))
        let cipher = try await db.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'").string(0, 1) ?? ""
        #expect(!cipher.isEmpty, "the session is not encrypted")
        await db.close()
        let other = try TLSFixture.untrustedCA()
        let error = await #expect(throws: MySQLError.self) { try await MySQLConnection.connect(url: TLSFixture.mysqlURL(ca: other)) }
        #expect(error?.code == .connectionFailed)
        #expect(error?.description.lowercased().contains("certificate") == true || error?.description.contains("TLS") == true, "\(String(describing: error))")
        #expect(error?.description.contains("reprise_local_pw") == false)
        FaultLedger.record(.security, "TLS to MariaDB (verify-identity; an untrusted CA refused)")
    }

    @Test func aRebuildRunsOverTLSToBothDatabases() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 300, seed: 180)
            let folder = try streamCountsFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let outcome = try runReprise(
                ["rebuild", "stream_counts", "--projections-dir", folder, "--store-schema", environment.storeSchema.schema, "--quiet"],
                environment: ["REPRISE_POSTGRES_URL": TLSFixture.postgresURL(ca: TLSFixture.trustedCA),
                              "REPRISE_MYSQL_URL": TLSFixture.mysqlURL(environment.mysqlURL, ca: TLSFixture.trustedCA)])
            #expect(outcome.status == 0, "\(outcome.standardError)")
            #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            FaultLedger.record(.security, "rebuild over TLS to PostgreSQL and MariaDB")
        }
    }
}

/// The `reprise` binary, not only the wrappers: the TLS settings of its URLs reach the C libraries.
@Suite("Security: TLS through the CLI (real servers)")
struct CLITLSTests {
    private static func rebuild(_ environment: RebuildEnvironment, folder: String) -> [String] {
        ["rebuild", "stream_counts", "--projections-dir", folder, "--store-schema", environment.storeSchema.schema,
         "--chunk-size", "100", "--fetch-size", "100", "--quiet"]
    }

    /// An untrusted CA: exit code 3 (a server that cannot be reached safely) naming the reason.
    @Test func theCLIRefusesAnUntrustedCAWithExitCodeThree() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 100, seed: 181)
            let folder = try streamCountsFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let other = try TLSFixture.untrustedCA()
            let postgres = try runReprise(Self.rebuild(environment, folder: folder), environment: [
                "REPRISE_POSTGRES_URL": TLSFixture.postgresURL(ca: other), "REPRISE_MYSQL_URL": environment.mysqlURL,
            ])
            try #require(postgres.status == 3 && postgres.signal == nil, "PostgreSQL, untrusted CA: \(postgres.status) \(postgres.standardError)")
            try #require(postgres.standardError.contains("certificate verify failed"), "\(postgres.standardError)")
            let mysql = try runReprise(Self.rebuild(environment, folder: folder), environment: [
                "REPRISE_POSTGRES_URL": TestServers.postgresURL, "REPRISE_MYSQL_URL": TLSFixture.mysqlURL(environment.mysqlURL, ca: other),
            ])
            try #require(mysql.status == 3 && mysql.signal == nil, "MariaDB, untrusted CA: \(mysql.status) \(mysql.standardError)")
            // libmariadb names the failed verification its own way ("self-signed certificate in certificate chain").
            try #require(mysql.standardError.contains("TLS/SSL error") && mysql.standardError.contains("certificate"), "\(mysql.standardError)")
            try #require(try await environment.mysql.query("SHOW TABLES LIKE 'stream_counts'").rowCount == 0)
            FaultLedger.record(.security, "CLI refuses an untrusted CA (exit 3, the failed verification named)")
        }
    }

    /// The right CA: the running rebuild's PostgreSQL sessions show SSL in pg_stat_ssl, and its
    /// MariaDB account is one the server admits only over TLS (REQUIRE SSL).
    @Test func theCLIsSessionsAreEncrypted() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 1_000, seed: 182)
            let folder = try streamCountsFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let user = "reprise_tls_\(UInt32.random(in: 0...UInt32.max))", password = "tls_\(UInt32.random(in: 0...UInt32.max))_secret"
            SecretWatch.register(password)
            try await environment.mysql.execute("CREATE USER '\(user)'@'127.0.0.1' IDENTIFIED BY '\(password)' REQUIRE SSL")
            do {
                try await environment.mysql.execute(
                    "GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX ON `\(environment.database)`.* TO '\(user)'@'127.0.0.1'")
                let tlsOnlyURL = TestServers.withCredentials(environment.mysqlURL, user: user, password: password)
                // Without TLS the account is refused: the check below is not vacuous.
                await #expect(throws: MySQLError.self) { try await MySQLConnection.connect(url: tlsOnlyURL + "?ssl-mode=disabled") }

                let application = TestServers.uniqueName("tls")
                let process = try BackgroundProcess(Self.rebuild(environment, folder: folder), environment: [
                    "REPRISE_POSTGRES_URL": TLSFixture.postgresURL(ca: TLSFixture.trustedCA) + "&application_name=\(application)",
                    "REPRISE_MYSQL_URL": TLSFixture.mysqlURL(tlsOnlyURL, ca: TLSFixture.trustedCA),
                    "REPRISE_FAULT": "stop-after-commit:1",
                ])
                try await ServerFaultTests.waitForPause(process)
                let sessions = try await environment.postgres.query(
                    "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
                    [.text(application)])
                let (total, encrypted) = (sessions.int(0, 0) ?? 0, sessions.int(0, 1) ?? 0)
                process.signal(SIGCONT)
                let outcome = try await process.finish()
                try #require(total >= 1 && encrypted == total, "PostgreSQL sessions of the CLI: \(total), with SSL: \(encrypted)")
                try #require(outcome.status == 0, "\(outcome.standardError)")
                try #require(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
                FaultLedger.record(.security, "CLI sessions encrypted (pg_stat_ssl; a REQUIRE SSL MariaDB account)")
            } catch {
                _ = try? await environment.mysql.execute("DROP USER '\(user)'@'127.0.0.1'")
                throw error
            }
            try await environment.mysql.execute("DROP USER '\(user)'@'127.0.0.1'")
        }
    }
}

extension BrokerSuites {
@Suite("Security: TLS to RabbitMQ (real server)")
struct AMQPSTests {
    @Test func amqpsPublishesAndConsumesAndRefusesAnUntrustedCA() async throws {
        let connection = try await AMQPConnection.connect(url: TLSFixture.amqpURL(ca: TLSFixture.trustedCA))
        let queue = TestServers.uniqueName("reprise.test.tls")
        try await connection.declareQueue(queue)
        let outcome = try await connection.publishConfirmed([AMQPOutgoingMessage(exchange: "", routingKey: queue, body: Array(#"{"tls":true}"#.utf8))])
        #expect(outcome.confirmed == 1)
        let delivery = try await connection.get(queue: queue)
        #expect(delivery.map { String(decoding: $0.body, as: UTF8.self) } == #"{"tls":true}"#)
        try await connection.deleteQueue(queue)
        await connection.close()

        let other = try TLSFixture.untrustedCA()
        let error = await #expect(throws: AMQPError.self) { try await AMQPConnection.connect(url: TLSFixture.amqpURL(ca: other)) }
        #expect(error?.code == .connectionFailed, "\(String(describing: error))")
        #expect(error?.description.contains("reprise_local_pw") == false)
        FaultLedger.record(.security, "TLS to RabbitMQ (amqps; an untrusted CA refused)")
    }

    /// `reprise relay` given an amqps URL publishes through RabbitMQ's TLS-only listener: a CLI
    /// that dropped the TLS settings could not talk to that port at all.
    @Test func theRelayPublishesOverAMQPS() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            try await harness.declareCatchAllQueue()
            try await environment.seed(events: 50, seed: 183)
            let rows = try #require(try await environment.unpublishedCount())
            let relay = try BackgroundProcess(
                ["relay", "--store-schema", environment.storeSchema.schema, "--exchange", harness.exchange, "--metrics-port", "0"],
                environment: ["REPRISE_POSTGRES_URL": TestServers.postgresURL, "REPRISE_AMQP_URL": TLSFixture.amqpURL(ca: TLSFixture.trustedCA)])
            try await waitUntil("the outbox to drain over amqps") { try await environment.unpublishedCount() == 0 || !relay.process.isRunning }
            try await waitUntil("the messages to reach the queue") { try await queueMessageCount(harness.queue) == rows || !relay.process.isRunning }
            relay.signal(SIGTERM)
            let outcome = try await relay.finish()
            await harness.cleanUp()
            try #require(outcome.status == 0, "\(outcome.standardError)")
            try #require(try await environment.unpublishedCount() == 0)
            FaultLedger.record(.security, "relay publishes over amqps (TLS-only listener)")
        }
    }
}
}
