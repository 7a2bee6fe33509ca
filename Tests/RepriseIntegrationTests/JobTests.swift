import Foundation
import ReprisePostgres
import Testing

@Suite("Jobs (real process, real servers)")
struct JobTests {
    private var urls: [String: String] {
        ["REPRISE_POSTGRES_URL": TestServers.postgresURL, "REPRISE_MYSQL_URL": TestServers.mysqlURL, "REPRISE_AMQP_URL": TestServers.amqpURL]
    }

    @Test(arguments: ["nightly-rebuild", "live-worker", "relay", "migrate-order-summary", "partitioned-rebuild", "sharded-relay", "partitioned-live"])
    func shippedJobsParse(job: String) throws {
        let outcome = try runReprise(["run", "jobs/\(job).yml", "--dry-run"], environment: urls)
        #expect(outcome.status == 0, "\(outcome.standardError)")
        #expect(outcome.standardOutput.hasPrefix("reprise "))
        #expect(!outcome.standardOutput.contains("reprise_local_pw"), "dry run must hide passwords")
    }

    private func jobFolder(_ environment: RebuildEnvironment, extra: String = "") throws -> (folder: String, job: String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.uniqueName("jobs")).path
        try FileManager.default.createDirectory(atPath: folder + "/projections", withIntermediateDirectories: true)
        try streamCountsYAML.write(toFile: folder + "/projections/stream_counts.yml", atomically: true, encoding: .utf8)
        let job = """
            job: test-rebuild-\(environment.database.replacing("_", with: "-"))
            run: rebuild
            projections: [stream_counts]
            settings:
              chunk_size: 100
              projections_dir: \(folder)/projections
              store_schema: \(environment.storeSchema.schema)
            connections:
              postgres: JOB_TEST_POSTGRES
              mysql: JOB_TEST_MYSQL
            \(extra)
            """
        try job.write(toFile: folder + "/rebuild.yml", atomically: true, encoding: .utf8)
        return (folder, folder + "/rebuild.yml")
    }

    @Test func aRebuildJobRunsAndAnOverlappingRunIsRefused() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 300, seed: 50)
            let (folder, job) = try jobFolder(environment)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let variables = ["JOB_TEST_POSTGRES": TestServers.postgresURL, "JOB_TEST_MYSQL": environment.mysqlURL]

            let done = try runReprise(["run", job], environment: variables)
            #expect(done.status == 0, "\(done.standardError)")
            #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))

            // A scheduled run that finds the previous one still running exits with code 6.
            let holder = try await TestServers.postgres()
            #expect(try await holder.tryAdvisoryLock(PostgresAdvisoryLockKey("reprise.job.test-rebuild-\(environment.database.replacing("_", with: "-"))")))
            let refused = try runReprise(["run", job], environment: variables)
            #expect(refused.status == 6)
            #expect(refused.standardError.contains("still running"))
            await holder.close()
        }
    }

    @Test func aJobFileWithAURLInsteadOfAVariableNameIsRefused() async throws {
        try await withTemporaryFolder("jobs") { folder in
            try """
                job: leaky
                run: rebuild
                projections: all
                connections:
                  postgres: postgresql://reprise:secret-in-file@127.0.0.1:55432/reprise
                """.write(toFile: folder + "/leaky.yml", atomically: true, encoding: .utf8)
            let outcome = try runReprise(["run", folder + "/leaky.yml"])
            #expect(outcome.status == 64 || outcome.status == 2 || outcome.status == 1)
            #expect(outcome.standardError.contains("never a URL or password"))
        }
    }

    @Test(arguments: [false, true])
    func aSettingTheCommandRefusesIsABadUsageNamingIt(dryRun: Bool) async throws {
        try await withTemporaryFolder("jobs") { folder in
            try """
                job: wordy
                run: live
                projections: [order_summary]
                settings:
                  partitions: many
                connections:
                  postgres: REPRISE_POSTGRES_URL
                  mysql: REPRISE_MYSQL_URL
                  amqp: REPRISE_AMQP_URL
                """.write(toFile: folder + "/wordy.yml", atomically: true, encoding: .utf8)
            let outcome = try runReprise(["run", folder + "/wordy.yml"] + (dryRun ? ["--dry-run"] : []), environment: urls)
            #expect(outcome.status == 64, "\(outcome.standardError)")
            #expect(outcome.standardError.contains("The value 'many' is invalid for '--partitions"), "\(outcome.standardError)")
            #expect(!outcome.standardError.contains("job.started"), "refused before it starts")
            FaultLedger.record(.badInput, "job setting the command refuses")
        }
    }
}
