import Foundation
import RepriseEngine
import RepriseLive
import RepriseMySQL
import RepriseProjection
import ReprisePostgres
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Servers lost while Reprise works: the rebuild pauses itself (SIGSTOP) at a chosen chunk, the
/// test restarts MariaDB or terminates the PostgreSQL backend, then lets it continue (SIGCONT).
/// Afterwards the read model equals a clean rebuild's, or the process stopped with a clear error
/// and a rerun completes it.
@Suite("Faults: servers lost during a rebuild (real servers)", .serialized)
struct ServerFaultTests {
    static func rebuildArguments(_ environment: RebuildEnvironment, folder: String) -> [String] {
        ["rebuild", "stream_counts", "--projections-dir", folder, "--store-schema", environment.storeSchema.schema,
         "--chunk-size", "200", "--fetch-size", "100", "--quiet"]
    }

    static func waitForPause(_ process: BackgroundProcess) async throws {
        try await waitUntil("the rebuild to pause itself") { process.isStopped || !process.process.isRunning }
        #expect(process.isStopped, "the rebuild ended before reaching the pause point")
    }

    @Test(arguments: ["stop-before-commit:3", "stop-after-commit:3"])
    func aRebuildOutlivesAMariaDBRestart(fault: String) async throws {
        let port = fault.hasPrefix("stop-before") ? 53_407 : 53_408
        let mariadb = try PrivateMariaDB.start(port: port)
        defer { mariadb.remove() }
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 2_000, seed: 140)
        let folder = try streamCountsFolder()
        let process = try BackgroundProcess(
            Self.rebuildArguments(environment, folder: folder),
            environment: ["REPRISE_POSTGRES_URL": TestServers.postgresURL, "REPRISE_MYSQL_URL": mariadb.url, "REPRISE_FAULT": fault])
        try await Self.waitForPause(process)
        try mariadb.restart()
        FaultLedger.record(.injected, "mariadb restart during rebuild (\(fault))")
        process.signal(SIGCONT)
        let outcome = try await process.finish()
        #expect(outcome.status == 0, "the rebuild should reconnect and finish: \(outcome.standardError)")

        let readModel = try await MySQLConnection.connect(url: mariadb.url)
        let rows = try await RebuildEnvironment.rows("stream_counts", on: readModel)
        #expect(rows == (try await expectedStreamCounts(environment)))
        FaultLedger.record(.recovered, "mariadb restart during rebuild (\(fault))")
        _ = try? await readModel.execute("DROP TABLE IF EXISTS stream_counts")
        _ = try? await readModel.execute("DELETE FROM reprise_builds")
        await readModel.close()
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    @Test func aTerminatedBackendStopsTheRebuildCleanlyAndARerunCompletesIt() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 2_000, seed: 141)
        let folder = try streamCountsFolder()
        let application = TestServers.uniqueName("fault")
        // The password travels on the command line here, to check the process title hides it.
        let url = TestServers.postgresURL + "?application_name=\(application)"
        let process = try BackgroundProcess(
            Self.rebuildArguments(environment, folder: folder) + ["--postgres-url", url],
            environment: ["REPRISE_MYSQL_URL": environment.mysqlURL, "REPRISE_FAULT": "stop-after-commit:2"])
        try await Self.waitForPause(process)
        #expect(process.commandLine.contains("--postgres-url"))
        #expect(!process.commandLine.contains("reprise_local_pw"), "the process title shows the password")
        FaultLedger.record(.security, "password hidden from the process title")

        let terminated = try await environment.postgres.query(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) t", [.text(application)])
        #expect((terminated.int(0, 0) ?? 0) >= 1)
        FaultLedger.record(.injected, "postgresql backend terminated mid-cursor")
        process.signal(SIGCONT)
        let failed = try await process.finish()
        #expect(failed.status != 0)
        #expect(failed.standardError.contains("PostgreSQL"), "the error should name the server: \(failed.standardError)")
        // Two chunks were committed with their checkpoint; nothing was swapped in.
        #expect(try await environment.mysql.query("SHOW TABLES LIKE 'stream_counts'").rowCount == 0)

        let rerun = try runReprise(
            Self.rebuildArguments(environment, folder: folder),
            environment: environment.processVariables)
        #expect(rerun.status == 0, "\(rerun.standardError)")
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        let applied = try await environment.mysql.query("SELECT events_applied FROM reprise_builds WHERE state = 'active'").int64(0, 0)
        let handled = try await environment.handledEventCount(try streamCounts())
        #expect(applied == handled, "every handled event applied exactly once across the two runs")
        FaultLedger.record(.recovered, "postgresql backend terminated mid-cursor")
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }
}

extension BrokerSuites {
@Suite("Faults: the live worker (real servers)")
struct LiveFaultTests {
    @Test func theWorkerWaitsOutAMariaDBRestart() async throws {
        let mariadb = try PrivateMariaDB.start(port: 53_409)
        defer { mariadb.remove() }
        let environment = try await RebuildEnvironment.make()
        let harness = LiveHarness(environment: environment)
        try await environment.seed(events: 300, seed: 150)
        _ = try await RebuildEngine(postgresURL: TestServers.postgresURL, mysqlURL: mariadb.url, storeSchema: environment.storeSchema)
            .rebuild([.file(try streamCounts())])
        var configuration = harness.worker(.file(try streamCounts())).configuration
        configuration.mysqlURL = mariadb.url
        let stop = StopSignal()
        let reports = Reports<LiveWorker.Event>()
        let relay = Task { try await OutboxRelay(harness.relayConfiguration()).run(stop: stop) }
        let worker = Task { try await LiveWorker(configuration, projections: [.file(try streamCounts())]).run(stop: stop) { event in Task { await reports.add(event) } } }
        let readModel = { () async throws -> [[String]] in
            let connection = try await MySQLConnection.connect(url: mariadb.url)
            defer { Task { await connection.close() } }
            return try await RebuildEnvironment.rows("stream_counts", on: connection)
        }
        try await environment.seed(events: 300, seed: 151)
        try await waitUntil("the worker to apply the first events") { (try? await readModel()) == (try await expectedStreamCounts(environment)) }

        try mariadb.stop()
        FaultLedger.record(.injected, "mariadb restart during live mode")
        try await environment.seed(events: 300, seed: 152)
        try await waitUntil("the worker to notice") { await reports.events.contains { if case .storeUnavailable = $0 { true } else { false } } }
        try mariadb.startAgain()
        try await environment.seed(events: 300, seed: 153)
        try await waitUntil("the read model to catch up after the restart", limit: .seconds(90)) {
            (try? await readModel()) == (try await expectedStreamCounts(environment))
        }
        FaultLedger.record(.recovered, "mariadb restart during live mode")
        stop.stop()
        try await relay.value
        try await worker.value
        await harness.cleanUp()
        await environment.tearDown()
    }

    @Test func aWorkerKilledBetweenCommitAndAckLosesAndDoublesNothing() async throws {
        let environment = try await RebuildEnvironment.make()
        let harness = LiveHarness(environment: environment)
        try await environment.seed(events: 200, seed: 160)
        _ = try await environment.engine().rebuild([.file(try streamCounts())])
        let folder = try streamCountsFolder()
        let amqp = try await TestServers.amqp()
        try await harness.worker(.file(try streamCounts())).declareTopology(amqp, eventTypes: try streamCounts().eventTypes.sorted())
        await amqp.close()
        let stop = StopSignal()
        let relay = Task { try await OutboxRelay(harness.relayConfiguration()).run(stop: stop) }
        let arguments = ["live", "stream_counts", "--projections-dir", folder, "--store-schema", environment.storeSchema.schema,
                         "--exchange", harness.exchange, "--queue", harness.queue, "--poll-ms", "200", "--chunk-size", "100"]
        let variables = ["REPRISE_POSTGRES_URL": TestServers.postgresURL, "REPRISE_MYSQL_URL": environment.mysqlURL, "REPRISE_AMQP_URL": TestServers.amqpURL]
        var faulty = variables
        faulty["REPRISE_FAULT"] = "kill-before-ack:2"
        let doomed = try BackgroundProcess(arguments, environment: faulty)
        // Traffic until the worker dies after committing its second batch, before acking it.
        var seed: UInt64 = 161
        while doomed.process.isRunning && seed < 200 {
            try await environment.seed(events: 50, seed: seed)
            seed += 1
            try await Task.sleep(for: .milliseconds(100))
        }
        let killed = try await doomed.finish()
        #expect(killed.killedBySignal, "the fault should have killed the worker: \(killed.standardError)")
        FaultLedger.record(.injected, "live worker killed between MySQL commit and ack")

        let successor = try BackgroundProcess(arguments, environment: variables)
        try await environment.seed(events: 100, seed: 300)
        try await waitUntil("the successor to catch up") {
            try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment))
        }
        successor.signal(SIGTERM)
        let ended = try await successor.finish()
        #expect(ended.status == 0, "\(ended.standardError)")
        FaultLedger.record(.recovered, "live worker killed between MySQL commit and ack")
        stop.stop()
        try await relay.value
        await harness.cleanUp()
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }
}
}
