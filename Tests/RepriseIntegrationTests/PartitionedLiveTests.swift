import Foundation
import RepriseAMQP
import RepriseEngine
import RepriseEventSource
import RepriseEventStore
import RepriseLive
import RepriseMySQL
import RepriseProjection
import ReprisePostgres
import Testing

#if canImport(Glibc)
import Glibc
#endif

extension BrokerSuites {
/// Partitioned live consumers: `reprise live --partitions N` processes sharing the live work.
@Suite("Partitions: live consumers sharing the work (real servers)")
struct PartitionedLiveTests {
    static let projections = PartitionedRebuildTests.projections

    static func definitions(_ folder: String) throws -> [ProjectionDefinition] {
        try projections.map { try ProjectionFileParser.load(path: folder + "/\($0).yml") }
    }

    /// The live partitions of the active builds: projection, partition, owner, events applied.
    static func livePartitions(_ environment: RebuildEnvironment) async throws -> [(projection: String, number: Int, owner: String, events: Int64)] {
        let result = try await environment.mysql.query(
            """
            SELECT b.projection, p.partition_no, COALESCE(p.owner, ''), p.events_applied FROM reprise_live_partitions p
            JOIN reprise_builds b USING (build_id) WHERE b.state = 'active' ORDER BY b.projection, p.partition_no
            """)
        return (0..<result.rowCount).map { (result.string($0, 0) ?? "", result.int($0, 1) ?? 0, result.string($0, 2) ?? "", result.int64($0, 3) ?? 0) }
    }

    /// A world with the two keyed samples rebuilt over a seeded history, and a relay running.
    struct World {
        let environment: RebuildEnvironment
        let harness: LiveHarness
        let folder: String
        let definitions: [ProjectionDefinition]
        let rebuilt: [RebuildResult]
        let stop: StopSignal
        let relay: Task<Void, any Error>

        var runnables: [RunnableProjection] { definitions.map { .file($0) } }

        static func make(events: Int, seed: UInt64) async throws -> World {
            let environment = try await RebuildEnvironment.make()
            let harness = LiveHarness(environment: environment)
            let folder: String, definitions: [ProjectionDefinition], rebuilt: [RebuildResult]
            do {
                folder = try PartitionedRebuildTests.folder()
                definitions = try PartitionedLiveTests.definitions(folder)
                try await environment.seed(events: events, seed: seed)
                rebuilt = try await environment.engine().rebuild(definitions.map { .file($0) })
            } catch {
                await environment.tearDown()
                throw error
            }
            let stop = StopSignal()
            let relay = Task { [harness] in try await OutboxRelay(harness.relayConfiguration()).run(stop: stop) }
            return World(environment: environment, harness: harness, folder: folder, definitions: definitions, rebuilt: rebuilt, stopSignal: stop, relay: relay)
        }

        private init(environment: RebuildEnvironment, harness: LiveHarness, folder: String, definitions: [ProjectionDefinition],
                     rebuilt: [RebuildResult], stopSignal: StopSignal, relay: Task<Void, any Error>) {
            self.environment = environment
            self.harness = harness
            self.folder = folder
            self.definitions = definitions
            self.rebuilt = rebuilt
            self.stop = stopSignal
            self.relay = relay
        }

        /// A `reprise live --partitions N` process of this world.
        func consumer(_ name: String, partitions: Int, fault: String? = nil, extra: [String] = []) throws -> BackgroundProcess {
            var variables = ["REPRISE_POSTGRES_URL": TestServers.postgresURL, "REPRISE_MYSQL_URL": environment.mysqlURL, "REPRISE_AMQP_URL": TestServers.amqpURL]
            if let fault { variables["REPRISE_FAULT"] = fault }
            return try BackgroundProcess(
                ["live"] + PartitionedLiveTests.projections + ["--partitions", String(partitions), "--worker", name, "--projections-dir", folder,
                 "--store-schema", environment.storeSchema.schema, "--exchange", harness.exchange, "--queue", harness.queue,
                 "--poll-ms", "300", "--chunk-size", "50", "--metrics-port", "0"] + extra,
                environment: variables)
        }

        /// A world for `body`, removed afterwards (relay stopped, queues, folder, schema and
        /// database dropped), also when `body` throws.
        static func with(events: Int, seed: UInt64, partitions: Int, _ body: (World) async throws -> Void) async throws {
            let world = try await make(events: events, seed: seed)
            do {
                try await body(world)
            } catch {
                world.stop.stop()
                _ = try? await world.relay.value
                await world.harness.cleanUp(partitions: partitions)
                try? FileManager.default.removeItem(atPath: world.folder)
                await world.environment.tearDown()
                throw error
            }
            try await world.tearDown(partitions: partitions)
        }

        /// Stops the relay (and whatever else runs on `stop`) and removes everything.
        func tearDown(partitions: Int) async throws {
            stop.stop()
            try await relay.value
            await harness.cleanUp(partitions: partitions)
            try? FileManager.default.removeItem(atPath: folder)
            await environment.tearDown()
        }
    }


    static func handledCounts(_ environment: RebuildEnvironment, _ definitions: [ProjectionDefinition]) async throws -> [String: Int64] {
        var counts: [String: Int64] = [:]
        for definition in definitions { counts[definition.name] = try await environment.handledEventCount(definition) ?? 0 }
        return counts
    }

    @Test func threeConsumersWithOneKilledKeepPerKeyOrderAndLoseNothing() async throws {
        try await World.with(events: 1_000, seed: 310, partitions: 3) { world in
            let (environment, folder, definitions) = (world.environment, world.folder, world.definitions)
            let handledAtSplit = try await Self.handledCounts(environment, definitions)
            // w1 dies after committing its fourth batch, before acknowledging it.
            let doomed = try world.consumer("w1", partitions: 3, fault: "kill-before-ack:4")
            let survivors = try [world.consumer("w2", partitions: 3), world.consumer("w3", partitions: 3)]
            try await waitUntil("three consumers to own one partition each") {
                let partitions = try await Self.livePartitions(environment)
                return partitions.count == 6 && Set(partitions.map(\.owner)) == ["w1", "w2", "w3"]
                    && Self.projections.allSatisfy { name in Set(partitions.filter { $0.projection == name }.map(\.owner)).count == 3 }
            }

            var seed: UInt64 = 311
            while doomed.process.isRunning && seed < 400 {
                try await environment.seed(events: 60, seed: seed)
                seed += 1
                try await Task.sleep(for: .milliseconds(100))
            }
            let killed = try await doomed.finish()
            try #require(killed.killedBySIGKILL, "the fault should have killed w1 with SIGKILL: \(killed.standardError)")
            FaultLedger.record(.injected, "partitioned live consumer killed between MySQL commit and ack")
            try await environment.seed(events: 600, seed: 450)

            let reference = try await PartitionedRebuildTests.reference(environment, folder: folder)
            try await waitUntil("the survivors to take w1's partition over and catch up", limit: .seconds(90)) {
                let owners = Set(try await Self.livePartitions(environment).map(\.owner))
                let tables = try await PartitionedRebuildTests.tables(environment)
                return owners == ["w2", "w3"] && tables == reference
            }
            // Nothing lost, nothing applied twice: over the partitions, each event handled since the
            // split counts once.
            let handledNow = try await Self.handledCounts(environment, definitions)
            let partitions = try await Self.livePartitions(environment)
            for definition in definitions {
                let applied = partitions.filter { $0.projection == definition.name }.reduce(Int64(0)) { $0 + $1.events }
                try #require(applied == (handledNow[definition.name] ?? 0) - (handledAtSplit[definition.name] ?? 0), "\(definition.name): events applied by the partitions")
            }
            for process in survivors { process.signal(SIGTERM) }
            for process in survivors {
                let outcome = try await process.finish()
                try #require(outcome.status == 0, "\(outcome.standardError)")
            }
            FaultLedger.record(.recovered, "partitioned live consumer killed between MySQL commit and ack")

            // With the consumers gone, an unpartitioned worker merges the partitions into one checkpoint.
            try await environment.seed(events: 200, seed: 460)
            let runner = try await LiveProjectionRunner.open(
                projections: definitions.map { .file($0) }, postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL,
                source: .reprise(environment.storeSchema))
            _ = try await runner.catchUp()
            await runner.close()
            #expect(try await Self.livePartitions(environment).isEmpty)
            #expect(try await PartitionedRebuildTests.tables(environment) == (try await PartitionedRebuildTests.reference(environment, folder: folder)))
            let merged = try await environment.mysql.query("SELECT projection, events_applied FROM reprise_builds WHERE state = 'active'")
            let total = try await Self.handledCounts(environment, definitions)
            for row in 0..<merged.rowCount {
                #expect(merged.int64(row, 1) == total[merged.string(row, 0) ?? ""], "the merged build counts every handled event once")
            }

        }
    }

    @Test func aSwapMovesConsumersToTheNewBuildAndARollbackMergesTheRetiredOne() async throws {
        try await World.with(events: 800, seed: 320, partitions: 2) { world in
            let (environment, harness, folder, definitions, runnables, stop) = (world.environment, world.harness, world.folder, world.definitions, world.runnables, world.stop)
            let first = world.rebuilt
            let reports = Reports<PartitionedLiveWorker.Event>()
            let consumers = ["a", "b"].map { owner in
                Task {
                    try await PartitionedLiveWorker(harness.configuration(), partitions: 2, owner: owner, projections: runnables)
                        .run(stop: stop) { event in Task { await reports.add(event) } }
                }
            }
            try await environment.seed(events: 400, seed: 321)
            var reference = try await PartitionedRebuildTests.reference(environment, folder: folder)
            try await waitUntil("two consumers to split the work and catch up") {
                let owners = Set(try await Self.livePartitions(environment).map(\.owner))
                let tables = try await PartitionedRebuildTests.tables(environment)
                return owners == ["a", "b"] && tables == reference
            }

            // While they own the partitions, an unpartitioned worker is refused rather than applying twice.
            let intruder = try await LiveProjectionRunner.open(
                projections: runnables, postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL, source: .reprise(environment.storeSchema))
            await #expect(throws: EngineError.self) { _ = try await intruder.catchUp() }
            await intruder.close()

            // A rebuild swaps new tables in: the consumers split the new build and go on with it.
            let second = try await environment.engine().rebuild(runnables)
            let handledAtSwap = try await Self.handledCounts(environment, definitions)
            try await environment.seed(events: 400, seed: 322)
            reference = try await PartitionedRebuildTests.reference(environment, folder: folder)
            let secondBuilds = Set(second.map(\.buildID))
            try await waitUntil("the consumers to follow the new build") {
                let active = try await environment.mysql.query(
                    "SELECT DISTINCT p.build_id FROM reprise_live_partitions p JOIN reprise_builds b USING (build_id) WHERE b.state = 'active'")
                let tables = try await PartitionedRebuildTests.tables(environment)
                return Set((0..<active.rowCount).compactMap { active.int64($0, 0) }) == secondBuilds && tables == reference
            }
            let handledNow = try await Self.handledCounts(environment, definitions)
            for definition in definitions {
                let applied = try await Self.livePartitions(environment).filter { $0.projection == definition.name }.reduce(Int64(0)) { $0 + $1.events }
                #expect(applied == (handledNow[definition.name] ?? 0) - (handledAtSwap[definition.name] ?? 0), "\(definition.name): each event once over the partitions")
            }
            // Reports reach the collector through tasks of their own: wait for them (bounded)
            // instead of reading the list once.
            let seen = { () async -> (routed: Set<Int>, followed: Set<Int>) in
                var routed: Set<Int> = [], followed: Set<Int> = []
                for case .partition(let number, let event) in await reports.events {
                    if case .applied(_, _, let messages, _, _) = event, messages > 0 { routed.insert(number) }
                    if case .followedNewBuild = event { followed.insert(number) }
                }
                return (routed, followed)
            }
            try? await waitUntil("both partitions' reports", limit: .seconds(20)) { let now = await seen(); return now.routed == [0, 1] && now.followed == [0, 1] }
            let (routed, followed) = await seen()
            #expect(routed == [0, 1], "the relay's slot header routes messages to both partition queues")
            #expect(followed == [0, 1], "both partitions followed the swap")
            stop.stop()
            for consumer in consumers { try await consumer.value }
            try await world.relay.value

            // The first build was retired split; a rollback merges it, catches it up and swaps it back.
            try await environment.seed(events: 200, seed: 323)
            for runnable in runnables { _ = try await environment.engine().rollback(runnable) }
            let active = try await environment.mysql.query("SELECT build_id FROM reprise_builds WHERE state = 'active' ORDER BY build_id")
            #expect(Set((0..<active.rowCount).compactMap { active.int64($0, 0) }) == Set(first.map(\.buildID)))
            #expect(try await Self.livePartitions(environment).isEmpty, "the rolled-back builds are one checkpoint again")
            #expect(try await PartitionedRebuildTests.tables(environment) == (try await PartitionedRebuildTests.reference(environment, folder: folder)))
        }
    }

    @Test func aPoisonEventParksItsStreamInItsOwnPartitionUntilReleased() async throws {
        try await World.with(events: 300, seed: 340, partitions: 2) { world in
            let (environment, harness, folder, runnables, stop) = (world.environment, world.harness, world.folder, world.runnables, world.stop)
            let consumers = ["a", "b"].map { owner in
                Task { try await PartitionedLiveWorker(harness.configuration(), partitions: 2, owner: owner, projections: runnables).run(stop: stop) }
            }
            // The poison arrives once both projections are split and owned: it is parked by a
            // partition's consumer. (A poison in the round a split finishes:
            // BadInputTests.aPoisonInTheRoundASplitFinishesIsParkedInEveryPartition.)
            try await waitUntil("both projections to be split and every partition owned") {
                try await environment.mysql.query(
                    """
                    SELECT COUNT(*) FROM reprise_live_partitions p JOIN reprise_builds b USING (build_id)
                    WHERE b.state = 'active' AND p.owner IS NOT NULL
                    """).int(0, 0) == 4
            }
            // An order whose total no handler can add up.
            let poison = #"{"orderId":"O-poison","customerId":"C-poison","itemCount":1,"totalCents":"lots","occurredAt":"2026-01-01T00:00:00Z"}"#
            _ = try await environment.store.append(
                [StreamAppend(streamID: "order-O-poison", expectedVersion: .noStream, events: [NewEvent(eventID: UUID().uuidString, type: "OrderCreated", payload: poison)])],
                on: environment.postgres)
            try await environment.seed(events: 300, seed: 341)
            let parked = ParkedStreamStore(connection: environment.mysql)
            try await parked.ensureTable()
            try await waitUntil("the poison to park its stream in both projections") { try await parked.list().count == 2 }
            // Each projection parks it in the partition its own key falls in.
            for entry in try await parked.list() {
                let key = entry.projection == "order_summary" ? "O-poison" : "C-poison"
                let slot = try await environment.postgres.query("SELECT \(PartitionSlots.sql(of: "$1::text"))", [.text(key)]).int(0, 0) ?? -1
                #expect(entry.streamID == "order-O-poison")
                #expect(entry.livePartition == ParkedStream.scope(partition: PartitionSlots.partition(ofSlot: slot, among: 2), of: 2), "\(entry.projection)")
            }
            // A merge would lose track of which of the stream's events wait: refused while it is parked.
            stop.stop()
            for consumer in consumers { try await consumer.value }
            // Refused when the unpartitioned runner opens (it merges the active build first) or at
            // its first catch-up, whichever reaches the merge.
            do {
                let intruder = try await LiveProjectionRunner.open(
                    projections: runnables, postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL, source: .reprise(environment.storeSchema))
                do {
                    _ = try await intruder.catchUp()
                } catch {
                    await intruder.close()
                    throw error
                }
                await intruder.close()
                Issue.record("the merge should be refused while a stream is parked in a partition")
            } catch let error as EngineError {
                #expect(error.message.contains("parked in live partition"), "\(error)")
            }

            // Skipped, the partitions drop the poison and go on; then the merge is allowed.
            let restart = StopSignal()
            let again = ["a", "b"].map { owner in
                Task { try await PartitionedLiveWorker(harness.configuration(), partitions: 2, owner: owner, projections: runnables).run(stop: restart) }
            }
            try await parked.request(.skip, projection: "order_summary", streamID: "order-O-poison")
            try await parked.request(.skip, projection: "customer_stats", streamID: "order-O-poison")
            try await waitUntil("both partitions to release the stream") { try await parked.list().isEmpty }
            restart.stop()
            for consumer in again { try await consumer.value }
            let runner = try await LiveProjectionRunner.open(
                projections: runnables, postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL, source: .reprise(environment.storeSchema))
            _ = try await runner.catchUp()
            await runner.close()
            #expect(try await Self.livePartitions(environment).isEmpty)
            // What a rebuild without the skipped event gives.
            try await environment.postgres.execute("DELETE FROM \(environment.storeSchema.qualifiedEvents) WHERE stream_id = 'order-O-poison'")
            #expect(try await PartitionedRebuildTests.tables(environment) == (try await PartitionedRebuildTests.reference(environment, folder: folder)))
            FaultLedger.record(.badInput, "poison event with partitioned live consumers (parked in its partition)")
        }
    }

    @Test func aConsumerThatLosesItsLockSessionStopsItsPartitionsAndClaimsThemAgain() async throws {
        try await World.with(events: 300, seed: 360, partitions: 2) { world in
            let (environment, harness, folder, runnables, stop) = (world.environment, world.harness, world.folder, world.runnables, world.stop)
            let reports = Reports<PartitionedLiveWorker.Event>()
            let consumer = Task {
                try await PartitionedLiveWorker(harness.configuration(), partitions: 2, owner: "solo", projections: runnables)
                    .run(stop: stop) { event in Task { await reports.add(event) } }
            }
            let owned = { await reports.events.compactMap { if case .partitionsOwned(let owned, _) = $0 { owned } else { nil } } }
            try await waitUntil("the consumer to own both partitions") { await owned().last == [0, 1] }

            // The session holding the group's locks goes away (a PostgreSQL restart, a failover).
            let key = PostgresAdvisoryLockKey("reprise.live.\(environment.database).\(harness.queue).members-of-2")
            let terminated = try await environment.postgres.query(
                """
                SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' AND objsubid = 1
                  AND classid = $1::bigint::oid AND objid = $2::bigint::oid
                """, [.int(Int64(UInt32(truncatingIfNeeded: key.value >> 32))), .int(Int64(UInt32(truncatingIfNeeded: key.value)))]).int(0, 0)
            try #require(terminated == 1)
            FaultLedger.record(.injected, "partitioned live consumer's lock session terminated")
            try await waitUntil("the consumer to report the lost session") {
                await reports.events.contains { if case .leaderUnavailable = $0 { true } else { false } }
            }
            try await environment.seed(events: 300, seed: 361)
            let reference = try await PartitionedRebuildTests.reference(environment, folder: folder)
            try await waitUntil("the consumer to claim its partitions again and catch up") {
                let tables = try await PartitionedRebuildTests.tables(environment)
                return await owned().last == [0, 1] && tables == reference
            }
            try #require(await owned().filter { $0 == [0, 1] }.count == 2, "claimed before the loss, and again after it")
            FaultLedger.record(.recovered, "partitioned live consumer's lock session terminated")
            stop.stop()
            try await consumer.value
        }
    }

    @Test func aSwapWaitsForTheApplyLockOfEveryLivePartition() async throws {
        try await World.with(events: 300, seed: 370, partitions: 2) { world in
            let environment = world.environment
            guard let orderSummary = world.runnables.first(where: { $0.definition.name == "order_summary" }),
                let before = world.rebuilt.first(where: { $0.projection == "order_summary" })?.buildID
            else { throw EngineError(.invalidRequest, message: "order_summary missing") }
            // Split the active build into two live partitions (a consumer of partition 0 does it).
            let runner = try await LiveProjectionRunner.open(
                projections: [orderSummary], postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL,
                source: .reprise(environment.storeSchema), partition: .init(number: 0, count: 2, owner: "test"))
            _ = try await runner.catchUp()
            await runner.close()

            // A consumer of partition 1 in the middle of a catch-up holds its apply lock.
            let consumer = try await MySQLConnection.connect(url: environment.mysqlURL)
            let lock = LivePartitions.applyLockName(projection: "order_summary", database: environment.database, number: 1)
            #expect(try await consumer.getLock(lock, timeoutSeconds: 5))
            let rebuild = Task { try await environment.engine().rebuild([orderSummary]) }
            try await waitUntil("the swap to wait for the partition's apply lock") {
                try await environment.mysql.query(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND STATE = 'User lock' AND INFO LIKE '%GET_LOCK%'",
                    [.string(environment.database)]).int(0, 0) == 1
            }
            let active = { try await environment.mysql.query("SELECT build_id FROM reprise_builds WHERE projection = 'order_summary' AND state = 'active'").int64(0, 0) }
            #expect(try await active() == before, "not swapped while a partition is being applied")
            _ = try await consumer.releaseLock(lock)
            let after = try await rebuild.value.first?.buildID
            #expect(after != before)
            #expect(try await active() == after)
            await consumer.close()
        }
    }

    @Test func aFrozenConsumersPartitionsAreTakenOverWhenItsLeaseExpires() async throws {
        try await World.with(events: 300, seed: 380, partitions: 2) { world in
            let environment = world.environment
            let lease = ["--lease-seconds", "2"]
            let sleeper = try world.consumer("w1", partitions: 2, extra: lease)
            let keeper = try world.consumer("w2", partitions: 2, extra: lease)
            try await waitUntil("each consumer to own a partition") {
                let partitions = try await Self.livePartitions(environment)
                return partitions.count == 4 && Self.projections.allSatisfy { name in Set(partitions.filter { $0.projection == name }.map(\.owner)) == ["w1", "w2"] }
            }
            // w1 freezes: alive, its sessions open, its partition silent.
            sleeper.signal(SIGSTOP)
            try await waitUntil("w1 to be stopped") { sleeper.isStopped }
            FaultLedger.record(.injected, "partitioned live consumer frozen (SIGSTOP)")
            try await environment.seed(events: 400, seed: 381)
            var reference = try await PartitionedRebuildTests.reference(environment, folder: world.folder)
            try await waitUntil("w2 to fence w1 off, take its partition and catch up", limit: .seconds(90)) {
                let owners = Set(try await Self.livePartitions(environment).map(\.owner))
                let tables = try await PartitionedRebuildTests.tables(environment)
                return owners == ["w2"] && tables == reference
            }
            // w1 wakes up without its sessions: whatever it does next, nothing is applied twice.
            sleeper.signal(SIGCONT)
            try await environment.seed(events: 200, seed: 382)
            reference = try await PartitionedRebuildTests.reference(environment, folder: world.folder)
            try await waitUntil("everything applied after w1 woke", limit: .seconds(90)) { try await PartitionedRebuildTests.tables(environment) == reference }
            for process in [sleeper, keeper] { process.signal(SIGTERM) }
            let kept = try await keeper.finish()
            _ = try await sleeper.finish()
            try #require(kept.status == 0, "\(kept.standardError)")
            try #require(kept.standardError.contains("live.lease_expired"), "\(kept.standardError)")
            try #require(try await PartitionedRebuildTests.tables(environment) == reference)
            FaultLedger.record(.recovered, "partitioned live consumer frozen (SIGSTOP)")
        }
    }

    @Test func theRelayStampsEachMessageWithTheSlotPartitionFiltersGiveItsStream() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            try await harness.declareCatchAllQueue()
            let amqp = try await TestServers.amqp()
            try await environment.seed(events: 300, seed: 330)
            let stop = StopSignal()
            let relay = Task { try await OutboxRelay(harness.relayConfiguration()).run(stop: stop) }
            try await waitUntil("the relay to publish everything") { try await environment.unpublishedCount() == 0 }
            stop.stop()
            try await relay.value

            let source = try await ResolvedEventSource.resolve(.reprise(environment.storeSchema), on: environment.postgres)
            var bySlot: [Int: Set<Int64>] = [:]
            var messages = 0
            while let delivery = try await amqp.get(queue: harness.queue) {
                #expect(delivery.properties.persistent, "persistent by default")
                guard let position = EventMessage.position(of: delivery), case .int(let slot)? = delivery.properties.headers[EventMessage.slotHeader] else {
                    Issue.record("a message without position or slot")
                    continue
                }
                bySlot[Int(slot), default: []].insert(position)
                messages += 1
                try await amqp.ack(delivery.deliveryTag)
            }
            #expect(messages == 300)
            // The events a live partition filter by stream id selects for a slot are exactly the messages stamped with it.
            for (slot, positions) in bySlot {
                let (filter, parameters) = source.partitionFilter(keys: [(storedTypes: [], field: .streamID)], modulus: PartitionSlots.count, hashes: slot...slot, firstParameter: 1)
                let result = try await environment.postgres.query("SELECT global_position FROM \(environment.storeSchema.qualifiedEvents) WHERE \(filter)", parameters)
                #expect(Set((0..<result.rowCount).compactMap { result.int64($0, 0) }) == positions, "slot \(slot)")
            }
            #expect(bySlot.count > 20)

            // Transient messages on request (the default above is persistent).
            try await environment.seed(events: 10, seed: 331)
            var transient = harness.relayConfiguration()
            transient.persistentMessages = false
            let quick = StopSignal()
            let quickRelay = Task { try await OutboxRelay(transient).run(stop: quick) }
            try await waitUntil("the transient relay to publish") { try await environment.unpublishedCount() == 0 }
            quick.stop()
            try await quickRelay.value
            var modes: [Bool] = []
            while let delivery = try await amqp.get(queue: harness.queue) {
                modes.append(delivery.properties.persistent)
                try await amqp.ack(delivery.deliveryTag)
            }
            #expect(modes == Array(repeating: false, count: 10))
            await amqp.close()
            await harness.cleanUp()
        }
    }
}
}
