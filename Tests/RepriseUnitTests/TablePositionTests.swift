@testable import RepriseEngine
import RepriseProjection
import Testing

/// A workspace keeps its layers per table position and a chunk's first pass collects keys per
/// table position (no table name hashed per row): two tables with equal keys must stay apart,
/// the name and the position must reach the same rows, and keys must come back under the right
/// table's name.
@Suite("Tables by position (no server)")
struct TablePositionTests {
    static let yaml = """
        name: positions
        version: 1
        tables:
          orders:
            columns:
              id: varchar(32) not null
              n: bigint not null default 0
            primary_key: [id]
          customers:
            columns:
              id: varchar(32) not null
              name: varchar(32)
            primary_key: [id]
        handlers:
          OrderCreated:
            - upsert: { table: orders, set: { id: payload.id, n: n + 1 } }
            - upsert: { table: customers, set: { id: payload.customer, name: payload.name } }
          CustomerRenamed:
            - update: { table: customers, key: { id: payload.customer }, set: { name: payload.name } }
        """

    static func event(_ position: Int64, _ type: String, _ payload: String) throws -> ProjectionEvent {
        ProjectionEvent(position: position, eventID: "e\(position)", streamID: "s", streamVersion: position, type: type,
                        recordedAt: "2026-01-05T10:00:00Z", payload: try JSONFieldDecoder(paths: [[]]).decode(payload))
    }

    private let key = RowKey([.string("same")])

    @Test func tablesWithEqualKeysStayApartAndNamesReachTheSamePositions() throws {
        let definition = try ProjectionFileParser.parse(yaml: Self.yaml, file: "positions.yml")
        let workspace = RowWorkspace(tables: definition.tables, freshTables: false, cacheLimit: 1_000)
        #expect(workspace.tables.map(\.name) == ["orders", "customers"])
        #expect(workspace.tables.map(\.position) == [0, 1])
        workspace.put("orders", key, [.string("same"), .int(1)])
        workspace.put(1, key, [.string("same"), .string("Ada")])
        guard case .present(let order) = workspace.lookup(0, key), case .present(let customer) = workspace.lookup("customers", key) else {
            Issue.record("a row written by name or by position is not found by the other")
            return
        }
        #expect(order == [.string("same"), .int(1)])
        #expect(customer == [.string("same"), .string("Ada")])
        #expect(Set(workspace.overlay.keys) == ["orders", "customers"])
        workspace.stageOverlay()
        #expect(workspace.pending["customers"]?[key] == .some([.string("same"), .string("Ada")]))
        workspace.commitPending()
        // Committed: the cache answers per table; another key of one table is not known.
        if case .present(let cached) = workspace.lookup(1, key) { #expect(cached[1] == .string("Ada")) } else { Issue.record("the committed row is not cached") }
        if case .unknown = workspace.lookup(0, RowKey([.string("other")])) {} else { Issue.record("an unseen key of a table that is not fresh must be asked for") }
        if case .unknown = workspace.lookup("no_such_table", key) {} else { Issue.record("an unknown table name must read as unknown") }
    }

    @Test func stagingSplitsNewRowsPerTable() throws {
        let definition = try ProjectionFileParser.parse(yaml: Self.yaml, file: "positions.yml")
        let workspace = RowWorkspace(tables: definition.tables, freshTables: true, cacheLimit: 1_000)
        workspace.put(0, key, [.string("same"), .int(1)])
        workspace.put(1, key, [.string("same"), .null])
        workspace.put(1, RowKey([.string("gone")]), nil)
        let split = workspace.stageOverlaySeparatingNewRows()
        #expect(split.map(\.layout.name) == ["orders", "customers"])
        #expect(split[0].new == [[.string("same"), .int(1)]])
        #expect(split[1].new == [[.string("same"), .null]])
        #expect(split[1].others.count == 1)  // the delete goes as a statement
    }

    @Test func keysAreCollectedUnderTheirOwnTable() throws {
        let definition = try ProjectionFileParser.parse(yaml: Self.yaml, file: "positions.yml")
        let projection = DeclarativeProjection(definition)
        let workspace = RowWorkspace(tables: definition.tables, freshTables: true, cacheLimit: 1_000)
        let events = [
            try Self.event(1, "OrderCreated", #"{"id":"o1","customer":"c1","name":"Ada"}"#),
            try Self.event(2, "Ignored", #"{}"#),
            try Self.event(3, "CustomerRenamed", #"{"customer":"c2","name":"Bob"}"#),
        ]
        #expect(projection.handles("OrderCreated") && projection.handles("CustomerRenamed") && !projection.handles("Ignored"))
        var keys = TableKeys(workspace.tables)
        for index in events.indices { projection.keysTouched(by: events, at: index, workspace: workspace, into: &keys) }
        #expect(keys.byTable[0] == [RowKey([.string("o1")])])
        #expect(keys.byTable[1] == [RowKey([.string("c1")]), RowKey([.string("c2")])])
        #expect(keys.named() == ["orders": [RowKey([.string("o1")])], "customers": [RowKey([.string("c1")]), RowKey([.string("c2")])]])
        #expect(keys.lookupTables.isEmpty)
        // The name-keyed form (traces) gives the same keys.
        var named: [String: Set<RowKey>] = [:]
        var lookupTables: Set<String> = []
        for event in events { projection.keysTouched(by: event, workspace: workspace, into: &named, lookupTables: &lookupTables) }
        #expect(named == keys.named())
        // Applied in place from the step's array: each event's rows land in their own table.
        for index in events.indices { #expect(try projection.apply(events, at: index, to: workspace)) }
        #expect(workspace.overlay["orders"]?[RowKey([.string("o1")])] == .some([.string("o1"), .int(1)]))
        #expect(workspace.overlay["customers"]?[RowKey([.string("c1")])] == .some([.string("c1"), .string("Ada")]))
        #expect(workspace.overlay["customers"]?[RowKey([.string("c2")])] == nil)  // update of a missing row: nothing
    }

    /// One frame per pass, moved from event to event: each event must read its own decoded slots.
    @Test func aFrameMovedAcrossEventsReadsEachEventsOwnSlots() throws {
        let definition = try ProjectionFileParser.parse(yaml: Self.yaml, file: "positions.yml")
        let projection = DeclarativeProjection(definition)
        let workspace = RowWorkspace(tables: definition.tables, freshTables: true, cacheLimit: 1_000)
        let decoder = JSONFieldDecoder(paths: [[.key("id")], [.key("customer")], [.key("name")]])
        let layout = try #require(decoder.slotLayout)
        func event(_ position: Int64, _ type: String, _ document: String) throws -> ProjectionEvent {
            var copy = document
            let fields = try copy.withUTF8 { try decoder.decodeFields(UnsafeRawBufferPointer($0), layout: layout) }
            return ProjectionEvent(position: position, transactionID: "1", eventID: "e\(position)", streamID: "s", streamVersion: position, type: type,
                                   recordedAt: "2026-01-05T10:00:00Z", payload: .fields(fields), metadata: .tree(.null))
        }
        let events = [
            try event(1, "OrderCreated", #"{"id":"o1","customer":"c1","name":"Ada"}"#),
            try event(2, "CustomerRenamed", #"{"customer":"c1","name":"Bea"}"#),
            try event(3, "OrderCreated", #"{"id":"o2","customer":"c2","name":"Cy"}"#),
        ]
        var keys = TableKeys(workspace.tables)
        let keyFrame = projection.frame(over: events, at: 0)
        for index in events.indices { projection.keysTouched(in: keyFrame, at: index, workspace: workspace, into: &keys) }
        #expect(keys.byTable[0] == [RowKey([.string("o1")]), RowKey([.string("o2")])])
        #expect(keys.byTable[1] == [RowKey([.string("c1")]), RowKey([.string("c2")])])
        let applyFrame = projection.frame(over: events, at: 0)
        for index in events.indices { #expect(try projection.apply(in: applyFrame, at: index, to: workspace)) }
        #expect(workspace.overlay["customers"]?[RowKey([.string("c1")])] == .some([.string("c1"), .string("Bea")]))
        #expect(workspace.overlay["customers"]?[RowKey([.string("c2")])] == .some([.string("c2"), .string("Cy")]))
        #expect(workspace.overlay["orders"]?[RowKey([.string("o2")])] == .some([.string("o2"), .int(1)]))
    }
}
