import Foundation
import Testing
@testable import RepriseProjection

@Suite("Projection file parsing")
struct ProjectionFileParserTests {
    @Test func formatExampleParsesToTheExpectedModel() throws {
        let definition = try ProjectionFileParser.parse(yaml: Fixtures.formatExample, file: "order_summary.yml")
        #expect(definition.name == "order_summary")
        #expect(definition.version == 1)
        #expect(definition.description == "One row per order.")
        #expect(definition.sourceFile == "order_summary.yml")
        #expect(definition.tables.map(\.name) == ["order_summary", "product_sales", "customers"])

        let table = try #require(definition.table(named: "order_summary"))
        #expect(table.columns == [
            ColumnDefinition(name: "order_id", type: .varchar(length: 64), nullable: false),
            ColumnDefinition(name: "status", type: .varchar(length: 16), nullable: false, defaultValue: .string("created")),
            ColumnDefinition(name: "item_count", type: .int, nullable: false, defaultValue: .int(0)),
            ColumnDefinition(name: "total_cents", type: .bigint, nullable: false, defaultValue: .int(0)),
            ColumnDefinition(name: "created_at", type: .datetime, nullable: true),
        ])
        #expect(table.primaryKey == ["order_id"])
        #expect(table.indexes == [["status", "created_at"]])

        let orderID = ColumnAssignment(column: "order_id", value: .field(.payload([.key("orderId")])))
        #expect(definition.handlers["OrderCreated"] == [
            .upsert(table: "order_summary", values: [
                orderID,
                ColumnAssignment(column: "status", value: .literal(.string("created"))),
                ColumnAssignment(column: "item_count", value: .field(.payload([.key("itemCount")]))),
                ColumnAssignment(column: "total_cents", value: .field(.payload([.key("totalCents")]))),
                ColumnAssignment(column: "created_at", value: .field(.payload([.key("occurredAt")]))),
            ], when: nil),
        ])
        #expect(definition.handlers["OrderItemAdded"] == [
            .update(
                table: "order_summary", key: [orderID],
                set: [
                    ColumnAssignment(column: "item_count", value: .binary(.add, .column("item_count"), .literal(.int(1)))),
                    ColumnAssignment(column: "total_cents",
                                     value: .binary(.add, .column("total_cents"), .field(.payload([.key("lineTotalCents")])))),
                ],
                when: .binary(.greater, .field(.payload([.key("quantity")])), .literal(.int(0))), ifMissing: .skip),
        ])
        #expect(definition.handlers["OrderCancelled"] == [.delete(table: "order_summary", key: [orderID], when: nil)])
        #expect(definition.handlers["SomethingWithItems"] == [
            .forEach(path: .payload([.key("items")]), operations: [
                .upsert(table: "product_sales", values: [
                    ColumnAssignment(column: "sku", value: .field(.item([.key("sku")]))),
                    ColumnAssignment(column: "units", value: .binary(.add, .column("units"), .field(.item([.key("quantity")])))),
                ], when: nil),
            ]),
        ])
        #expect(definition.handlers["Registered"] == [
            .insert(table: "customers", values: [ColumnAssignment(column: "customer_id", value: .field(.payload([.key("customerId")])))], when: nil),
        ])
        #expect(definition.checks == [
            .minimumRows(table: "order_summary", rows: 1),
            .queryReturnsNoRows(name: "no_negative_totals", sql: "SELECT order_id FROM order_summary WHERE total_cents < 0"),
        ])
        #expect(definition.eventTypes == ["OrderCreated", "OrderItemAdded", "OrderCancelled", "SomethingWithItems", "Registered"])
        #expect(definition.definitionHash.count == 16)
    }

    @Test func columnForms() throws {
        let yaml = Fixtures.projection(tables: """
              things:
                columns:
                  id: BIGINT
                  price: decimal(12, 2) not null default -0.5
                  ratio: { type: Double, default: 1 }
                  flag: Boolean default TRUE
                  day: date default '2026-01-05'
                  at: datetime default '2026-01-05 10:00:00.123456'
                  at_iso: { type: datetime, default: "'2026-01-05T10:00:00Z'" }
                  payload_json: json
                  body: text null
                  maybe: { type: varchar(5), nullable: true, default: ~ }
                  also: varchar(5) default null
                  money: decimal(5) default 12345
                primary_key: id
            """, handlers: """
              E:
                - upsert: { table: things, values: { id: 1 } }
            """)
        let table = try #require(try ProjectionFileParser.parse(yaml: yaml, file: "t.yml").table(named: "things"))
        #expect(table.columns == [
            ColumnDefinition(name: "id", type: .bigint, nullable: false),
            ColumnDefinition(name: "price", type: .decimal(precision: 12, scale: 2), nullable: false, defaultValue: decimal("-0.5")),
            ColumnDefinition(name: "ratio", type: .double, defaultValue: .double(1)),
            ColumnDefinition(name: "flag", type: .bool, defaultValue: .bool(true)),
            ColumnDefinition(name: "day", type: .date, defaultValue: .string("2026-01-05")),
            ColumnDefinition(name: "at", type: .datetime, defaultValue: .string("2026-01-05 10:00:00.123456")),
            ColumnDefinition(name: "at_iso", type: .datetime, defaultValue: .string("2026-01-05T10:00:00Z")),
            ColumnDefinition(name: "payload_json", type: .json),
            ColumnDefinition(name: "body", type: .text),
            ColumnDefinition(name: "maybe", type: .varchar(length: 5), defaultValue: .null),
            ColumnDefinition(name: "also", type: .varchar(length: 5), defaultValue: .null),
            ColumnDefinition(name: "money", type: .decimal(precision: 5, scale: 0), defaultValue: decimal("12345")),
        ])
        #expect(table.primaryKey == ["id"])
    }

    @Test func sampleProjectionsLoad() throws {
        let definitions = try ProjectionFileParser.loadDirectory(Fixtures.projectionsDirectory)
        #expect(definitions.map(\.name) == ["category_sales_daily", "country_revenue_daily", "customer_stats", "order_summary", "product_sales_daily"])
        for definition in definitions {
            #expect(definition.version == 1)
            #expect(definition.sourceFile?.hasSuffix("projections/\(definition.name).yml") == true)
            for table in definition.tables {
                #expect(definition.checks.contains(.minimumRows(table: table.name, rows: 1)))
            }
        }
        let orders = try #require(definitions.first { $0.name == "order_summary" })
        #expect(orders.eventTypes == ["OrderCreated", "OrderItemAdded", "PaymentReceived", "OrderShipped", "OrderCancelled"])
        let sales = try #require(definitions.first { $0.name == "product_sales_daily" })
        #expect(sales.requiredFields == [
            .payload([.key("items")]), .payload([.key("occurredAt")]), .payload([.key("sku")]),
            .payload([.key("quantity")]), .payload([.key("lineTotalCents")]),
        ])
    }

    @Test func sampleProjectionsComputeTheDemoReadModel() throws {
        // One OrderCreated through product_sales_daily's for_each, by hand as the engine would.
        let sales = try ProjectionFileParser.load(path: Fixtures.projectionsDirectory + "/product_sales_daily.yml")
        guard case .forEach(_, let operations)? = sales.handlers["OrderCreated"]?.first,
              case .upsert(_, let values, _)? = operations.first else {
            Issue.record("unexpected shape")
            return
        }
        let context = DictionaryContext(
            fields: ["item.sku": .string("SKU-1"), "item.quantity": .int(3), "item.unitPriceCents": .int(250),
                     "payload.occurredAt": .string("2026-01-01T00:07:15Z")],
            columns: ["units": .int(1), "revenue_cents": .int(100)])
        let row = try values.map { assignment throws(ExpressionError) in
            (assignment.column, try ExpressionEvaluator.evaluate(assignment.value, in: context))
        }
        #expect(row.map(\.0) == ["sku", "day", "units", "revenue_cents"])
        #expect(row.map(\.1) == [.string("SKU-1"), .string("2026-01-01"), .int(4), .int(850)])
    }

    @Test func loadDirectoryRejectsDuplicateNamesAndTables() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("reprise-projection-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = Fixtures.projection()
        try first.write(to: directory.appendingPathComponent("a.yml"), atomically: true, encoding: .utf8)
        try "not a projection".write(to: directory.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)
        try first.write(to: directory.appendingPathComponent(".hidden.yml"), atomically: true, encoding: .utf8)
        #expect(try ProjectionFileParser.loadDirectory(directory.path).map(\.name) == ["shop"])

        try first.write(to: directory.appendingPathComponent("b.yaml"), atomically: true, encoding: .utf8)
        do {
            _ = try ProjectionFileParser.loadDirectory(directory.path)
            Issue.record("expected a duplicate name error")
        } catch {
            #expect(error.path == "name")
            #expect(error.message.contains("a.yml") && error.message.contains("b.yaml"))
            #expect(error.message.contains("projection 'shop' is defined both in"))
        }

        let renamed = first.replacingOccurrences(of: "name: shop", with: "name: shop_two")
        try renamed.write(to: directory.appendingPathComponent("b.yaml"), atomically: true, encoding: .utf8)
        do {
            _ = try ProjectionFileParser.loadDirectory(directory.path)
            Issue.record("expected a duplicate table error")
        } catch {
            #expect(error.path == "tables.orders")
            #expect(error.message.contains("table 'orders' is declared both in"))
        }
    }

    @Test func fileErrors() {
        #expect {
            _ = try ProjectionFileParser.load(path: "/nonexistent/x.yml")
        } throws: { error in
            (error as? ProjectionFileError)?.description == "/nonexistent/x.yml: cannot read the file: no such file"
        }
        #expect {
            _ = try ProjectionFileParser.loadDirectory("/nonexistent")
        } throws: { error in
            (error as? ProjectionFileError)?.message == "cannot read the directory: no such directory"
        }
    }

    @Test func errorDescriptionFormat() {
        let error = ProjectionFileError(file: "order_summary.yml", path: "handlers.OrderItemAdded[0].update.set.total_cents",
                                        message: "unknown column 'totl_cents' in table order_summary")
        #expect(error.description ==
            "order_summary.yml: handlers.OrderItemAdded[0].update.set.total_cents: unknown column 'totl_cents' in table order_summary")
    }
}
