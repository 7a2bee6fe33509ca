@testable import RepriseEngine
import RepriseProjection
import Testing

/// An upsert or update of a row the chunk already wrote changes the overlay's own array in
/// place, and an event's fields are read from their decoded slots by a slot found once per
/// layout. Both must give exactly what the general path gives (a row copied per operation, and
/// fields read through the decoded document): every expression reads the row as it was, a failing
/// operation leaves the row as it was, and the rows committing, the cache and an event's undo
/// record keep what they held.
@Suite("Rows changed in place (no server)")
struct RowsInPlaceTests {
    static let yaml = """
        name: in_place
        version: 1
        tables:
          counters:
            columns:
              id: varchar(32) not null
              a: bigint not null default 0
              b: bigint not null default 0
              note: varchar(8)
            primary_key: [id]
        handlers:
          Bumped:
            - upsert: { table: counters, set: { id: payload.id, a: a + payload.n, b: b + 1 } }
          Swapped:
            - update: { table: counters, key: { id: payload.id }, set: { a: b, b: a } }
          Noted:
            - update: { table: counters, key: { id: payload.id }, set: { a: a + 100, note: payload.note }, when: "a < 1000" }
        """

    /// The same, with a handler that changes a row and then needs a looked-up row.
    static let lookupYAML = """
        name: in_place_lookup
        version: 1
        tables:
          counters:
            columns:
              id: varchar(32) not null
              b: bigint not null default 0
              note: varchar(32)
            primary_key: [id]
          products:
            columns:
              sku: varchar(32) not null
              category: varchar(32)
            primary_key: [sku]
        handlers:
          Looked:
            - update: { table: counters, key: { id: payload.id }, set: { b: b + 1000 } }
            - lookup: { as: product, table: products, key: { sku: payload.sku } }
            - upsert: { table: counters, set: { id: payload.id, note: product.category } }
        """

    static func event(_ position: Int64, _ type: String, _ payload: String) throws -> ProjectionEvent {
        ProjectionEvent(position: position, eventID: "e\(position)", streamID: "s", streamVersion: position, type: type,
                        recordedAt: "2026-01-05T10:00:00Z", payload: try JSONFieldDecoder(paths: [[]]).decode(payload))
    }

    private let c1 = RowKey([.string("c1")])

    private func counters(_ workspace: RowWorkspace) -> [RowKey: [ProjectionValue]?] { workspace.overlay["counters"] ?? [:] }

    /// Every operation below after the first hits a row the overlay holds (the in-place path); a
    /// trace's observer sends the same operations through the copying path. Both must agree,
    /// including the swap (each assignment reads the row as it was) and the failed assignment.
    @Test func changesInPlaceEqualTheCopyingPath() throws {
        let definition = try ProjectionFileParser.parse(yaml: Self.yaml, file: "in_place.yml")
        let projection = DeclarativeProjection(definition)
        let events = [
            try Self.event(1, "Bumped", #"{"id":"c1","n":5}"#),
            try Self.event(2, "Bumped", #"{"id":"c1","n":2}"#),
            try Self.event(3, "Swapped", #"{"id":"c1"}"#),
            try Self.event(4, "Noted", #"{"id":"c1","note":"x"}"#),
            try Self.event(5, "Noted", #"{"id":"c1","note":"far too long for eight"}"#),  // fails: the row stays
            try Self.event(6, "Bumped", #"{"id":"c1","n":1000}"#),
            try Self.event(7, "Noted", #"{"id":"c1","note":"y"}"#),  // when is false: nothing changes
        ]
        var results: [[RowKey: [ProjectionValue]?]] = []
        for traced in [false, true] {
            let workspace = RowWorkspace(tables: definition.tables, freshTables: true, cacheLimit: 1_000)
            let observer: OperationObserver? = traced ? { _ in } : nil
            var failures = 0
            for index in events.indices {
                do {
                    #expect(try projection.apply(events, at: index, to: workspace, observer: observer))
                } catch {
                    failures += 1
                    #expect(events[index].position == 5)
                    #expect(counters(workspace)[c1] == .some([.string("c1"), .int(102), .int(7), .string("x")]))
                }
            }
            #expect(failures == 1)
            results.append(counters(workspace))
        }
        #expect(results[0][c1] == .some([.string("c1"), .int(1102), .int(8), .string("x")]))
        #expect(results[0] == results[1])
    }

    /// A row changed in place must not change the same row committing or cached: the chunk
    /// before's rows are what MySQL gets or holds.
    @Test func rowsCommittingAndCachedKeepTheirValues() throws {
        let definition = try ProjectionFileParser.parse(yaml: Self.yaml, file: "in_place.yml")
        let projection = DeclarativeProjection(definition)
        let workspace = RowWorkspace(tables: definition.tables, freshTables: true, cacheLimit: 1_000)
        func bump(_ position: Int64, _ n: Int) throws {
            #expect(try projection.apply(try Self.event(position, "Bumped", #"{"id":"c1","n":\#(n)}"#), to: workspace))
        }
        try bump(1, 5)
        workspace.stageOverlay()
        workspace.commitPending()  // cached: (c1, 5, 1)
        try bump(2, 2)  // copied from the cache into the overlay
        try bump(3, 1)  // changed in place
        #expect(counters(workspace)[c1] == .some([.string("c1"), .int(8), .int(3), .null]))
        workspace.stageOverlay()  // committing: (c1, 8, 3)
        try bump(4, 10)  // copied from the rows committing
        try bump(5, 10)  // changed in place
        #expect(workspace.pending["counters"]?[c1] == .some([.string("c1"), .int(8), .int(3), .null]))
        #expect(counters(workspace)[c1] == .some([.string("c1"), .int(28), .int(5), .null]))
        workspace.discardOverlay()
        guard case .present(let committing) = workspace.lookup(0, c1) else { Issue.record("the committing row is gone"); return }
        #expect(committing == [.string("c1"), .int(8), .int(3), .null])
        // The cache still holds the first chunk's row under the committing one.
        workspace.reset()
        workspace.remember(0, fetched: [c1: [.string("c1"), .int(5), .int(1), .null]], requested: [c1])
        try bump(6, 1)
        try bump(7, 1)
        workspace.discardOverlay()
        guard case .present(let cached) = workspace.lookup(0, c1) else { Issue.record("the cached row is gone"); return }
        #expect(cached == [.string("c1"), .int(5), .int(1), .null])
    }

    /// An event undone because it needs a row not read yet (lookups) gives back the row it had
    /// changed in place, and applies in full once the row is read.
    @Test func anUndoneEventRestoresARowChangedInPlace() throws {
        let definition = try ProjectionFileParser.parse(yaml: Self.lookupYAML, file: "in_place_lookup.yml")
        let projection = DeclarativeProjection(definition)
        #expect(projection.hasLookups)
        let workspace = RowWorkspace(tables: definition.tables, freshTables: false, cacheLimit: 1_000)
        workspace.tracksEvents = true
        workspace.put(0, c1, [.string("c1"), .int(1), .null])
        let event = try Self.event(1, "Looked", #"{"id":"c1","sku":"s1"}"#)
        #expect(try !projection.apply(event, to: workspace))
        #expect(counters(workspace)[c1] == .some([.string("c1"), .int(1), .null]))
        let s1 = RowKey([.string("s1")])
        workspace.remember(1, fetched: [s1: [.string("s1"), .string("toys")]], requested: [s1])
        #expect(try projection.apply(event, to: workspace))
        #expect(counters(workspace)[c1] == .some([.string("c1"), .int(1001), .string("toys")]))
    }

    /// Fields read from decoded slots (payload and `for_each` items, by a slot found once per
    /// layout) must give the rows the tree-decoded events give.
    @Test func slotReadsEqualTreeReads() throws {
        let yaml = """
            name: slot_reads
            version: 1
            tables:
              sales:
                columns:
                  sku: varchar(16) not null
                  day: date not null
                  units: bigint not null default 0
                  revenue: bigint not null default 0
                  last_order: varchar(16)
                  note: text
                primary_key: [sku, day]
            handlers:
              OrderCreated:
                - for_each: payload.items
                  do:
                    - upsert:
                        table: sales
                        set:
                          sku: item.sku
                          day: date(payload.at)
                          units: units + item.quantity
                          revenue: revenue + item.quantity * item.price
                          last_order: payload.order.id
                          note: coalesce(item.detail.name, payload.order.note, 'none')
            """
        let definition = try ProjectionFileParser.parse(yaml: yaml, file: "slot_reads.yml")
        let projection = DeclarativeProjection(definition)
        var payloadPaths: [[PathSegment]] = []
        for case .payload(let path) in definition.requiredFields { payloadPaths.append(path) }
        let items = JSONFieldDecoder.forEachItems([definition])
        let decoder = JSONFieldDecoder(paths: payloadPaths, forEachItems: items.payload)
        let layout = try #require(decoder.slotLayout)
        let documents = [
            #"{"order":{"id":"o1","note":"n1"},"at":"2026-01-05T10:00:00Z","items":[{"sku":"A","quantity":2,"price":150},{"sku":"B","quantity":1,"price":9,"detail":{"name":"bee"}}]}"#,
            #"{"order":{"id":"o2"},"at":"2026-01-05T11:00:00Z","items":[{"sku":"A","quantity":3,"price":150,"detail":{"name":null}}]}"#,
            #"{"order":{"id":"o3","note":"n3"},"at":"2026-01-06T00:00:00Z","items":[{"sku":"B","quantity":4,"price":9},{"sku":"A","quantity":1,"price":150}]}"#,
            #"{"order":{"id":"o4"},"at":"2026-01-06T01:00:00Z","items":[]}"#,
        ]
        var slotted: [ProjectionEvent] = [], trees: [ProjectionEvent] = []
        for (offset, document) in documents.enumerated() {
            let position = Int64(offset + 1)
            var copy = document
            let fields = try copy.withUTF8 { try decoder.decodeFields(UnsafeRawBufferPointer($0), layout: layout) }
            slotted.append(ProjectionEvent(position: position, transactionID: "1", eventID: "e\(position)", streamID: "s", streamVersion: position,
                                           type: "OrderCreated", recordedAt: "2026-01-05T10:00:00Z", payload: .fields(fields), metadata: .tree(.null)))
            trees.append(try Self.event(position, "OrderCreated", document))
        }
        var results: [[String: [RowKey: [ProjectionValue]?]]] = []
        for events in [slotted, trees] {
            let workspace = RowWorkspace(tables: definition.tables, freshTables: true, cacheLimit: 1_000)
            let frame = projection.frame(over: events, at: 0)
            for index in events.indices { #expect(try projection.apply(in: frame, at: index, to: workspace)) }
            results.append(workspace.overlay)
        }
        let a5 = RowKey([.string("A"), .string("2026-01-05")])
        #expect(results[0]["sales"]?[a5] == .some([.string("A"), .string("2026-01-05"), .int(5), .int(750), .string("o2"), .string("none")]))
        #expect(results[0]["sales"]?.count == 4)
        #expect(results[0] == results[1])
    }
}
