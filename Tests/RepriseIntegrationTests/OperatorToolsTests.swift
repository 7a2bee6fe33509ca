import Foundation
import RepriseAMQP
@testable import RepriseEngine
import RepriseLive
import RepriseEventStore
import RepriseMySQL
import RepriseProjection
import ReprisePostgres
import Testing

/// What every table of both servers holds, to prove a command wrote nothing: `CHECKSUM TABLE`
/// of every MySQL table of the read-model database, and a count and hash of the events and the
/// outbox (published marks included) in PostgreSQL.
func serverFingerprint(_ environment: RebuildEnvironment) async throws -> [String] {
    var lines: [String] = []
    let tables = try await environment.mysql.query("SHOW TABLES").rows.compactMap { $0.first ?? nil }.sorted()
    for table in tables {
        let checksum = try await environment.mysql.query("CHECKSUM TABLE \(MySQLIdentifier.quote(table))")
        lines.append("mysql \(table) \(checksum.string(0, 1) ?? "NULL")")
    }
    for table in [environment.storeSchema.qualifiedEvents, environment.storeSchema.qualifiedOutbox] {
        let result = try await environment.postgres.query("SELECT count(*)::text || ' ' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-') FROM \(table) t")
        lines.append("postgres \(table) \(result.string(0, 0) ?? "")")
    }
    return lines
}

/// The stream with the most events of a kind (`order-` streams), for traces that show something.
func longestStream(_ environment: RebuildEnvironment, prefix: String) async throws -> String {
    let result = try await environment.postgres.query(
        "SELECT stream_id FROM \(environment.storeSchema.qualifiedEvents) WHERE stream_id LIKE $1 GROUP BY stream_id ORDER BY count(*) DESC, stream_id LIMIT 1",
        [.text(prefix + "%")])
    guard let stream = result.string(0, 0) else { throw TestSetupError("no stream starting with \(prefix)") }
    return stream
}

func sampleDefinition(_ name: String) throws -> ProjectionDefinition {
    guard let definition = try RebuildEnvironment.samples().first(where: { $0.name == name }) else { throw TestSetupError("no sample \(name)") }
    return definition
}

@Suite("Operator tools: trace (real servers)")
struct TraceTests {
    @Test func traceOfAnOrderEndsWithTheRebuiltRowAndWritesNothing() async throws {
        let environment = try await RebuildEnvironment.make()
        defer { Task { await environment.tearDown() } }
        try await environment.seed(events: 2_000, seed: 91)
        let definition = try sampleDefinition("order_summary")
        _ = try await environment.engine().rebuild([.file(definition)])
        let stream = try await longestStream(environment, prefix: "order-")
        let before = try await serverFingerprint(environment)

        // The command as an operator runs it: from empty rows, and from the live rows.
        var traces: [[String: Any]] = []
        for extra in [[], ["--from-live"]] {
            let outcome = try runReprise(
                ["trace", "order_summary", "--stream", stream, "--json", "--store-schema", environment.storeSchema.schema] + extra,
                environment: environment.processVariables)
            #expect(outcome.status == 0, "\(outcome.standardError)")
            let json = try JSONSerialization.jsonObject(with: Data(outcome.standardOutput.utf8)) as? [String: Any]
            traces.append(try #require(json))
        }
        #expect(try await serverFingerprint(environment) == before)

        // The row the rebuild wrote, read the way the engine reads rows (canonical values).
        let layout = TableLayout(try #require(definition.table(named: "order_summary")))
        let orderID = String(stream.dropFirst("order-".count))
        let key = RowKey([.string(orderID)])
        let live = try #require(try await ReadModelStore(connection: environment.mysql).tables.loadRows(layout, physical: "order_summary", keys: [key])[key])
        let expected = Dictionary(uniqueKeysWithValues: zip(layout.columns.map(\.name), live.map { TraceValue($0).description }))

        let eventCount = try await environment.postgres.query(
            "SELECT count(*) FROM \(environment.storeSchema.qualifiedEvents) WHERE stream_id = $1", [.text(stream)]).int(0, 0)
        for trace in traces {
            let events = try #require(trace["events"] as? [[String: Any]])
            #expect(events.count == eventCount)
            #expect(try #require(trace["finalRows"] as? [[String: Any]]).count == 1)
        }
        // From empty rows: the trace ends with exactly the row the rebuild wrote.
        let finalRow = try #require((traces[0]["finalRows"] as? [[String: Any]])?.first?["columns"] as? [String: Any])
        #expect(finalRow.mapValues { "\($0)" } == expected)
        // The first event creates the row: every column is new.
        let events = try #require(traces[0]["events"] as? [[String: Any]])
        let first = try #require((events.first?["operations"] as? [[String: Any]])?.first)
        #expect(first["outcome"] as? String == "ran")
        #expect((first["columns"] as? [[String: Any]])?.allSatisfy { $0["before"] == nil && $0["changed"] as? Bool == true } == true)
        // From the live rows: the first operation starts from the live row (replaying the stream
        // on top of it shows what the handlers would do to the rows as they are).
        let fromLiveFirst = try #require((((traces[1]["events"] as? [[String: Any]])?.first?["operations"]) as? [[String: Any]])?.first)
        let liveBefore = try #require(fromLiveFirst["columns"] as? [[String: Any]]).reduce(into: [String: String]()) { row, column in
            row[column["name"] as? String ?? ""] = column["before"].map { "\($0)" }
        }
        #expect(liveBefore == expected)
    }

    @Test func traceStopsAtUptoAndReportsSkippedOperations() async throws {
        let environment = try await RebuildEnvironment.make()
        defer { Task { await environment.tearDown() } }
        try await environment.seed(events: 1_000, seed: 92)
        let stream = try await longestStream(environment, prefix: "order-")
        let positions = try await environment.postgres.query(
            "SELECT global_position FROM \(environment.storeSchema.qualifiedEvents) WHERE stream_id = $1 ORDER BY global_position", [.text(stream)])
        let second = try #require(positions.int64(1, 0))
        let definition = try sampleDefinition("order_summary")
        let trace = try await StreamTracer.trace(
            .file(definition), streamID: stream, postgresURL: TestServers.postgresURL, mysqlURL: nil, source: .reprise(environment.storeSchema),
            fromLive: false, upto: second)
        #expect(trace.events.map(\.position) == [try #require(positions.int64(0, 0)), second])
        #expect(trace.failure == nil)

        // Without its OrderCreated, the stream's updates find no row and are skipped.
        let later = try await StreamTracer.trace(
            .file(definition), streamID: stream, postgresURL: TestServers.postgresURL, mysqlURL: nil, source: .reprise(environment.storeSchema),
            fromLive: false, upto: nil)
        var withoutCreate = definition
        withoutCreate.handlers["OrderCreated"] = []
        let skipped = try await StreamTracer.trace(
            .file(withoutCreate), streamID: stream, postgresURL: TestServers.postgresURL, mysqlURL: nil, source: .reprise(environment.storeSchema),
            fromLive: false, upto: nil)
        #expect(later.finalRows.count == 1)
        #expect(skipped.finalRows.isEmpty)
        let reasons = skipped.events.dropFirst().flatMap(\.operations).map { "\($0.outcome) \($0.reason ?? "")" }
        #expect(!reasons.isEmpty && reasons.allSatisfy { $0 == "skipped row missing" })

        // With `if_missing: error`, the first update fails: the trace stops there and the error
        // names the projection, the event and the operation, as a rebuild's does.
        var strict = withoutCreate
        strict.handlers = strict.handlers.mapValues { operations in
            operations.map { operation in
                guard case .update(let table, let key, let set, let when, _) = operation else { return operation }
                return .update(table: table, key: key, set: set, when: when, ifMissing: .error)
            }
        }
        let failed = try await StreamTracer.trace(
            .file(strict), streamID: stream, postgresURL: TestServers.postgresURL, mysqlURL: nil, source: .reprise(environment.storeSchema),
            fromLive: false, upto: nil)
        let failing = try #require(failed.events.last)
        #expect(failed.events.count == 2)
        let failure = try #require(failed.failure)
        #expect(failure.contains("order_summary") && failure.contains("position \(failing.position)") && failure.contains("handlers.\(failing.type)[0]"), "\(failure)")
    }

    /// A payment's country comes from a customer row another stream wrote: without a live table
    /// the trace says the lookup read a missing row; after a rebuild it reads the live row, names
    /// the lookup, and shows the right country and amount, writing nothing.
    @Test func traceOfAPaymentReadsTheCustomerFromTheLiveTableAndSaysSo() async throws {
        let environment = try await RebuildEnvironment.make()
        defer { Task { await environment.tearDown() } }
        try await environment.seed(events: 2_000, seed: 93)
        let events = environment.storeSchema.qualifiedEvents
        // The first paid order whose customer registered, with the facts an operator would look up.
        let paid = try await environment.postgres.query("""
            SELECT p.stream_id, p.payload->>'amountCents', left(p.payload->>'occurredAt', 10), c.payload->>'customerId', r.payload->>'country'
            FROM \(events) p
            JOIN \(events) c ON c.stream_id = p.stream_id AND c.event_type = 'OrderCreated'
            JOIN \(events) r ON r.event_type = 'CustomerRegistered' AND r.payload->>'customerId' = c.payload->>'customerId'
            WHERE p.event_type = 'PaymentReceived' AND r.payload->>'country' IS NOT NULL
            ORDER BY p.global_position LIMIT 1
            """)
        let stream = try #require(paid.string(0, 0)), amount = try #require(paid.string(0, 1)), day = try #require(paid.string(0, 2))
        let customer = try #require(paid.string(0, 3)), country = try #require(paid.string(0, 4))
        let definition = try sampleDefinition("country_revenue_daily")

        // Before any rebuild there is no live table: the lookup reads a missing row, and says why.
        let unbuilt = try await StreamTracer.trace(
            .file(definition), streamID: stream, postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL,
            source: .reprise(environment.storeSchema), fromLive: false, upto: nil)
        #expect(unbuilt.failure == nil)
        #expect(unbuilt.lookups.contains { $0.alias == "cust" && $0.table == "revenue_customers" && $0.rows == "no live table" })
        #expect(unbuilt.lookups.contains { $0.alias == "ord" && $0.table == "revenue_orders" && $0.rows == "stream" })
        let unbuiltPayment = try #require(unbuilt.events.first { $0.type == "PaymentReceived" })
        #expect(unbuiltPayment.lookupReads.map { "\($0.table) \($0.key["customer_id"]?.description ?? "") \($0.source) \($0.columns == nil)" }
            == ["revenue_customers \(customer) no live table true"])
        #expect(unbuiltPayment.operations.first { $0.table == "country_revenue_daily" }?.key["country"] == .text("unknown"))

        _ = try await environment.engine().rebuild([.file(definition)])
        let before = try await serverFingerprint(environment)
        let outcome = try runReprise(
            ["trace", "country_revenue_daily", "--stream", stream, "--json", "--store-schema", environment.storeSchema.schema],
            environment: environment.processVariables)
        #expect(outcome.status == 0, "\(outcome.standardError)")
        let text = try runReprise(
            ["trace", "country_revenue_daily", "--stream", stream, "--store-schema", environment.storeSchema.schema],
            environment: environment.processVariables)
        #expect(try await serverFingerprint(environment) == before)

        let trace = try #require(try JSONSerialization.jsonObject(with: Data(outcome.standardOutput.utf8)) as? [String: Any])
        let lookups = try #require(trace["lookups"] as? [[String: Any]])
        #expect(lookups.contains { $0["alias"] as? String == "cust" && $0["path"] as? String == "handlers.PaymentReceived[1]" && $0["rows"] as? String == "live" })
        let traced = try #require(trace["events"] as? [[String: Any]])
        let payment = try #require(traced.first { $0["type"] as? String == "PaymentReceived" })
        let read = try #require((payment["lookupReads"] as? [[String: Any]])?.first)
        #expect(read["table"] as? String == "revenue_customers" && read["source"] as? String == "live")
        #expect((read["key"] as? [String: Any])?["customer_id"] as? String == customer)
        #expect((read["columns"] as? [String: Any])?["country"] as? String == country)
        let upsert = try #require((payment["operations"] as? [[String: Any]])?.first { $0["table"] as? String == "country_revenue_daily" })
        #expect((upsert["key"] as? [String: Any])?["country"] as? String == country)
        #expect((upsert["key"] as? [String: Any])?["day"] as? String == day)
        let paidAfter = (upsert["columns"] as? [[String: Any]])?.first { $0["name"] as? String == "paid_cents" }?["after"]
        #expect(paidAfter.map { "\($0)" } == amount)

        // --from-live: an upsert keyed by a looked-up value reads its live row once the lookup resolved.
        let fromLive = try await StreamTracer.trace(
            .file(definition), streamID: stream, postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL,
            source: .reprise(environment.storeSchema), fromLive: true, upto: nil)
        #expect(fromLive.failure == nil)
        let liveUpsert = try #require(fromLive.events.first { $0.type == "PaymentReceived" }?.operations.first { $0.table == "country_revenue_daily" })
        #expect(liveUpsert.key["country"] == .text(country))
        #expect(liveUpsert.columns.first { $0.name == "paid_cents" }?.before != nil)

        #expect(text.status == 0, "\(text.standardError)")
        #expect(text.standardOutput.contains(
            "lookup cust (handlers.PaymentReceived[1]) reads revenue_customers: rows this stream did not write come from the live table, as they are now (not as of the event)"),
            "\(text.standardOutput)")
        #expect(text.standardOutput.contains("lookup read revenue_customers (customer_id=\(customer)) (live row as of now): customer_id=\(customer) country=\(country)"),
                "\(text.standardOutput)")
    }
}

extension BrokerSuites {
@Suite("Operator tools: repair (real servers)")
struct RepairTests {
    /// Appends one event of the demo's order shape to an order's stream.
    func appendToOrder(_ environment: RebuildEnvironment, _ stream: String, type: String, payload: String) async throws {
        let version = try await environment.postgres.query(
            "SELECT max(stream_version) FROM \(environment.storeSchema.qualifiedEvents) WHERE stream_id = $1", [.text(stream)]).int64(0, 0) ?? 0
        _ = try await environment.store.append(
            [StreamAppend(streamID: stream, expectedVersion: .exact(version), events: [NewEvent(eventID: UUID().uuidString, type: type, payload: payload)])],
            on: environment.postgres)
    }

    func row(_ environment: RebuildEnvironment, _ orderID: String) async throws -> [String] {
        try await environment.mysql.query("SELECT status, paid_cents FROM order_summary WHERE order_id = ?", [.string(orderID)]).rows.first?.map { $0 ?? "NULL" } ?? []
    }

    @Test func repairFixesADamagedRowWhileTheLiveWorkerAppliesNewEvents() async throws {
        let environment = try await RebuildEnvironment.make()
        let harness = LiveHarness(environment: environment)
        try await environment.seed(events: 800, seed: 93)
        let definition = try sampleDefinition("order_summary")
        _ = try await environment.engine().rebuild([.file(definition)])
        let stream = try await longestStream(environment, prefix: "order-")
        let orderID = String(stream.dropFirst("order-".count))
        let schema = environment.storeSchema.schema
        var variables = environment.processVariables
        variables["REPRISE_AMQP_URL"] = TestServers.amqpURL
        let relay = try BackgroundProcess(["relay", "--store-schema", schema, "--exchange", harness.exchange, "--poll-seconds", "0.2", "--metrics-port", "0"], environment: variables)
        let live = try BackgroundProcess(
            ["live", "order_summary", "--store-schema", schema, "--exchange", harness.exchange, "--queue", harness.queue, "--poll-ms", "200", "--chunk-size", "50", "--metrics-port", "0"],
            environment: variables)

        do {
            // The row is damaged by hand; then the live worker applies an event to it, reading
            // (and caching) the damaged row.
            try await environment.mysql.execute("UPDATE order_summary SET paid_cents = paid_cents + 999 WHERE order_id = ?", [.string(orderID)])
            try await appendToOrder(environment, stream, type: "OrderCancelled",
                                    payload: #"{"orderId":"\#(orderID)","reason":"test","occurredAt":"2026-02-01T10:00:00Z"}"#)
            try await environment.seed(events: 300, seed: 94)
            try await waitUntil("the live worker to apply the cancellation") { try await row(environment, orderID).first == "cancelled" }

            let repaired = try runReprise(["repair", "order_summary", "--stream", stream, "--store-schema", schema], environment: variables)
            #expect(repaired.status == 0, "\(repaired.standardError)")
            #expect(repaired.standardOutput.contains("order_summary (order_id=\(orderID)): replaced; paid_cents"), "\(repaired.standardOutput)")
            #expect(repaired.standardOutput.contains("checkpoint unchanged"))

            // More events, one of them on the repaired row: the live worker must not write its cached
            // damaged row back.
            try await appendToOrder(environment, stream, type: "PaymentReceived",
                                    payload: #"{"orderId":"\#(orderID)","amountCents":1,"method":"card","occurredAt":"2026-02-01T11:00:00Z"}"#)
            try await environment.seed(events: 300, seed: 95)
            let lastHandled = try await environment.postgres.query(
                "SELECT max(global_position) FROM \(environment.storeSchema.qualifiedEvents) WHERE event_type = ANY($1::text[])",
                [.text(PostgresArrayLiteral.text(definition.eventTypes.sorted()))]).int64(0, 0)
            try await waitUntil("the live worker to apply every event") {
                try await environment.mysql.query("SELECT max(last_position) FROM order_summary").int64(0, 0) == lastHandled
            }
        } catch {
            // Never leave the worker and the relay running: stop them and show what they said.
            live.signal(SIGTERM)
            relay.signal(SIGTERM)
            let (liveEnd, relayEnd) = (try await live.finish(), try await relay.finish())
            Issue.record("live: \(liveEnd.standardError)\nrelay: \(relayEnd.standardError)")
            throw error
        }
        live.signal(SIGTERM)
        relay.signal(SIGTERM)
        let liveEnd = try await live.finish(), relayEnd = try await relay.finish()
        #expect(liveEnd.status == 0, "\(liveEnd.standardError)")
        #expect(relayEnd.status == 0, "\(relayEnd.standardError)")

        let liveRows = try await environment.rows("order_summary")
        _ = try await environment.engine().rebuild([.file(definition)])
        #expect(try await environment.rows("order_summary") == liveRows)
        await harness.cleanUp()
        await environment.tearDown()
    }

    @Test func repairOfAProjectionKeyedByTheStreamIDReplacesDamagedAndDeletedRows() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 500, seed: 99)
        let counts = try streamCounts()
        _ = try await environment.engine().rebuild([.file(counts)])
        let expected = try await environment.rows("stream_counts")
        let streams = try await environment.mysql.query("SELECT stream_id FROM stream_counts ORDER BY stream_id LIMIT 2").rows.compactMap { $0.first ?? nil }
        try #require(streams.count == 2)
        // One row damaged, one deleted by hand.
        try await environment.mysql.execute("UPDATE stream_counts SET events = events + 7 WHERE stream_id = ?", [.string(streams[0])])
        try await environment.mysql.execute("DELETE FROM stream_counts WHERE stream_id = ?", [.string(streams[1])])
        for stream in streams {
            let result = try await StreamRepair.repair(
                .file(counts), streamID: stream, postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL, source: .reprise(environment.storeSchema))
            #expect(result.decidedBy == "event.stream_id")
            #expect(result.rows.count == 1 && !result.rows[0].changedColumns.isEmpty)
        }
        #expect(try await environment.rows("stream_counts") == expected)
        await environment.tearDown()
    }

    @Test func repairMovesNoCheckpointAndIsRefusedWhereOneStreamDoesNotDecideTheRows() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 600, seed: 96)
        let orders = try sampleDefinition("order_summary"), sales = try sampleDefinition("product_sales_daily")
        _ = try await environment.engine().rebuild([.file(orders), .file(sales)])
        let stream = try await longestStream(environment, prefix: "order-")
        let schema = environment.storeSchema.schema
        let registry = "SELECT build_id, base_snapshot, target_snapshot, round_position, events_applied FROM reprise_builds ORDER BY build_id"
        let before = try await environment.mysql.query(registry).rows
        let salesBefore = try await environment.rows("product_sales_daily")

        let refused = try runReprise(["repair", "product_sales_daily", "--stream", stream, "--store-schema", schema], environment: environment.processVariables)
        #expect(refused.status == 1)
        #expect(refused.standardError.contains("repair refused"), "\(refused.standardError)")
        #expect(refused.standardError.contains("one stream does not decide its rows"))
        #expect(try await environment.rows("product_sales_daily") == salesBefore)

        // A repair of an intact row changes nothing, and no checkpoint moves.
        let ordersBefore = try await environment.rows("order_summary")
        let result = try await StreamRepair.repair(
            .file(orders), streamID: stream, postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL, source: .reprise(environment.storeSchema))
        #expect(result.rows.count == 1 && result.rows.allSatisfy { $0.changedColumns.isEmpty })
        #expect(try await environment.rows("order_summary") == ordersBefore)
        #expect(try await environment.mysql.query(registry).rows == before)
        #expect(StreamRepair.refusal(sales) != nil)
        #expect(StreamRepair.refusal(orders) == nil)
        await environment.tearDown()
    }
}
}

@Suite("Operator tools: migrate --review (real servers)")
struct MigrateReviewTests {
    /// order_summary version 2: `item_count` now means the lines the order was created with;
    /// lines added later count in a new column.
    static func versionTwo() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.uniqueName("review")).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var text = try String(contentsOfFile: RebuildEnvironment.repositoryRoot() + "/projections/order_summary.yml", encoding: .utf8)
        text = text.replacingOccurrences(of: "version: 1", with: "version: 2")
            .replacingOccurrences(of: "          item_count: item_count + 1\n", with: "          lines_added: lines_added + 1\n")
            .replacingOccurrences(of: "      last_position: bigint not null default 0", with: "      lines_added: int not null default 0\n      last_position: bigint not null default 0")
        try text.write(toFile: folder + "/order_summary.yml", atomically: true, encoding: .utf8)
        return folder
    }

    @Test func reviewReportsExactlyTheRowsWhoseColumnChangedMeaning() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 800, seed: 97)
        _ = try await environment.engine().rebuild([.file(try sampleDefinition("order_summary"))])
        let folder = try Self.versionTwo()
        let schema = environment.storeSchema.schema
        let common = ["--projections-dir", folder, "--store-schema", schema, "--quiet"]
        let liveBefore = try await environment.rows("order_summary")

        let reviewed = try runReprise(["migrate", "order_summary", "--review", "--json"] + common, environment: environment.processVariables)
        #expect(reviewed.status == 0, "\(reviewed.standardError)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(reviewed.standardOutput.utf8)) as? [String: Any])
        let table = try #require((json["tables"] as? [[String: Any]])?.first)
        // The orders that had lines added after creation, and only those.
        let orders = try await environment.postgres.query(
            "SELECT DISTINCT payload->>'orderId' FROM \(environment.storeSchema.qualifiedEvents) WHERE event_type = 'OrderItemAdded'")
        let expected = Set((0..<orders.rowCount).compactMap { orders.string($0, 0) })
        #expect(!expected.isEmpty)
        #expect(table["differing"] as? Int == expected.count)
        #expect(table["onlyInOld"] as? Int == 0 && table["onlyInNew"] as? Int == 0)
        #expect(table["columnsAdded"] as? [String] == ["lines_added"])
        #expect(table["columnsRemoved"] as? [String] == [])
        let samples = try #require(table["sampleDiffering"] as? [[String: Any]])
        #expect(samples.count == 5)
        #expect(samples.allSatisfy { ($0["columns"] as? [String: Any]).map { Array($0.keys) } == ["item_count"] })
        // Every differing row, not just the sample: exactly the expected orders.
        let newBuild = try #require(json["newBuild"] as? Int)
        let definition = try #require(try ProjectionFileParser.loadDirectory(folder).first)
        let all = try await environment.engine().reviewMigration(definition, newBuild: Int64(newBuild), sampleSize: 100_000)
        #expect(Set(all.tables[0].sampleDiffering.compactMap { $0.key["order_id"]?.description }) == expected)
        // Nothing was swapped: the live table is version 1 as it was.
        #expect(try await environment.rows("order_summary") == liveBefore)

        // --abandon drops the built version; a new review builds it again; migrate swaps it in.
        let abandoned = try runReprise(["migrate", "order_summary", "--abandon"] + common, environment: environment.processVariables)
        #expect(abandoned.status == 0, "\(abandoned.standardError)")
        #expect(try await environment.mysql.query("SHOW TABLES LIKE ?", [.string("order_summary__\(newBuild)")]).rowCount == 0)
        let again = try runReprise(["migrate", "order_summary", "--review"] + common, environment: environment.processVariables)
        #expect(again.standardOutput.contains("differing \(expected.count)"), "\(again.standardOutput)")
        let swapped = try runReprise(["migrate", "order_summary"] + common, environment: environment.processVariables)
        #expect(swapped.status == 0, "\(swapped.standardError)")
        #expect(swapped.standardOutput.contains("migrated from v1"))
        #expect(try await environment.mysql.query("SELECT version FROM reprise_builds WHERE projection = 'order_summary' AND state = 'active'").int(0, 0) == 2)
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }
}

extension BrokerSuites {
@Suite("Operator tools: replay (real servers)")
struct ReplayTests {
    /// Takes `count` messages from the queue (acking them), then checks the queue is empty.
    func drain(_ queue: String, count: Int) async throws -> [Int64] {
        let amqp = try await TestServers.amqp()
        var positions: [Int64] = []
        try await waitUntil("\(count) replayed messages") {
            while positions.count < count, let delivery = try await amqp.get(queue: queue) {
                positions.append(EventMessage.position(of: delivery) ?? -1)
                try await amqp.ack(delivery.deliveryTag)
            }
            return positions.count >= count
        }
        let extra = try await amqp.get(queue: queue)
        await amqp.close()
        #expect(extra == nil, "more messages than expected")
        return positions
    }

    /// A fresh exchange with a queue bound to every routing key, and the variables a `reprise
    /// replay` process needs to reach the broker.
    static func boundQueue(_ environment: RebuildEnvironment) async throws -> (exchange: String, queue: String, variables: [String: String]) {
        let exchange = TestServers.uniqueName("reprise.test.replay"), queue = TestServers.uniqueName("reprise.test.backfill")
        let amqp = try await TestServers.amqp()
        try await amqp.declareExchange(exchange, type: .topic)
        try await amqp.declareQueue(queue)
        try await amqp.bindQueue(queue, exchange: exchange, routingKey: "#")
        await amqp.close()
        var variables = environment.processVariables
        variables["REPRISE_AMQP_URL"] = TestServers.amqpURL
        return (exchange, queue, variables)
    }

    static func delete(_ exchange: String, _ queue: String) async {
        guard let cleanup = try? await TestServers.amqp() else { return }
        try? await cleanup.deleteQueue(queue)
        try? await cleanup.deleteExchange(exchange)
        await cleanup.close()
    }

    /// SIGTERM stops a replay between batches (here in the wait that keeps it under `--rate`):
    /// the process unwinds and exits 143, the replay stays recorded as unfinished, and the same
    /// command resumes it. No event is missing; only a batch confirmed but not yet saved when
    /// the signal came may arrive twice.
    @Test func sigtermStopsAReplayAndTheSameCommandResumesItWithoutGaps() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 600, seed: 99)
        let (exchange, queue, variables) = try await Self.boundQueue(environment)
        let rows = try await environment.postgres.query(
            "SELECT global_position FROM \(environment.storeSchema.qualifiedEvents) WHERE global_position BETWEEN 1 AND 600 ORDER BY 1")
        let expected = (0..<rows.rowCount).compactMap { rows.int64($0, 0) }
        let arguments = ["replay", "--exchange", exchange, "--from", "1", "--to", "600", "--store-schema", environment.storeSchema.schema,
                         "--batch-size", "10", "--rate", "40", "--quiet"]

        let process = try BackgroundProcess(arguments, environment: variables)
        let recorded = "SELECT published, finished_at IS NULL FROM \(PostgresIdentifier.quote(environment.storeSchema.schema)).reprise_replays WHERE exchange = $1"
        try await waitUntil("the replay to save 50 events") {
            let row = try? await environment.postgres.query(recorded, [.text(exchange)])
            return (row?.int64(0, 0) ?? 0) >= 50
        }
        let stopped = try await process.stoppedBySIGTERM()
        #expect(stopped.standardError.contains("run the same command again to resume"), "\(stopped.standardError)")
        let saved = try await environment.postgres.query(recorded, [.text(exchange)])
        #expect(saved.string(0, 1) == "t", "the replay is not finished")
        #expect((saved.int64(0, 0) ?? 0) < Int64(expected.count), "it stopped before the end")

        // The rest as fast as confirms come back (the rate is not part of what is resumed).
        let resumed = try runReprise(arguments.filter { $0 != "--rate" && $0 != "40" }, environment: variables)
        #expect(resumed.status == 0, "\(resumed.standardError)")
        #expect(resumed.standardOutput.contains("resumed"), "\(resumed.standardOutput)")
        let consumer = try await TestServers.amqp()
        var delivered: [Int64] = []
        try await waitUntil("the replayed messages up to position \(expected.last ?? 0)") {
            while let delivery = try await consumer.get(queue: queue) {
                delivered.append(EventMessage.position(of: delivery) ?? -1)
                try await consumer.ack(delivery.deliveryTag)
            }
            return delivered.last == expected.last
        }
        #expect(try await consumer.get(queue: queue) == nil, "nothing after the last position")
        await consumer.close()
        // Every event once in position order, but for at most one batch published again.
        var seen = Set<Int64>()
        #expect(delivered.filter { seen.insert($0).inserted } == expected)
        #expect(delivered.count - expected.count <= 10, "\(delivered.count - expected.count) messages delivered twice")

        await Self.delete(exchange, queue)
        await environment.tearDown()
    }

    @Test func replayDeliversARangeOnceInPositionOrderAndResumesAfterKillWithoutGaps() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 1_200, seed: 98)
        let (exchange, queue, variables) = try await Self.boundQueue(environment)
        let types = ["OrderCreated", "OrderItemAdded", "PaymentReceived"]
        let rows = try await environment.postgres.query(
            "SELECT global_position FROM \(environment.storeSchema.qualifiedEvents) WHERE global_position BETWEEN 201 AND 1000 AND event_type = ANY($1::text[]) ORDER BY 1",
            [.text(PostgresArrayLiteral.text(types))])
        let expected = (0..<rows.rowCount).compactMap { rows.int64($0, 0) }
        #expect(expected.count > 300)
        let outbox = try await serverFingerprint(environment)
        let arguments = ["replay", "--exchange", exchange, "--from", "201", "--to", "1000", "--types", types.joined(separator: ","),
                         "--store-schema", environment.storeSchema.schema, "--batch-size", "50", "--quiet"]

        // Every event of the range and types, once, in position order.
        let first = try runReprise(arguments, environment: variables)
        #expect(first.status == 0, "\(first.standardError)")
        #expect(try await drain(queue, count: expected.count) == expected)
        // The outbox (and its published marks) and the read models are untouched.
        #expect(try await serverFingerprint(environment) == outbox)
        // A finished replay is not repeated by accident; the live exchange is refused.
        #expect(try runReprise(arguments, environment: variables).status == 1)
        #expect(try runReprise(["replay", "--exchange", "reprise.events", "--store-schema", environment.storeSchema.schema], environment: variables).status == 64)

        // Killed (SIGKILL) after the broker confirmed batch 3 and before its position was saved:
        // the next run resumes after batch 2, so batch 3 arrives twice and nothing is missing.
        var faulty = variables
        faulty["REPRISE_FAULT"] = "kill-after-confirm:3"
        let killed = try runReprise(arguments + ["--restart"], environment: faulty)
        try #require(killed.killedBySIGKILL, "\(killed.standardError)")
        let resumed = try runReprise(arguments, environment: variables)
        #expect(resumed.status == 0, "\(resumed.standardError)")
        #expect(resumed.standardOutput.contains("resumed"), "\(resumed.standardOutput)")
        let delivered = try await drain(queue, count: expected.count + 50)
        let batchThree = Array(expected[100..<150])
        #expect(Array(delivered.prefix(150)) == Array(expected.prefix(150)))
        #expect(Array(delivered[150..<200]) == batchThree)
        #expect(Array(delivered.dropFirst(200)) == Array(expected.dropFirst(150)))

        await Self.delete(exchange, queue)
        await environment.tearDown()
    }
}
}
