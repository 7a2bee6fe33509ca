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
        try #require(process.isStopped, "the rebuild ended before reaching the pause point")
    }

    @Test(arguments: ["stop-before-commit:3", "stop-after-commit:3"])
    func aRebuildOutlivesAMariaDBRestart(fault: String) async throws {
        let port = fault.hasPrefix("stop-before") ? 53_407 : 53_408
        let mariadb = try PrivateMariaDB.start(port: port)
        defer { mariadb.remove() }
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 140)
            let folder = try streamCountsFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let process = try BackgroundProcess(
                Self.rebuildArguments(environment, folder: folder),
                environment: ["REPRISE_POSTGRES_URL": TestServers.postgresURL, "REPRISE_MYSQL_URL": mariadb.url, "REPRISE_FAULT": fault])
            try await Self.waitForPause(process)
            try mariadb.restart()
            FaultLedger.record(.injected, "mariadb restart during rebuild (\(fault))")
            process.signal(SIGCONT)
            let outcome = try await process.finish()
            try #require(outcome.status == 0, "the rebuild should reconnect and finish: \(outcome.standardError)")

            let readModel = try await MySQLConnection.connect(url: mariadb.url)
            let rows = try await RebuildEnvironment.rows("stream_counts", on: readModel)
            let applied = try await readModel.query("SELECT events_applied FROM reprise_builds WHERE state = 'active'").int64(0, 0)
            await readModel.close()
            try #require(rows == (try await expectedStreamCounts(environment)))
            try #require(applied == (try await environment.handledEventCount(try streamCounts())), "each handled event applied once")
            FaultLedger.record(.recovered, "mariadb restart during rebuild (\(fault))")
        }
    }

    @Test func aTerminatedBackendStopsTheRebuildCleanlyAndARerunCompletesIt() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 141)
            let folder = try streamCountsFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let application = TestServers.uniqueName("fault")
            // The password travels on the command line here, to check the process title hides it.
            let url = TestServers.postgresURL + "?application_name=\(application)"
            let process = try BackgroundProcess(
                Self.rebuildArguments(environment, folder: folder) + ["--postgres-url", url],
                environment: ["REPRISE_MYSQL_URL": environment.mysqlURL, "REPRISE_FAULT": "stop-after-commit:2"])
            try await Self.waitForPause(process)
            // Read while the process lives (paused): after it is reaped /proc has nothing to show.
            let title = process.commandLine
            try #require(process.process.isRunning && title.contains("--postgres-url"), "the title of the running process: \(title)")
            try #require(!title.contains("reprise_local_pw"), "the process title shows the password")
            FaultLedger.record(.security, "password hidden from the process title")

            let terminated = try await environment.postgres.query(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1) t", [.text(application)])
            let terminatedCount = terminated.int(0, 0) ?? 0
            try #require(terminatedCount >= 1, "the rebuild's PostgreSQL sessions were terminated")
            FaultLedger.record(.injected, "postgresql backend terminated mid-cursor", count: terminatedCount)
            process.signal(SIGCONT)
            let failed = try await process.finish()
            try #require(failed.status != 0 && failed.signal == nil, "a clean error exit: \(failed.standardError)")
            try #require(failed.standardError.contains("PostgreSQL"), "the error should name the server: \(failed.standardError)")
            // Two chunks were committed with their checkpoint; nothing was swapped in.
            try #require(try await environment.mysql.query("SHOW TABLES LIKE 'stream_counts'").rowCount == 0)
            let survived = try await BuildCheckpoint.only(environment)
            try #require(survived.state == "building" && survived.eventsApplied > 0, "the two committed chunks' checkpoint survived")

            let rerun = try runReprise(
                Self.rebuildArguments(environment, folder: folder).filter { $0 != "--quiet" } + ["--quiet", "--json"],
                environment: environment.processVariables)
            try #require(rerun.status == 0, "\(rerun.standardError)")
            try #require(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            let applied = try await environment.mysql.query("SELECT events_applied FROM reprise_builds WHERE state = 'active'").int64(0, 0)
            let handled = try #require(try await environment.handledEventCount(try streamCounts()))
            try #require(applied == handled, "every handled event applied exactly once across the two runs")
            let summary = try RunSummary(rerun.standardOutput)
            try #require(summary.resumed && summary.eventsApplied == handled - survived.eventsApplied, "resumed, not restarted: \(rerun.standardOutput)")
            FaultLedger.record(.recovered, "postgresql backend terminated mid-cursor", count: terminatedCount)
        }
    }
}

extension BrokerSuites {
@Suite("Faults: the live worker (real servers)")
struct LiveFaultTests {
    @Test func theWorkerWaitsOutAMariaDBRestart() async throws {
        let mariadb = try PrivateMariaDB.start(port: 53_409)
        defer { mariadb.remove() }
        try await RebuildEnvironment.with { environment in
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
                do {
                    let rows = try await RebuildEnvironment.rows("stream_counts", on: connection)
                    await connection.close()
                    return rows
                } catch {
                    await connection.close()
                    throw error
                }
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
        }
    }

    @Test func aWorkerKilledBetweenCommitAndAckLosesAndDoublesNothing() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            try await environment.seed(events: 200, seed: 160)
            _ = try await environment.engine().rebuild([.file(try streamCounts())])
            let folder = try streamCountsFolder()
            defer { try? FileManager.default.removeItem(atPath: folder) }
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
            try #require(killed.killedBySIGKILL, "the fault should have killed the worker with SIGKILL: \(killed.standardError)")
            FaultLedger.record(.injected, "live worker killed between MySQL commit and ack")

            let successor = try BackgroundProcess(arguments, environment: variables)
            try await environment.seed(events: 100, seed: 300)
            try await waitUntil("the successor to catch up") {
                try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment))
            }
            successor.signal(SIGTERM)
            let ended = try await successor.finish()
            try #require(ended.status == 0, "\(ended.standardError)")
            FaultLedger.record(.recovered, "live worker killed between MySQL commit and ack")
            stop.stop()
            try await relay.value
            await harness.cleanUp()
        }
    }
}
}
