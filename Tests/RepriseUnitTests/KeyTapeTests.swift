@testable import RepriseEngine
import RepriseProjection
import Testing

/// The keys the prefetch pass evaluates are kept on a tape and reused when the events are
/// applied: the rows must be exactly those of applying without the tape, an event that fails
/// must not shift the keys of the events after it, and `apply` must really take its keys from the tape.
@Suite("Key tape of a chunk (no server)")
struct KeyTapeTests {
    static let yaml = """
        name: tape
        version: 1
        tables:
          lines:
            columns:
              sku: varchar(32) not null
              day: date not null
              units: bigint not null default 0
            primary_key: [sku, day]
          orders:
            columns:
              order_id: varchar(32) not null
              lines: int not null default 0
            primary_key: [order_id]
        handlers:
          OrderCreated:
            - upsert: { table: orders, set: { order_id: payload.orderId } }
            - for_each: payload.items
              do:
                - upsert: { table: lines, set: { sku: item.sku, day: date(payload.at), units: "units + item.n" } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { lines: lines + 1 } }
          OrderCancelled:
            - delete: { table: orders, key: { order_id: payload.orderId } }
        """

    static func event(_ position: Int64, _ type: String, _ payload: String) throws -> ProjectionEvent {
        ProjectionEvent(position: position, eventID: "e\(position)", streamID: "s", streamVersion: position, type: type,
                        recordedAt: "2026-01-05T10:00:00Z", payload: try JSONFieldDecoder(paths: [[]]).decode(payload))
    }

    static func events() throws -> [ProjectionEvent] {
        [
            try event(1, "OrderCreated", #"{"orderId":"a","at":"2026-01-05T10:00:00Z","items":[{"sku":"x","n":2},{"sku":"y","n":1}]}"#),
            try event(2, "Ignored", #"{}"#),
            // A line without a sku: its key is null, the event fails after its first operation.
            try event(3, "OrderCreated", #"{"orderId":"b","at":"2026-01-06T10:00:00Z","items":[{"n":5},{"sku":"z","n":1}]}"#),
            try event(4, "OrderCreated", #"{"orderId":"c","at":"2026-01-05T23:59:59Z","items":[{"sku":"x","n":3}]}"#),
            try event(5, "OrderCancelled", #"{"orderId":"a"}"#),
            try event(6, "OrderCreated", #"{"orderId":"d","at":"2026-01-07T00:00:00Z","items":[]}"#),
        ]
    }

    /// Applies `events` (a failing event is left out, as a parked one would be) and returns the rows written.
    static func rows(tape: Bool, events: [ProjectionEvent]) throws -> (rows: [String: [RowKey: [ProjectionValue]?]], failed: [Int64]) {
        let definition = try ProjectionFileParser.parse(yaml: yaml, file: "tape.yml")
        let projection = DeclarativeProjection(definition)
        let workspace = RowWorkspace(tables: definition.tables, freshTables: true, cacheLimit: 1_000)
        let keyTape = tape ? KeyTape() : nil
        var keys: [String: Set<RowKey>] = [:]
        var lookupTables: Set<String> = []
        for event in events { projection.keysTouched(by: event, workspace: workspace, into: &keys, lookupTables: &lookupTables, tape: keyTape) }
        var failed: [Int64] = []
        for (index, event) in events.enumerated() {
            keyTape?.rewind(toEvent: index)
            do {
                #expect(try projection.apply(event, to: workspace, keys: keyTape))
            } catch {
                failed.append(event.position)
            }
        }
        return (workspace.overlay, failed)
    }

    @Test func theTapeGivesTheRowsOfEvaluatingEveryKeyAgain() throws {
        let events = try Self.events()
        let withTape = try Self.rows(tape: true, events: events)
        let without = try Self.rows(tape: false, events: events)
        #expect(withTape.failed == [3])
        #expect(without.failed == [3])
        #expect(withTape.rows == without.rows)
        // The events after the failing one found their own keys: c's line, d's order, a deleted.
        #expect(withTape.rows["lines"]?[RowKey([.string("x"), .string("2026-01-05")])] == .some([.string("x"), .string("2026-01-05"), .int(5)]))
        #expect(withTape.rows["orders"]?[RowKey([.string("d")])] == .some([.string("d"), .int(0)]))
        #expect(withTape.rows["orders"]?[RowKey([.string("a")])] == .some(nil))
    }

    @Test func applyTakesItsKeysFromTheTape() throws {
        let definition = try ProjectionFileParser.parse(yaml: Self.yaml, file: "tape.yml")
        let projection = DeclarativeProjection(definition)
        let workspace = RowWorkspace(tables: definition.tables, freshTables: true, cacheLimit: 1_000)
        let event = try Self.event(1, "OrderCreated", #"{"orderId":"a","at":"2026-01-05T10:00:00Z","items":[]}"#)
        // A tape that says another key: apply must write that row (it does not evaluate the key again).
        let tape = KeyTape()
        tape.startEvent()
        tape.append(RowKey([.string("from-tape")]))
        tape.rewind(toEvent: 0)
        #expect(try projection.apply(event, to: workspace, keys: tape))
        #expect(workspace.overlay["orders"]?[RowKey([.string("from-tape")])] != nil)
        #expect(workspace.overlay["orders"]?[RowKey([.string("a")])] == nil)
        // A nil entry (the first pass could not evaluate the key) is evaluated by apply.
        let second = KeyTape()
        second.startEvent()
        second.append(nil)
        second.rewind(toEvent: 0)
        #expect(try projection.apply(event, to: workspace, keys: second))
        #expect(workspace.overlay["orders"]?[RowKey([.string("a")])] != nil)
    }
}
