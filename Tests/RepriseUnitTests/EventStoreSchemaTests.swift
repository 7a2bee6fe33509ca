import RepriseEventStore
import Testing

@Suite("Event store names")
struct EventStoreSchemaTests {
    @Test(arguments: ["events", "_x1", "Events_2026"])
    func acceptsPlainIdentifiers(_ name: String) throws {
        let schema = try EventStoreSchema(eventsTable: name)
        // Kept as written (case included) and quoted, so the SQL names exactly that table.
        #expect(schema.qualifiedEvents.hasSuffix(".\"\(name)\""), "\(schema.qualifiedEvents)")
    }

    @Test(arguments: ["orders; DROP TABLE x", "1events", "", "ev\"ents", "ev ents", String(repeating: "a", count: 64), "événements"])
    func refusesUnsafeIdentifiers(_ name: String) {
        #expect(throws: EventStoreError.self) { try EventStoreSchema(eventsTable: name) }
    }

    @Test func quotesQualifiedNames() throws {
        let schema = try EventStoreSchema(schema: "store", eventsTable: "events", outboxTable: "outbox")
        #expect(schema.qualifiedEvents == #""store"."events""#)
        #expect(schema.qualifiedOutbox == #""store"."outbox""#)
    }
}
