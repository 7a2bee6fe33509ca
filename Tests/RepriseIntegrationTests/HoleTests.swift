import Foundation
import Synchronization
import RepriseEngine
import RepriseEventStore
import RepriseLive
import RepriseProjection
import ReprisePostgres
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Where a test holds a worker between two steps.
actor TestGate {
    private var paused = false
    private var waiter: CheckedContinuation<Void, Never>?

    /// Called by the worker: parks until `open`.
    func park() async {
        paused = true
        await withCheckedContinuation { waiter = $0 }
    }

    var isParked: Bool { paused }

    func open() {
        waiter?.resume()
        waiter = nil
    }
}

/// The holes left open by the partitioned relay, rebuild and live workers, each closed.
extension BrokerSuites {
@Suite("Holes: relay shares, fenced rebuild workers, live fair share (real servers)", .serialized)
struct HoleTests {
    /// (a) A relay started with another --shares than the running relay of the same outbox refuses,
    /// naming the running relay's shares; one with the same number joins.
    @Test func aRelayWithOtherSharesThanTheRunningOneRefuses() async throws {
        let postgres = try await TestServers.postgres()
        let schema = try EventStoreSchema(schema: TestServers.uniqueName("sh"))
        try await EventStore(schema: schema).initialize(on: postgres)
        let base = ["relay", "--store-schema", schema.schema, "--exchange", TestServers.uniqueName("reprise.test.shares"), "--poll-seconds", "0.2",
                    "--metrics-port", "0", "--postgres-url", TestServers.postgresURL, "--amqp-url", TestServers.amqpURL]
        let first = try BackgroundProcess(base + ["--shares", "2"])
        try await waitUntil("the first relay to hold its shares") {
            try await postgres.query("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", [.text("reprise relay % \(schema.schema).outbox 0,1/2")]).int64(0, 0) == 1
        }
        let second = try BackgroundProcess(base + ["--shares", "3"])
        // Before the fix it ran on, publishing share 0 of 3 beside share 0 of 2: it never exited.
        let refused: ProcessOutcome
        do {
            refused = try await second.finish(limit: .seconds(30))
        } catch {
            for process in [first, second] { process.signal(SIGKILL) }
            throw error
        }
        #expect(refused.status != 0)
        #expect(refused.standardError.contains("split into 2 shares (holding shares 0,1)"), "\(refused.standardError)")
        #expect(refused.standardError.contains("--shares 2"), "\(refused.standardError)")

        let same = try BackgroundProcess(base + ["--shares", "2"])
        try await waitUntil("a relay with the same shares to stand by beside it") {
            try await postgres.query("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", [.text("reprise relay % \(schema.schema).outbox %/2")]).int64(0, 0) == 2
        }
        for process in [first, same] { process.signal(SIGTERM) }
        for process in [first, same] { #expect(try await process.finish().status == 0) }
        _ = try? await postgres.execute("DROP SCHEMA \(schema.schema) CASCADE")
        await postgres.close()
    }

    /// (b) A rebuild worker whose partition was taken over cannot commit another chunk, and the
    /// new owner finishes the build undisturbed.
    @Test func aFencedRebuildWorkerCannotCommitAfterTakeoverAndTheNewOwnerFinishes() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 800, seed: 1717)
        let folder = try PartitionedRebuildTests.folder()
        let definition = try ProjectionFileParser.load(path: folder + "/order_summary.yml")
        let gate = TestGate()
        var hooks = RebuildHooks()
        let firstChunk = Mutex(true)
        hooks.afterChunkCommit = { _ in
            // The old owner stops between two chunks (a long GC pause, a frozen VM).
            if firstChunk.withLock({ first in defer { first = false }; return first }) { await gate.park() }
        }
        let options: @Sendable (inout RebuildOptions) -> Void = { $0.chunkSize = 50; $0.fetchSize = 100_000 }
        let old = Task { try await environment.engine(options).rebuildPartitioned([.file(definition)], partitions: 1, worker: "old", hooks: hooks) }
        try await waitUntil("the old owner to pause after its first chunk") { await gate.isParked }

        // Its partition lock's session ends (lease expiry, a lost connection): the partition is free.
        let buildID = try await environment.mysql.query("SELECT build_id FROM reprise_builds WHERE projection = 'order_summary' AND state = 'building'").int64(0, 0) ?? 0
        let key = PostgresAdvisoryLockKey("reprise.rebuild.\(environment.database).order_summary.\(buildID).partition-0")
        #expect(try await environment.postgres.terminateAdvisoryLockHolders(key) == 1)
        // The new owner claims the partition, then waits to read events until the old owner tried to commit.
        let blocker = try await TestServers.postgres()
        try await blocker.execute("BEGIN")
        try await blocker.execute("LOCK TABLE \(environment.storeSchema.qualifiedEvents) IN ACCESS EXCLUSIVE MODE")
        let new = Task { try await environment.engine(options).rebuildPartitioned([.file(definition)], partitions: 1, worker: "new") }
        try await waitUntil("the new owner to claim the partition") {
            try await environment.mysql.query("SELECT owner FROM reprise_build_partitions WHERE build_id = ?", [.int(buildID)]).string(0, 0) == "new"
        }
        await gate.open()
        // The old owner's next chunk (its events are in memory) is refused, not committed.
        let oldOutcome = await old.result
        guard case .failure(let error) = oldOutcome else {
            Issue.record("the fenced owner went on committing")
            try await blocker.execute("ROLLBACK")
            _ = try? await new.value
            return
        }
        #expect("\(error)".contains("taken over"), "\(error)")
        try await blocker.execute("ROLLBACK")
        await blocker.close()
        let results = try await new.value
        #expect(results.first?.swapped == true)
        #expect(try await environment.rows("order_summary") == (try await PartitionedRebuildTests.reference(environment, folder: folder))["order_summary"])
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    /// (c) Four live partitions, three consumers: 2, 1 and 1 (not 2, 2 and 0 with one idle member).
    @Test func fourPartitionsAmongThreeConsumersLeaveNobodyIdle() async throws {
        let world = try await PartitionedLiveTests.World.make(events: 300, seed: 1718)
        let consumers = try ["w1", "w2", "w3"].map { try world.consumer($0, partitions: 4) }
        // Before the fix the shares stayed 2, 2, 0: this never held.
        do {
            try await waitUntil("every consumer to own a share of the four partitions", limit: .seconds(60)) {
                let partitions = try await PartitionedLiveTests.livePartitions(world.environment)
                guard partitions.count == 8 else { return false }
                let counts = ["w1", "w2", "w3"].map { name in partitions.filter { $0.owner == name && $0.projection == "order_summary" }.count }
                return counts.sorted() == [1, 1, 2]
            }
        } catch {
            for consumer in consumers { consumer.signal(SIGKILL) }
            throw error
        }
        for consumer in consumers { consumer.signal(SIGTERM) }
        for consumer in consumers { #expect(try await consumer.finish().status == 0) }
        try await world.tearDown(partitions: 4)
    }
}
}
