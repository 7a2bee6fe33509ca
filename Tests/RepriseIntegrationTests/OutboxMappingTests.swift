import Foundation
import RepriseAMQP
import RepriseEventSource
import ReprisePostgres
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `reprise relay --outbox`: applications' own outbox tables, relayed by the real binary to a
/// consumer written with a plain AMQP client (Python `pika`).
extension BrokerSuites {
@Suite(.serialized) struct OutboxMappingTests {
    /// One outbox shape: its table, how a writer inserts a row, and what "published" looks like.
    struct Shape: CustomStringConvertible, Sendable {
        var name: String
        /// The `--outbox` argument (a preset, or a mapping file written by `mappingFile`).
        var outbox: String
        var create: @Sendable (_ table: String) -> String
        /// $1 stream key, $2 event type, $3 the writer's sequence; returns the message id and the
        /// writing transaction's id.
        var insert: @Sendable (_ table: String) -> String
        /// Rows not published yet.
        var unpublished: @Sendable (_ table: String) -> String
        /// Order within a stream by transaction id (else by the numeric message id).
        var ordersByTransaction: Bool
        var mappingFile: (@Sendable (_ schema: String, _ table: String) -> String)?
        var description: String { name }
    }

    static let shapes: [Shape] = [
        Shape(
            name: "outbox_events", outbox: "outbox_events",
            create: { "CREATE TABLE \($0) (id bigserial PRIMARY KEY, aggregate_id text NOT NULL, event_type text NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), is_published boolean NOT NULL DEFAULT false)" },
            insert: { "INSERT INTO \($0) (aggregate_id, event_type, payload) VALUES ($1, $2, jsonb_build_object('seq', $3::int)) RETURNING id::text, pg_current_xact_id()::text" },
            unpublished: { "SELECT count(*) FROM \($0) WHERE NOT is_published" }, ordersByTransaction: false),
        Shape(
            name: "outbox_delete with a transaction id column", outbox: "file",
            create: { "CREATE TABLE \($0) (id bigserial PRIMARY KEY, aggregate_id text NOT NULL, event_type text NOT NULL, payload jsonb NOT NULL, headers jsonb, txid xid8 NOT NULL DEFAULT pg_current_xact_id())" },
            insert: { "INSERT INTO \($0) (aggregate_id, event_type, payload, headers) VALUES ($1, $2, jsonb_build_object('seq', $3::int), jsonb_build_object('tenant', 'acme')) RETURNING id::text, pg_current_xact_id()::text" },
            unpublished: { "SELECT count(*) FROM \($0)" }, ordersByTransaction: true,
            mappingFile: { schema, table in
                """
                preset: outbox_delete
                schema: \(schema)
                table: \(table)
                columns: { headers: headers }
                safe_head: { transaction_id: txid }
                """
            }),
        Shape(
            name: "debezium", outbox: "debezium",
            create: { "CREATE TABLE \($0) (id uuid PRIMARY KEY, aggregatetype varchar(255) NOT NULL, aggregateid varchar(255) NOT NULL, type varchar(255) NOT NULL, payload jsonb)" },
            insert: { "INSERT INTO \($0) (id, aggregatetype, aggregateid, type, payload) VALUES (gen_random_uuid(), 'order', $1, $2, jsonb_build_object('seq', $3::int)) RETURNING id::text, pg_current_xact_id()::text" },
            unpublished: { "SELECT count(*) FROM \($0)" }, ordersByTransaction: true),
    ]

    /// A written row: what the consumer must receive once, in its stream's order.
    struct Written: Sendable {
        var id: String
        var stream: String
        var transaction: Int64
    }

    /// The world of one test: a schema holding the outbox table, an exchange and a bound queue.
    struct World: Sendable {
        let postgres: PostgresConnection
        let schema: String
        let table: String
        let exchange = TestServers.uniqueName("reprise.test.outbox")
        let queue = TestServers.uniqueName("reprise.test.outbox.q")
        let shape: Shape
        let folder: String

        var qualified: String { "\"\(schema)\".\"\(table)\"" }

        static func make(_ shape: Shape) async throws -> World {
            let postgres = try await TestServers.postgres()
            let schema = TestServers.uniqueName("ob")
            let table = shape.name == "debezium" ? "outbox" : shape.name == "outbox_events" ? "outbox_events" : "outbox_messages"
            try await postgres.execute("CREATE SCHEMA \(schema)")
            let folder = NSTemporaryDirectory() + TestServers.uniqueName("outbox")
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let world = World(postgres: postgres, schema: schema, table: table, shape: shape, folder: folder)
            try await postgres.execute(shape.create(world.qualified))
            let amqp = try await TestServers.amqp()
            try await amqp.declareExchange(world.exchange, type: .topic)
            try await amqp.declareQueue(world.queue)
            try await amqp.bindQueue(world.queue, exchange: world.exchange, routingKey: "#")
            await amqp.close()
            return world
        }

        func relayArguments() throws -> [String] {
            var outbox = shape.outbox
            if let file = shape.mappingFile {
                outbox = folder + "/outbox.yml"
                try file(schema, table).write(toFile: outbox, atomically: true, encoding: .utf8)
            }
            return ["relay", "--outbox", outbox, "--store-schema", schema, "--exchange", exchange, "--poll-seconds", "0.2", "--batch-size", "7",
                    "--postgres-url", TestServers.postgresURL, "--amqp-url", TestServers.amqpURL, "--metrics-port", "0"]
        }

        /// Until the relay announced itself (its session's application_name): writes start under it.
        func waitForRelay() async throws {
            try await waitUntil("the relay to start") {
                try await postgres.query("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1", [.text("reprise relay % \(schema).\(table) %")]).int64(0, 0) == 1
            }
        }

        func unpublished() async throws -> Int64 {
            try await postgres.query(shape.unpublished(qualified)).int64(0, 0) ?? -1
        }

        /// Writers in concurrent transactions over shared stream keys; every fourth transaction
        /// commits late (held open while the others commit).
        func write(writers: Int, transactions: Int, streams: Int) async throws -> [Written] {
            let sql = shape.insert(qualified)
            return try await withThrowingTaskGroup(of: [Written].self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        let connection = try await TestServers.postgres()
                        var written: [Written] = []
                        for number in 0..<transactions {
                            // Distinct streams within one transaction: each stream gets at most one row per transaction.
                            let first = (writer * 7 + number * 3) % streams
                            let count = 1 + (number + writer) % 3
                            let rows: [Written] = try await connection.withTransaction { connection in
                                var rows: [Written] = []
                                for offset in 0..<count {
                                    // Every transaction writes stream-0 first: while a late one is open, the
                                    // others' rows of stream-0 (later ids, later transactions) commit before it.
                                    let stream = offset == 0 ? "stream-0" : "stream-\(1 + (first + offset) % (streams - 1))"
                                    let result = try await connection.query(sql, [.text(stream), .text("order.placed"), .int(Int64(writer * 1000 + number))])
                                    rows.append(Written(id: result.string(0, 0) ?? "", stream: stream, transaction: Int64(result.string(0, 1) ?? "") ?? 0))
                                }
                                if number % 4 == writer % 4 { try await Task.sleep(for: .milliseconds(300)) }
                                return rows
                            }
                            written += rows
                        }
                        await connection.close()
                        return written
                    }
                }
                var all: [Written] = []
                for try await rows in group { all += rows }
                return all
            }
        }

        /// Every message in the queue, read with pika (`basic_get` until the queue is empty: the
        /// relay marks rows only after the broker confirmed them, so they are all enqueued).
        func consume() throws -> [Delivered] {
            let script = folder + "/consumer.py"
            try Self.consumerScript.write(toFile: script, atomically: true, encoding: .utf8)
            let outcome = try runProcess("/usr/bin/env", ["python3", script], environment: ["OUTBOX_TEST_AMQP_URL": TestServers.amqpURL, "OUTBOX_TEST_QUEUE": queue])
            guard outcome.status == 0 else { throw TestSetupError("the pika consumer failed (pip install pika?): \(outcome.standardError)") }
            return try outcome.standardOutput.split(separator: "\n").map { line in
                try JSONDecoder().decode(Delivered.self, from: Data(line.utf8))
            }
        }

        static let consumerScript = """
            import json, os, pika
            connection = pika.BlockingConnection(pika.URLParameters(os.environ["OUTBOX_TEST_AMQP_URL"]))
            channel = connection.channel()
            while True:
                method, properties, body = channel.basic_get(os.environ["OUTBOX_TEST_QUEUE"], auto_ack=True)
                if method is None:
                    break
                headers = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in (properties.headers or {}).items()}
                print(json.dumps({"id": properties.message_id, "routing": method.routing_key, "type": properties.type,
                                  "stream": headers.get("reprise-stream-id", ""), "headers": headers, "body": body.decode()}))
            connection.close()
            """

        func close() async {
            _ = try? await postgres.execute("DROP SCHEMA \(schema) CASCADE")
            await postgres.close()
            if let amqp = try? await TestServers.amqp() {
                _ = try? await amqp.deleteQueue(queue)
                _ = try? await amqp.deleteExchange(exchange)
                await amqp.close()
            }
            try? FileManager.default.removeItem(atPath: folder)
        }
    }

    struct Delivered: Decodable {
        var id: String
        var routing: String
        var type: String?
        var stream: String
        var headers: [String: String]
        var body: String
    }

    @Test(arguments: shapes)
    func everyRowArrivesOnceInStreamOrderAndIsMarked(shape: Shape) async throws {
        let world = try await World.make(shape)
        let relay = try BackgroundProcess(try world.relayArguments())
        try await world.waitForRelay()
        // A first row relayed: the writers below run while the relay is publishing.
        var written = try await world.write(writers: 1, transactions: 1, streams: 5)
        try await waitUntil("the relay to publish a first row") { try await world.unpublished() == 0 }
        written += try await world.write(writers: 3, transactions: 16, streams: 5)
        try await waitUntil("the relay to publish and mark every row") { try await world.unpublished() == 0 }
        relay.signal(SIGTERM)
        let outcome = try await relay.finish()
        #expect(outcome.status == 0, "\(outcome.standardError)")

        let delivered = try world.consume()
        // Exactly once: every written row's id, no other, none twice.
        #expect(delivered.count == written.count, "\(delivered.count) messages for \(written.count) rows")
        #expect(Set(delivered.map(\.id)) == Set(written.map(\.id)))
        #expect(delivered.allSatisfy { $0.routing == "order.placed" && $0.type == "order.placed" })
        let byID = Dictionary(uniqueKeysWithValues: written.map { ($0.id, $0) })
        // Per-stream order: the order the mapping promises (transaction, or order column).
        var streams: [String: [Written]] = [:]
        for message in delivered {
            guard let row = byID[message.id] else { continue }
            #expect(message.stream == row.stream)
            streams[row.stream, default: []].append(row)
        }
        for (stream, rows) in streams {
            let keys = rows.map { shape.ordersByTransaction ? $0.transaction : Int64($0.id) ?? 0 }
            #expect(keys == keys.sorted(), "stream \(stream) out of order: \(keys)")
        }
        if shape.mappingFile != nil { #expect(delivered.allSatisfy { $0.headers["tenant"] == "acme" }) }
        if shape.name == "debezium" { #expect(delivered.allSatisfy { $0.headers["aggregatetype"] == "order" }) }
        await world.close()
    }

    /// kill -9 between publish and mark: the next relay republishes the rows not marked, and only those.
    @Test func aRelayKilledBetweenPublishAndMarkRepublishesOnlyUnmarkedRows() async throws {
        let world = try await World.make(Self.shapes[0])
        let insert = Self.shapes[0].insert(world.qualified)
        var ids: [String] = []
        for number in 0..<20 { ids.append(try await world.postgres.query(insert, [.text("s\(number % 3)"), .text("order.placed"), .int(Int64(number))]).string(0, 0) ?? "") }
        let first = try BackgroundProcess(try world.relayArguments())
        try await waitUntil("the first 20 rows to be marked") { try await world.unpublished() == 0 }
        first.signal(SIGTERM)
        _ = try await first.finish()

        var late: [String] = []
        for number in 20..<30 { late.append(try await world.postgres.query(insert, [.text("s\(number % 3)"), .text("order.placed"), .int(Int64(number))]).string(0, 0) ?? "") }
        // Hold the new rows' locks: the relay publishes them, then waits to mark them.
        let holder = try await TestServers.postgres()
        try await holder.execute("BEGIN")
        try await holder.execute("SELECT id FROM \(world.qualified) WHERE NOT is_published FOR UPDATE")
        let second = try BackgroundProcess(try world.relayArguments())
        var waiter: Int64 = 0
        try await waitUntil("the relay to wait on marking a published batch") {
            waiter = try await world.postgres.query(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'UPDATE%' AND query LIKE $1",
                [.text("%\(world.schema)%")]).int64(0, 0) ?? 0
            return waiter != 0
        }
        second.signal(SIGKILL)
        _ = try await second.finish()
        // The dead relay's session would mark the rows once the lock is free; a crash ends it.
        _ = try await world.postgres.query("SELECT pg_terminate_backend($1::int)", [.int(waiter)])
        try await waitUntil("the killed relay's session to end") {
            try await world.postgres.query("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", [.int(waiter)]).int64(0, 0) == 0
        }
        try await holder.execute("ROLLBACK")
        await holder.close()
        #expect(try await world.unpublished() == 10, "nothing of the killed relay's batch was marked")

        let third = try BackgroundProcess(try world.relayArguments())
        try await waitUntil("the restarted relay to mark the rest") { try await world.unpublished() == 0 }
        third.signal(SIGTERM)
        _ = try await third.finish()

        let delivered = try world.consume()
        var counts: [String: Int] = [:]
        for message in delivered { counts[message.id, default: 0] += 1 }
        // At least once: the first 20 went out once; of the late 10, the batch published before
        // the kill went out twice (same message ids), the rest once.
        #expect(Set(counts.keys) == Set(ids + late))
        #expect(ids.allSatisfy { counts[$0] == 1 }, "marked rows are never republished: \(counts)")
        let twice = late.filter { counts[$0] == 2 }
        #expect(!twice.isEmpty && late.allSatisfy { (1...2).contains(counts[$0] ?? 0) }, "\(counts)")
        await world.close()
    }

    /// A mapping that does not fit the table stops the relay before it reads a row.
    @Test func aMappingIsCheckedAgainstTheCatalog() async throws {
        let world = try await World.make(Self.shapes[0])
        try await world.postgres.execute("ALTER TABLE \(world.qualified) RENAME COLUMN is_published TO published")
        let outcome = try runReprise(try world.relayArguments())
        #expect(outcome.status != 0)
        #expect(outcome.standardError.contains("published.flag: column is_published not found"), "\(outcome.standardError)")
        await world.close()
    }
}
}
