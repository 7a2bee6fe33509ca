import RepriseDemo
import RepriseEventStore
import ReprisePostgres
import Testing

@Suite("Event store (real PostgreSQL)")
struct EventStoreTests {
    /// A store in a schema of its own, so tests never see each other's events.
    private func freshStore(_ db: PostgresConnection) async throws -> EventStore {
        let schema = TestServers.uniqueName("store")
        let store = EventStore(schema: try EventStoreSchema(schema: schema))
        try await store.initialize(on: db)
        return store
    }

    private func drop(_ store: EventStore, _ db: PostgresConnection) async throws {
        try await db.execute("DROP SCHEMA \(PostgresIdentifier.quote(store.schema.schema)) CASCADE")
    }

    private func event(_ type: String = "OrderCreated", _ payload: String = #"{"orderId":"1"}"#) -> NewEvent {
        var random = SeededGenerator(seed: UInt64.random(in: 0...UInt64.max))
        return NewEvent(eventID: random.uuid(), type: type, payload: payload)
    }

    @Test func initIsIdempotent() async throws {
        let db = try await TestServers.postgres()
        let store = try await freshStore(db)
        let again = try await store.initialize(on: db)
        #expect(again.createdTables.isEmpty)
        #expect(again.existingTables.count == 2)
        try await drop(store, db)
        await db.close()
    }

    @Test func initRefusesATableOfTheSameNameWithAnotherShape() async throws {
        let db = try await TestServers.postgres()
        let schema = TestServers.uniqueName("clash")
        try await db.execute("CREATE SCHEMA \(schema)")
        try await db.execute("CREATE TABLE \(schema).events (id serial PRIMARY KEY, body text)")
        let store = EventStore(schema: try EventStoreSchema(schema: schema))
        await #expect {
            try await store.initialize(on: db)
        } throws: { error in
            guard case .incompatibleTable(let table, let problems) = error as? EventStoreError else { return false }
            return table == "\(schema).events" && problems.contains("column global_position is missing")
        }
        // Nothing was created beside the foreign table.
        #expect(try await db.query("SELECT count(*) FROM pg_tables WHERE schemaname = $1", [.text(schema)]).int(0, 0) == 1)
        try await db.execute("DROP SCHEMA \(schema) CASCADE")
        await db.close()
    }

    @Test func appendWritesEventsAndOutboxRowsTogether() async throws {
        let db = try await TestServers.postgres()
        let store = try await freshStore(db)
        let results = try await store.append(
            [
                StreamAppend(streamID: "order-1", expectedVersion: .noStream, events: [event(), event("PaymentReceived")]),
                StreamAppend(streamID: "order-2", expectedVersion: .any, events: [event()]),
            ], on: db)
        #expect(results.map(\.versions) == [[1, 2], [1]])
        #expect(results[0].positions.count == 2)
        #expect(results[0].positions[0] < results[0].positions[1])
        #expect(results[0].positions[1] < results[1].positions[0])
        let rows = try await db.query(
            "SELECT e.global_position, e.stream_version, o.global_position IS NOT NULL, e.transaction_id = o.transaction_id "
                + "FROM \(store.schema.qualifiedEvents) e LEFT JOIN \(store.schema.qualifiedOutbox) o USING (global_position) ORDER BY 1")
        #expect(rows.rowCount == 3)
        for row in 0..<3 {
            #expect(rows.bool(row, 2) == true, "every event has its outbox row")
            #expect(rows.bool(row, 3) == true, "written by the same transaction")
        }
        #expect(try await store.streamVersion("order-1", on: db) == 2)
        #expect(try await store.headPosition(on: db) == results[1].positions[0])
        try await drop(store, db)
        await db.close()
    }

    @Test func appendWithAStaleExpectedVersionIsRefused() async throws {
        let db = try await TestServers.postgres()
        let store = try await freshStore(db)
        try await store.append([StreamAppend(streamID: "order-9", expectedVersion: .noStream, events: [event(), event()])], on: db)
        await #expect {
            try await store.append([StreamAppend(streamID: "order-9", expectedVersion: .exact(1), events: [event()])], on: db)
        } throws: { error in
            guard case .wrongExpectedVersion(let stream, let expected, let actual) = error as? EventStoreError else { return false }
            return stream == "order-9" && expected == .exact(1) && actual == 2
        }
        await #expect {
            try await store.append([StreamAppend(streamID: "order-9", expectedVersion: .noStream, events: [event()])], on: db)
        } throws: { error in
            if case .wrongExpectedVersion = error as? EventStoreError { return true }
            return false
        }
        // Nothing of the refused appends was written.
        #expect(try await store.streamVersion("order-9", on: db) == 2)
        #expect(try await db.query("SELECT count(*) FROM \(store.schema.qualifiedOutbox)").int(0, 0) == 2)
        try await store.append([StreamAppend(streamID: "order-9", expectedVersion: .exact(2), events: [event()])], on: db)
        #expect(try await store.streamVersion("order-9", on: db) == 3)
        try await drop(store, db)
        await db.close()
    }

    @Test func concurrentWritersToOneStreamCannotBothWin() async throws {
        let first = try await TestServers.postgres()
        let second = try await TestServers.postgres()
        let store = try await freshStore(first)
        try await store.append([StreamAppend(streamID: "order-7", expectedVersion: .noStream, events: [event()])], on: first)
        // Both read version 1 inside their transactions; the second to insert hits the unique key.
        try await first.execute("BEGIN")
        try await second.execute("BEGIN")
        _ = try await store.appendInTransaction([StreamAppend(streamID: "order-7", expectedVersion: .exact(1), events: [event()])], on: first)
        let late = [StreamAppend(streamID: "order-7", expectedVersion: .exact(1), events: [event()])]
        let losing = Task { try await store.appendInTransaction(late, on: second) }
        try await first.execute("COMMIT")
        await #expect(throws: EventStoreError.self) { _ = try await losing.value }
        try await second.execute("ROLLBACK")
        #expect(try await store.streamVersion("order-7", on: first) == 2)
        try await drop(store, first)
        await first.close()
        await second.close()
    }

    @Test func rolledBackAppendLeavesNeitherEventsNorOutboxRows() async throws {
        let db = try await TestServers.postgres()
        let store = try await freshStore(db)
        struct BusinessRuleFailed: Error {}
        await #expect(throws: BusinessRuleFailed.self) {
            try await db.withTransaction { db in
                _ = try await store.appendInTransaction([StreamAppend(streamID: "order-3", expectedVersion: .noStream, events: [event()])], on: db)
                throw BusinessRuleFailed()
            }
        }
        // An invalid payload fails the statement: the whole append is rolled back.
        await #expect(throws: (any Error).self) {
            try await store.append(
                [
                    StreamAppend(streamID: "order-4", expectedVersion: .noStream, events: [event()]),
                    StreamAppend(streamID: "order-5", expectedVersion: .noStream, events: [event("OrderCreated", "{not json")]),
                ], on: db)
        }
        #expect(try await db.query("SELECT count(*) FROM \(store.schema.qualifiedEvents)").int(0, 0) == 0)
        #expect(try await db.query("SELECT count(*) FROM \(store.schema.qualifiedOutbox)").int(0, 0) == 0)
        try await drop(store, db)
        await db.close()
    }

    @Test func createOrderCommandWritesOrderCreatedAndItsOutboxRow() async throws {
        let db = try await TestServers.postgres()
        let store = try await freshStore(db)
        let handler = OrderCommandHandler(store: store)
        let command = CreateOrderCommand(
            orderID: "A-1", customerID: "C-1", lines: [OrderLine(sku: "SKU-1", quantity: 2, unitPriceCents: 1_250)],
            occurredAt: "2026-11-23T10:00:00Z")
        let result = try await handler.handle(command, eventID: "6f1c4d6e-4b5a-4c4b-9a3e-2f1d0c9b8a71", on: db)
        #expect(result.versions == [1])
        let row = try await db.query(
            "SELECT e.event_type, payload->>'totalCents', payload->'items'->0->>'sku', e.event_id::text FROM \(store.schema.qualifiedEvents) e "
                + "JOIN \(store.schema.qualifiedOutbox) o USING (global_position) WHERE e.stream_id = 'order-A-1'")
        #expect(row.string(0, 0) == "OrderCreated")
        #expect(row.string(0, 1) == "2500")
        #expect(row.string(0, 2) == "SKU-1")
        #expect(row.string(0, 3) == "6f1c4d6e-4b5a-4c4b-9a3e-2f1d0c9b8a71")
        // The same order cannot be created twice.
        await #expect(throws: EventStoreError.self) {
            try await handler.handle(command, eventID: "7f1c4d6e-4b5a-4c4b-9a3e-2f1d0c9b8a71", on: db)
        }
        try await drop(store, db)
        await db.close()
    }

    @Test func demoSeedWritesTheDeterministicHistory() async throws {
        let db = try await TestServers.postgres()
        let store = try await freshStore(db)
        let seeder = DemoSeeder(store: store, batchSize: 700)
        let written = try await seeder.seed(events: 5_000, seed: 99, on: db)
        #expect(written == 5_000)
        let counts = try await db.query(
            "SELECT count(*), count(DISTINCT stream_id), (SELECT count(*) FROM \(store.schema.qualifiedOutbox)) FROM \(store.schema.qualifiedEvents)")
        #expect(counts.int(0, 0) == 5_000)
        #expect(counts.int(0, 2) == 5_000)
        // Same seed, same history: the stored payloads equal the generator's, in order.
        var history = DemoHistory(seed: 99, totalEvents: 5_000)
        var expected: [String] = []
        while let batch = history.nextBatch(maxEvents: 1_000) { expected += batch.flatMap { $0.events.map(\.eventID) } }
        let stored = try await db.query("SELECT event_id::text FROM \(store.schema.qualifiedEvents) ORDER BY global_position")
        #expect((0..<stored.rowCount).map { stored.string($0, 0) ?? "" } == expected)
        // In parallel over three connections: the same events with the same stream versions.
        let parallelStore = try await freshStore(db)
        let pool = [db, try await TestServers.postgres(), try await TestServers.postgres()]
        _ = try await DemoSeeder(store: parallelStore, batchSize: 700).seed(events: 5_000, seed: 99, on: pool)
        let identity = "SELECT event_id::text || '@' || stream_id || '#' || stream_version FROM %@ ORDER BY 1"
        let serialRows = try await db.query(identity.replacing("%@", with: store.schema.qualifiedEvents))
        let parallelRows = try await db.query(identity.replacing("%@", with: parallelStore.schema.qualifiedEvents))
        #expect(serialRows.rowCount == 5_000)
        #expect((0..<5_000).map { serialRows.string($0, 0) } == (0..<5_000).map { parallelRows.string($0, 0) })
        for connection in pool.dropFirst() { await connection.close() }
        try await drop(parallelStore, db)

        // Seeding the same seed twice is refused with a clear message.
        await #expect {
            try await seeder.seed(events: 10, seed: 99, on: db)
        } throws: { error in
            "\(error)".contains("seed 99")
        }
        try await drop(store, db)
        await db.close()
    }
}
