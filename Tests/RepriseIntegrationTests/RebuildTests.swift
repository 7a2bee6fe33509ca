import Foundation
import RepriseEngine
import RepriseEventStore
import RepriseMySQL
import RepriseProjection
import ReprisePostgres
import Testing

/// A small projection that touches every event of the demo: one row per stream.
let streamCountsYAML = """
    name: stream_counts
    version: 1
    tables:
      stream_counts:
        columns:
          stream_id: varchar(128) not null
          events: bigint not null default 0
          last_version: bigint
          last_position: bigint
        primary_key: [stream_id]
    handlers:
      OrderCreated: &count
        - upsert:
            table: stream_counts
            set: { stream_id: event.stream_id, events: events + 1, last_version: event.stream_version, last_position: event.position }
      OrderItemAdded: *count
      PaymentReceived: *count
      OrderShipped: *count
      OrderCancelled: *count
      CustomerRegistered: *count
      ProductAdded: *count
    checks:
      - min_rows: { table: stream_counts, rows: 1 }
    """

/// A fresh temporary projections folder holding `stream_counts.yml` (for runs of the binary).
func streamCountsFolder() throws -> String {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.uniqueName("projections")).path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    try streamCountsYAML.write(toFile: folder + "/stream_counts.yml", atomically: true, encoding: .utf8)
    return folder
}

func streamCounts() throws -> ProjectionDefinition {
    try ProjectionFileParser.parse(yaml: streamCountsYAML, file: "stream_counts.yml")
}

/// Expected `stream_counts` rows computed straight from the event store, independently of the engine.
func expectedStreamCounts(_ environment: RebuildEnvironment) async throws -> [[String]] {
    let result = try await environment.postgres.query(
        "SELECT stream_id, count(*)::text, max(stream_version)::text, max(global_position)::text FROM \(environment.storeSchema.qualifiedEvents) GROUP BY stream_id")
    return (0..<result.rowCount).map { row in (0..<4).map { result.string(row, $0) ?? "NULL" } }.sorted { $0.lexicographicallyPrecedes($1) }
}

@Suite("Rebuild (real servers)")
struct RebuildTests {
    @Test func rebuildFillsGreenTablesAndSwapsThemIn() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 3_000, seed: 21)
        let results = try await environment.engine { $0.chunkSize = 700; $0.fetchSize = 300 }.rebuild([.file(try streamCounts())])
        #expect(results.count == 1)
        #expect(results[0].swapped)
        #expect(results[0].eventsApplied == 3_000)
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        #expect(try await environment.mysql.query("SELECT state FROM reprise_builds").string(0, 0) == "active")

        // A second rebuild with more events replaces the tables; the first build is kept for rollback.
        try await environment.seed(events: 500, seed: 22)
        let second = try await environment.engine().rebuild([.file(try streamCounts())])
        #expect(second[0].previousBuildID == results[0].buildID)
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        #expect(try await environment.mysql.query("SELECT COUNT(*) FROM stream_counts__\(results[0].buildID)").int(0, 0) ?? 0 > 0)

        // Retention keeps one retired build: a third rebuild drops the first build's tables.
        _ = try await environment.engine().rebuild([.file(try streamCounts())])
        let states = try await environment.mysql.query("SELECT build_id, state FROM reprise_builds ORDER BY build_id")
        #expect(states.rows.map { $0[1] } == ["dropped", "retired", "active"])
        await #expect(throws: MySQLError.self) { try await environment.mysql.query("SELECT 1 FROM stream_counts__\(results[0].buildID)") }
        await environment.tearDown()
    }

    @Test func chunkSizeDoesNotChangeTheResult() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 2_000, seed: 23)
        _ = try await environment.engine { $0.chunkSize = 1; $0.fetchSize = 7 }.rebuild([.file(try streamCounts())])
        let small = try await environment.rows("stream_counts")
        _ = try await environment.engine { $0.chunkSize = 100_000; $0.rowCacheLimit = 10 }.rebuild([.file(try streamCounts())])
        #expect(try await environment.rows("stream_counts") == small)
        #expect(small == (try await expectedStreamCounts(environment)))
        await environment.tearDown()
    }

    @Test func aSecondConcurrentRebuildIsRefused() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 100, seed: 24)
        let holder = try await MySQLConnection.connect(url: environment.mysqlURL)
        #expect(try await holder.getLock(RebuildEngine.rebuildLockName("stream_counts", database: environment.database)))
        await #expect {
            try await environment.engine().rebuild([.file(try streamCounts())])
        } throws: { error in
            guard let error = error as? EngineError else { return false }
            return error.kind == .locked && error.projection == "stream_counts" && "\(error)".contains("already running")
        }
        // Nothing was built while refused.
        #expect(try await environment.mysql.query("SHOW TABLES LIKE 'stream_counts%'").rowCount == 0)
        await holder.close()
        await environment.tearDown()
    }

    @Test func outOfOrderCommitsAreNotSkipped() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 200, seed: 25)
        let late = try await TestServers.postgres()
        // T1 takes a position first and stays open; T2 takes a later position and commits.
        try await late.execute("BEGIN")
        let early = try await environment.store.appendInTransaction(
            [StreamAppend(streamID: "order-LATE", expectedVersion: .noStream, events: [NewEvent(eventID: "00000000-0000-7000-8000-00000000000a", type: "OrderCreated", payload: #"{"orderId":"LATE"}"#)])],
            on: late)
        let after = try await environment.store.append(
            [StreamAppend(streamID: "order-AFTER", expectedVersion: .noStream, events: [NewEvent(eventID: "00000000-0000-7000-8000-00000000000b", type: "OrderCreated", payload: #"{"orderId":"AFTER"}"#)])],
            on: environment.postgres)
        #expect(early[0].positions[0] < after[0].positions[0])

        var hooks = RebuildHooks()
        // The bulk read has applied AFTER (visible) but not LATE (in flight): now LATE commits.
        hooks.afterRound = { round in if round == 0 { try await late.execute("COMMIT") } }
        let results = try await environment.engine().rebuild([.file(try streamCounts())], hooks: hooks)
        #expect(results[0].catchUpRounds >= 1)
        let rows = try await environment.rows("stream_counts")
        #expect(rows.contains { $0[0] == "order-LATE" }, "the event committed late was applied by the catch-up")
        #expect(rows.contains { $0[0] == "order-AFTER" })
        #expect(rows == (try await expectedStreamCounts(environment)))
        await late.close()
        await environment.tearDown()
    }

    @Test func readersNeverSeeAMissingOrHalfBuiltTable() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 1_000, seed: 26)
        _ = try await environment.engine().rebuild([.file(try streamCounts())])
        let before = try await environment.mysql.query("SELECT COUNT(*) FROM stream_counts").int(0, 0) ?? 0
        try await environment.seed(events: 1_000, seed: 27)
        let expectedAfter = try await expectedStreamCounts(environment).count

        let reader = try await MySQLConnection.connect(url: environment.mysqlURL)
        let polling = Task { () -> (reads: Int, counts: Set<Int>, failures: [String]) in
            var counts = Set<Int>(), failures: [String] = [], reads = 0
            while !Task.isCancelled {
                do {
                    counts.insert(try await reader.query("SELECT COUNT(*) FROM stream_counts").int(0, 0) ?? -1)
                } catch let error as MySQLError where error.code == .cancelled {
                    break  // this poller's own stop: cancelling reaches the statement in flight
                } catch {
                    failures.append("\(error)")
                }
                reads += 1
            }
            return (reads, counts, failures)
        }
        var hooks = RebuildHooks()
        hooks.beforeSwap = { try await Task.sleep(for: .milliseconds(100)) }  // let the reader run around the swap
        _ = try await environment.engine { $0.chunkSize = 200 }.rebuild([.file(try streamCounts())], hooks: hooks)
        try await Task.sleep(for: .milliseconds(100))
        polling.cancel()
        let observed = await polling.value
        #expect(observed.failures.isEmpty, "readers saw errors: \(observed.failures.prefix(3))")
        #expect(observed.counts.isSubset(of: [before, expectedAfter]), "readers saw \(observed.counts), expected only \(before) or \(expectedAfter)")
        #expect(observed.counts.contains(expectedAfter))
        await reader.close()
        await environment.tearDown()
    }

    @Test func aFailedCheckLeavesTheLiveTablesInPlace() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 300, seed: 28)
        _ = try await environment.engine().rebuild([.file(try streamCounts())])
        let live = try await environment.rows("stream_counts")
        let strict = try ProjectionFileParser.parse(
            yaml: streamCountsYAML.replacing("min_rows: { table: stream_counts, rows: 1 }", with: "no_rows: { name: no_busy_streams, sql: \"SELECT stream_id FROM stream_counts WHERE events > 1\" }")
                .replacing("version: 1", with: "version: 2"),
            file: "stream_counts.yml")
        try await environment.seed(events: 100, seed: 29)
        await #expect {
            try await environment.engine().rebuild([.file(strict)])
        } throws: { error in
            guard let error = error as? EngineError else { return false }
            return error.kind == .checkFailed && "\(error)".contains("no_busy_streams") && "\(error)".contains("left in place")
        }
        #expect(try await environment.rows("stream_counts") == live)
        await environment.tearDown()
    }

    @Test func aChangedDefinitionWithoutAVersionBumpIsRefused() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 100, seed: 32)
        _ = try await environment.engine().rebuild([.file(try streamCounts())])
        let changed = try ProjectionFileParser.parse(
            yaml: streamCountsYAML.replacing("last_version: bigint\n", with: "last_version: bigint\n      first_position: bigint\n"), file: "stream_counts.yml")
        await #expect {
            try await environment.engine().rebuild([.file(changed)])
        } throws: { error in
            guard let error = error as? EngineError else { return false }
            return error.kind == .invalidRequest && "\(error)".contains("changed without a version bump")
        }
        await environment.tearDown()
    }

    @Test func aHandlerErrorNamesTheProjectionAndThePosition() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 300, seed: 30)
        let broken = try ProjectionFileParser.parse(yaml: """
            name: broken
            version: 1
            tables:
              totals:
                columns:
                  order_id: varchar(64) not null
                  total: int not null
                primary_key: [order_id]
            handlers:
              OrderCreated:
                - upsert: { table: totals, set: { order_id: payload.orderId, total: payload.currency } }
            """, file: "broken.yml")
        await #expect {
            try await environment.engine().rebuild([.file(broken)])
        } throws: { error in
            guard let error = error as? EngineError else { return false }
            return error.kind == .handlerFailed && error.projection == "broken" && error.position != nil && error.eventType == "OrderCreated"
                && "\(error)".contains("not a whole number")
        }
        await environment.tearDown()
    }

    @Test func aSwiftCodedProjectionRunsThroughTheSameEngine() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 1_500, seed: 31)
        let results = try await environment.engine { $0.chunkSize = 400 }.rebuild([.code(StreamCountsInSwift())])
        #expect(results[0].swapped)
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        await environment.tearDown()
    }
}

/// `stream_counts` written in Swift: the same result as the file projection.
struct StreamCountsInSwift: Projection {
    let definition: ProjectionDefinition

    init() {
        let table = TableDefinition(
            name: "stream_counts",
            columns: [
                ColumnDefinition(name: "stream_id", type: .varchar(length: 128), nullable: false),
                ColumnDefinition(name: "events", type: .bigint, nullable: false, defaultValue: .int(0)),
                ColumnDefinition(name: "last_version", type: .bigint),
                ColumnDefinition(name: "last_position", type: .bigint),
            ],
            primaryKey: ["stream_id"])
        let types = ["OrderCreated", "OrderItemAdded", "PaymentReceived", "OrderShipped", "OrderCancelled", "CustomerRegistered", "ProductAdded"]
        definition = ProjectionDefinition(
            name: "stream_counts", version: 1, tables: [table], handlers: Dictionary(uniqueKeysWithValues: types.map { ($0, []) }),
            definitionHash: "swift-stream-counts-1")
    }

    func handle(_ event: ProjectionEvent, rows: ProjectionRows) async throws {
        let current = try await rows.row("stream_counts", key: [.string(event.streamID)])
        var count: Int64 = 0
        if case .int(let value)? = current?["events"] { count = value }
        try await rows.upsert("stream_counts", [
            "stream_id": .string(event.streamID), "events": .int(count + 1),
            "last_version": .int(event.streamVersion), "last_position": .int(event.position),
        ])
    }
}

@Suite("Rollback and status (real servers)")
struct RollbackTests {
    @Test func rollbackCatchesUpThePreviousBuildAndSwapsItBack() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 500, seed: 80)
        let first = try await environment.engine().rebuild([.file(try streamCounts())])
        try await environment.seed(events: 300, seed: 81)
        let second = try await environment.engine().rebuild([.file(try streamCounts())])
        // Events keep coming after the second build went live; the first build has not seen them.
        try await environment.seed(events: 200, seed: 82)

        let rolledBack = try await environment.engine().rollback(.file(try streamCounts()))
        #expect(rolledBack.buildID == first[0].buildID)
        #expect(rolledBack.previousBuildID == second[0].buildID)
        #expect(rolledBack.eventsApplied == 500)  // the 300 + 200 events appended since it was retired
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        let states = try await environment.mysql.query("SELECT build_id, state FROM reprise_builds ORDER BY build_id")
        #expect(states.rows.map { $0[1] } == ["active", "retired"])

        // Status shows the active build and no lag.
        let statuses = try await ProjectionStatusReader.read(mysql: environment.mysql, postgres: environment.postgres, storeSchema: environment.storeSchema)
        #expect(statuses.count == 1)
        #expect(statuses[0].active?.buildID == first[0].buildID)
        #expect(statuses[0].retired.map(\.buildID) == [second[0].buildID])
        #expect(statuses[0].lagEvents == 0)
        // With no live worker, lag grows with every append.
        try await environment.seed(events: 50, seed: 83)
        let later = try await ProjectionStatusReader.read(mysql: environment.mysql, postgres: environment.postgres, storeSchema: environment.storeSchema)
        #expect(later[0].lagEvents == 50)
        await environment.tearDown()
    }
}

import Synchronization

@Suite("Rebuild under faults (real servers)")
struct RebuildFaultTests {
    @Test func aMySQLConnectionKilledMidChunkIsRetriedWithoutDoubleApply() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 2_000, seed: 33)
        let killer = try await MySQLConnection.connect(url: environment.mysqlURL)
        let fired = Atomic<Int>(0)
        var hooks = RebuildHooks()
        let database = environment.database
        // Inside chunk 4's transaction (before COMMIT), kill every session of the engine on this
        // database: the commit is lost, the chunk and the one pipelined behind it are applied
        // again; the lock session is reopened explicitly and takes its locks back.
        let observer = Int64(await environment.mysql.connectionID)
        hooks.beforeChunkCommit = { chunk in
            guard chunk == 4, fired.add(1, ordering: .relaxed).oldValue == 0 else { return }
            let sessions = try await killer.query(
                "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID() AND id <> ?", [.string(database), .int(observer)])
            for row in 0..<sessions.rowCount {
                _ = try? await killer.execute("KILL CONNECTION ?", [.int(sessions.int64(row, 0) ?? 0)])
            }
        }
        let results = try await environment.engine { $0.chunkSize = 150 }.rebuild([.file(try streamCounts())], hooks: hooks)
        #expect(fired.load(ordering: .relaxed) >= 1)
        #expect(results[0].swapped)
        #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        FaultLedger.record(.injected, "mysql session killed inside a chunk", count: fired.load(ordering: .relaxed))
        FaultLedger.record(.recovered, "mysql session killed inside a chunk", count: fired.load(ordering: .relaxed))
        await killer.close()
        await environment.tearDown()
    }
}
