@testable import RepriseEngine
import RepriseProjection
import Testing

/// Merge tables (docs/merge-tables.md): which tables qualify, and that a chunk's merged change
/// to a row it never read is what reading the row would have written, for a new row (the row
/// as if new) and as MySQL's update of an existing row.
@Suite("Merge tables (no server)")
struct MergeTablesUnitTests {
    static func yaml(columns: String = "", handlers: String) -> String {
        """
        name: stats
        version: 1
        tables:
          stats:
            columns:
              id: varchar(16) not null
              name: varchar(8)
              orders: int not null default 0
              total: bigint not null default 0
              first_at: datetime
              last_at: datetime
        \(columns)
            primary_key: [id]
        handlers:
        \(handlers)
        """
    }

    static let counting = """
          Registered:
            - upsert: { table: stats, set: { id: payload.id, name: payload.name } }
          Ordered:
            - upsert:
                table: stats
                set:
                  id: payload.id
                  orders: orders + 1
                  total: payload.cents + total
                  first_at: coalesce(first_at, payload.at)
                  last_at: payload.at
        """

    static func mergeTables(_ yaml: String) throws -> Set<String> {
        let definition = try ProjectionFileParser.parse(yaml: yaml, file: "stats.yml")
        return Set(DeclarativeProjection(definition).mergeTablePositions.map { definition.tables[$0].name })
    }

    @Test func tablesOfUpsertsThatSetAddOrFillAreMergeTables() throws {
        #expect(try Self.mergeTables(Self.yaml(handlers: Self.counting)) == ["stats"])
        let samples = try ProjectionFileParser.loadDirectory(ProjectionCatalogTests.samples)
        var merged: [String: Set<String>] = [:]
        for sample in samples { merged[sample.name] = Set(DeclarativeProjection(sample).mergeTablePositions.map { sample.tables[$0].name }) }
        #expect(merged["customer_stats"] == ["customer_stats"])
        #expect(merged["product_sales_daily"] == ["product_sales_daily"])
        #expect(merged["order_summary"] == [])  // updates read the order
        #expect(merged["category_sales_daily"] == [])  // lookups read rows
    }

    @Test(arguments: [
        ("a when", "  X:\n    - upsert: { table: stats, set: { id: payload.id, orders: orders + 1 }, when: payload.ok }"),
        ("an update", "  X:\n    - update: { table: stats, key: { id: payload.id }, set: { last_at: payload.at } }"),
        ("a delete", "  X:\n    - delete: { table: stats, key: { id: payload.id } }"),
        ("a product", "  X:\n    - upsert: { table: stats, set: { id: payload.id, total: total * 2 } }"),
        ("another column", "  X:\n    - upsert: { table: stats, set: { id: payload.id, total: orders + 1 } }"),
        ("a sum filled", "  X:\n    - upsert: { table: stats, set: { id: payload.id, orders: \"coalesce(orders, 1)\" } }"),
        ("a nullable counter", "  X:\n    - upsert: { table: stats, set: { id: payload.id, first_at: first_at + 1 } }"),
        ("a lookup", "  X:\n    - lookup: { as: s, table: stats, key: { id: payload.other } }\n    - upsert: { table: stats, set: { id: payload.id, name: s.name } }"),
    ])
    func anOperationThatReadsTheRowKeepsItsTableOut(_ case: (String, String)) throws {
        #expect(try Self.mergeTables(Self.yaml(handlers: Self.counting + "\n" + `case`.1)).isEmpty, "\(`case`.0)")
    }

    @Test func aCounterWithAnotherDefaultIsNoMergeTable() throws {
        let yaml = Self.yaml(handlers: Self.counting).replacingOccurrences(of: "orders: int not null default 0", with: "orders: int not null default 1")
        #expect(try Self.mergeTables(yaml).isEmpty)
    }

    static func event(_ position: Int64, _ type: String, _ payload: String) throws -> ProjectionEvent {
        ProjectionEvent(position: position, eventID: "e\(position)", streamID: "s", streamVersion: position, type: type,
                        recordedAt: "2026-01-05T10:00:00Z", payload: try JSONFieldDecoder(paths: [[]]).decode(payload))
    }

    static let events: [(String, String)] = [
        ("Ordered", #"{"id":"a","cents":500,"at":"2026-01-05T10:00:00Z"}"#),
        ("Registered", #"{"id":"a","name":"Ada"}"#),
        ("Ordered", #"{"id":"a","cents":250,"at":"2026-01-06T10:00:00Z"}"#),
        ("Registered", #"{"id":"b","name":"Bo"}"#),
        ("Ordered", #"{"id":"c","cents":7,"at":null}"#),
        ("Ordered", #"{"id":"c","cents":8,"at":"2026-01-07T10:00:00Z"}"#),
    ]

    /// Applies `events` to a fresh workspace, merging or not.
    static func workspace(merging: Bool, fresh: Bool = true) throws -> (RowWorkspace, DeclarativeProjection) {
        let definition = try ProjectionFileParser.parse(yaml: yaml(handlers: counting), file: "stats.yml")
        let projection = DeclarativeProjection(definition)
        let workspace = RowWorkspace(tables: definition.tables, freshTables: fresh, cacheLimit: 1_000)
        if merging { workspace.mergeUnreadRows(of: projection.mergeTablePositions) }
        for (offset, event) in events.enumerated() {
            let event = try Self.event(Int64(offset + 1), event.0, event.1)
            var keys: [String: Set<RowKey>] = [:], lookupTables: Set<String> = []
            projection.keysTouched(by: event, workspace: workspace, into: &keys, lookupTables: &lookupTables)
            // A merge asks for no row; without merging, a fresh table's rows are known absent anyway.
            if merging { #expect(keys.isEmpty) }
            #expect(try projection.apply(event, to: workspace))
        }
        return (workspace, projection)
    }

    @Test func aNewKeysMergedRowIsTheRowReadingWouldWrite() throws {
        let (read, _) = try Self.workspace(merging: false)
        let expected = Set(read.overlay["stats"]?.values.compactMap { $0 } ?? [])
        #expect(expected.count == 3)
        let (merged, _) = try Self.workspace(merging: true)
        #expect(merged.overlay["stats"] == nil, "merge rows are not rows read")
        let staged = merged.stageOverlaySeparatingNewRows()
        #expect(staged.count == 1 && staged[0].merges.isEmpty, "a fresh table's keys are all new: loaded whole")
        #expect(Set(staged.first?.new ?? []) == expected)
    }

    /// A resumed build knows no key new: every merge row goes by a merging upsert. Replayed on
    /// rows that exist (as MySQL applies `ON DUPLICATE KEY UPDATE`), it gives what applying the
    /// events to those rows gives.
    @Test func anExistingRowMergedByTheUpdateClausesIsTheRowReadingWouldWrite() throws {
        let (merged, _) = try Self.workspace(merging: true, fresh: false)
        let staged = merged.stageOverlaySeparatingNewRows()
        let batches = staged.flatMap(\.merges)
        let noneNew = staged.allSatisfy { $0.new.isEmpty }
        #expect(noneNew)
        #expect(batches.reduce(0) { $0 + $1.rows.count } == 3)
        // b was only registered: its counters are kept, not set to their defaults.
        let registeredOnly = try #require(batches.first { $0.rows.contains { $0[0] == .string("b") } })
        #expect(registeredOnly.operations == [.set, .set, .keep, .keep, .keep, .keep])
        let layout = TableLayout(try ProjectionFileParser.parse(yaml: Self.yaml(handlers: Self.counting), file: "stats.yml").tables[0])
        #expect(ReadModelTables.mergeSuffix(layout, registeredOnly.operations) == "ON DUPLICATE KEY UPDATE `name` = VALUES(`name`)")
        let ordered = try #require(batches.first { $0.rows.contains { $0[0] == .string("c") } })
        #expect(ReadModelTables.mergeSuffix(layout, ordered.operations)
            == "ON DUPLICATE KEY UPDATE `orders` = `orders` + VALUES(`orders`), `total` = `total` + VALUES(`total`), "
            + "`first_at` = COALESCE(`first_at`, VALUES(`first_at`)), `last_at` = VALUES(`last_at`)")

        // Rows MySQL holds before: the update clauses applied to them, against the events applied to them.
        let existing: [ProjectionValue] = [.string("?"), .string("Old"), .int(4), .int(1_000), .string("2025-12-01T00:00:00Z"), .null]
        let definition = try ProjectionFileParser.parse(yaml: Self.yaml(handlers: Self.counting), file: "stats.yml")
        let projection = DeclarativeProjection(definition)
        let reading = RowWorkspace(tables: definition.tables, freshTables: false, cacheLimit: 1_000)
        for id in ["a", "b", "c"] {
            var row = existing
            row[0] = .string(id)
            reading.remember("stats", fetched: [RowKey([.string(id)]): row], requested: [RowKey([.string(id)])])
        }
        for (offset, event) in Self.events.enumerated() {
            #expect(try projection.apply(try Self.event(Int64(offset + 1), event.0, event.1), to: reading))
        }
        for batch in batches {
            for values in batch.rows {
                var row = existing
                row[0] = values[0]
                for (index, operation) in batch.operations.enumerated() where index > 0 {
                    switch operation {
                    case .keep: break
                    case .set: row[index] = values[index]
                    case .add:
                        guard case .int(let old) = row[index], case .int(let sum) = values[index] else { Issue.record("not integers"); continue }
                        row[index] = .int(old + sum)
                    case .coalesce: if case .null = row[index] { row[index] = values[index] }
                    }
                }
                #expect(reading.overlay["stats"]?[RowKey([values[0]])] == .some(row), "\(values[0])")
            }
        }
    }

    @Test func aFailingOperationLeavesTheMergeRowAsItWas() throws {
        let (workspace, projection) = try Self.workspace(merging: true)
        // A name too long for varchar(8), then an amount that is no integer: both fail, nothing changes.
        #expect(throws: EngineError.self) {
            try projection.apply(try Self.event(10, "Registered", #"{"id":"a","name":"Ada Lovelace"}"#), to: workspace)
        }
        let fractional = try Self.event(11, "Ordered", #"{"id":"a","cents":1.5,"at":"2026-01-08T10:00:00Z"}"#)
        do {
            _ = try projection.apply(fractional, to: workspace)
            Issue.record("a fractional amount merged into an integer counter")
        } catch {
            #expect(error.message.contains("only integers"), "\(error.message)")
        }
        let staged = workspace.stageOverlaySeparatingNewRows()
        let a = try #require(staged.first?.new.first { $0[0] == .string("a") })
        #expect(a[1] == .string("Ada") && a[2] == .int(2) && a[3] == .int(750))
        #expect(a[5] == .string("2026-01-06T10:00:00Z"))
    }
}
