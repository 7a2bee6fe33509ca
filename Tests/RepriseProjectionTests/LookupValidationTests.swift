import Foundation
import Testing
@testable import RepriseProjection

/// Lookups in projection files: the syntax, the model they parse to, and a precise error (file,
/// field path, cause) for every malformed lookup.
@Suite("Lookups in projection files")
struct LookupValidationTests {
    /// A projection with orders, customers and a revenue table; `handler` is the PaymentReceived list.
    func yaml(_ handler: String, partitionKey: String? = nil) -> String {
        """
        name: shop
        version: 1
        tables:
          orders:
            columns:
              order_id: varchar(64) not null
              customer_id: varchar(64)
              paid_cents: bigint not null default 0
            primary_key: [order_id]
          customers:
            columns:
              customer_id: varchar(64) not null
              country: varchar(8)
            primary_key: [customer_id]
          revenue:
            columns:
              country: varchar(8) not null
              day: date not null
              paid_cents: bigint not null default 0
            primary_key: [country, day]
        \(partitionKey.map { "partition_key: \($0)" } ?? "")
        handlers:
          PaymentReceived:
        \(handler)
        """
    }

    let chained = """
            - lookup: { as: ord, table: orders, key: { order_id: payload.orderId } }
            - lookup: { as: cust, table: customers, key: { customer_id: ord.customer_id }, if_missing: skip }
            - upsert: { table: revenue, set: { country: cust.country, day: date(payload.at), paid_cents: paid_cents + payload.cents } }
            - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: ord.paid_cents + payload.cents } }
        """

    @Test func aChainedLookupParsesToTheModel() throws {
        let definition = try ProjectionFileParser.parse(yaml: yaml(chained), file: "test.yml")
        let operations = try #require(definition.handlers["PaymentReceived"])
        #expect(operations.count == 4)
        #expect(operations[0] == .lookup(Lookup(alias: "ord", table: "orders",
                                                key: [ColumnAssignment(column: "order_id", value: .field(.payload([.key("orderId")])))])))
        #expect(operations[1] == .lookup(Lookup(alias: "cust", table: "customers",
                                                key: [ColumnAssignment(column: "customer_id", value: .lookup(alias: "ord", column: "customer_id"))],
                                                ifMissing: .skip)))
        guard case .upsert(_, let values, _) = operations[2] else { Issue.record("expected an upsert"); return }
        #expect(values.contains(ColumnAssignment(column: "country", value: .lookup(alias: "cust", column: "country"))))
        // The payload fields lookups read are decoded too.
        #expect(definition.requiredFields.contains(.payload([.key("orderId")])))
    }

    @Test func expressionsPrintAndParseLookupColumns() throws {
        let expression = try ExpressionParser.parse("coalesce(cust.country, 'unknown')")
        #expect(expression == .call(.coalesce, [.lookup(alias: "cust", column: "country"), .literal(.string("unknown"))]))
        #expect(expression.description == "coalesce(cust.country, 'unknown')")
        #expect(throws: ExpressionError.self) { try ExpressionParser.parse("cust.") }
        #expect(throws: ExpressionError.self) { try ExpressionParser.parse("cust.address.city") }
    }

    @Test func ifMissingTakesNullSkipOrError() throws {
        for (text, policy) in [("null", LookupMissingPolicy.null), ("skip", .skip), ("error", .error)] {
            let handler = """
                    - lookup: { as: ord, table: orders, key: { order_id: payload.orderId }, if_missing: \(text) }
                    - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: ord.paid_cents } }
                """
            let definition = try ProjectionFileParser.parse(yaml: yaml(handler), file: "test.yml")
            guard case .lookup(let lookup)? = definition.handlers["PaymentReceived"]?.first else { Issue.record("no lookup"); continue }
            #expect(lookup.ifMissing == policy)
        }
        expectFileError(yaml("""
                - lookup: { as: ord, table: orders, key: { order_id: payload.orderId }, if_missing: ignore }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: 1 } }
            """), path: "handlers.PaymentReceived[0].lookup.if_missing", "if_missing of a lookup must be null, skip or error")
    }

    @Test func lookupsArePartOfTheDefinitionHash() throws {
        let base = try ProjectionFileParser.parse(yaml: yaml(chained), file: "test.yml").definitionHash
        let otherPolicy = try ProjectionFileParser.parse(yaml: yaml(chained.replacing("if_missing: skip", with: "if_missing: error")), file: "test.yml")
        let otherKey = try ProjectionFileParser.parse(yaml: yaml(chained.replacing("payload.orderId } }\n", with: "payload.order } }\n")), file: "test.yml")
        #expect(otherPolicy.definitionHash != base)
        #expect(otherKey.definitionHash != base)
        let reformatted = try ProjectionFileParser.parse(
            yaml: yaml(chained.replacing("{ as: ord, table: orders,", with: "{ table: orders,   as: ord,")), file: "test.yml")
        #expect(reformatted.definitionHash == base)
    }

    @Test func unknownTable() {
        expectFileError(yaml("""
                - lookup: { as: ord, table: order, key: { order_id: payload.orderId } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: 1 } }
            """), path: "handlers.PaymentReceived[0].lookup.table", "unknown table 'order' (did you mean 'orders'?)")
    }

    @Test func keyMustBeThePrimaryKey() {
        expectFileError(yaml("""
                - lookup: { as: ord, table: orders, key: { customer_id: payload.customerId } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: 1 } }
            """), path: "handlers.PaymentReceived[0].lookup.key.customer_id",
            "'customer_id' is not a primary key column of table orders (primary key: order_id)")
        expectFileError(yaml("""
                - lookup: { as: r, table: revenue, key: { country: payload.country } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: 1 } }
            """), path: "handlers.PaymentReceived[0].lookup.key", "key must give every primary key column of table revenue (country, day); missing 'day'")
        expectFileError(yaml("""
                - lookup: { as: ord, table: orders, key: { order_id: paid_cents } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: 1 } }
            """), path: "handlers.PaymentReceived[0].lookup.key.order_id", "key expressions may only read the event, not column 'paid_cents' (the columns of this handler's lookups")
    }

    @Test func cycle() {
        expectFileError(yaml("""
                - lookup: { as: ord, table: orders, key: { order_id: ord.order_id } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: 1 } }
            """), path: "handlers.PaymentReceived[0].lookup.key.order_id", "lookup cycle: 'ord' -> 'ord'")
        expectFileError(yaml("""
                - lookup: { as: cust, table: customers, key: { customer_id: ord.customer_id } }
                - lookup: { as: ord, table: orders, key: { order_id: cust.customer_id } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: 1 } }
            """), path: "handlers.PaymentReceived[0].lookup.key.customer_id", "lookup cycle: 'cust' -> 'ord' -> 'cust'")
    }

    @Test func unknownAlias() {
        expectFileError(yaml("""
                - lookup: { as: ord, table: orders, key: { order_id: payload.orderId } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { customer_id: orders.customer_id } }
            """), path: "handlers.PaymentReceived[1].update.set.customer_id", "unknown lookup 'orders' (lookups of this handler: ord)")
        expectFileError(yaml("""
                - update: { table: orders, key: { order_id: payload.orderId }, set: { customer_id: ord.customer_id } }
            """), path: "handlers.PaymentReceived[0].update.set.customer_id", "unknown lookup 'ord' (this handler has no lookups)")
        expectFileError(yaml("""
                - lookup: { as: ord, table: orders, key: { order_id: payload.orderId } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { customer_id: ord.customer } }
            """), path: "handlers.PaymentReceived[1].update.set.customer_id", "unknown column 'customer' of lookup 'ord' (table orders)")
    }

    @Test func useBeforeDefinition() {
        expectFileError(yaml("""
                - update: { table: orders, key: { order_id: payload.orderId }, set: { customer_id: ord.customer_id } }
                - lookup: { as: ord, table: orders, key: { order_id: payload.orderId } }
            """), path: "handlers.PaymentReceived[0].update.set.customer_id",
            "lookup 'ord' is used before it is defined (at handlers.PaymentReceived[1])")
        expectFileError(yaml("""
                - lookup: { as: cust, table: customers, key: { customer_id: ord.customer_id } }
                - lookup: { as: ord, table: orders, key: { order_id: payload.orderId } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: 1 } }
            """), path: "handlers.PaymentReceived[0].lookup.key.customer_id", "lookup 'ord' is used before it is defined (at handlers.PaymentReceived[1])")
        // A lookup inside for_each is not visible after it.
        expectFileError(yaml("""
                - for_each: payload.lines
                  do:
                    - lookup: { as: ord, table: orders, key: { order_id: item.orderId } }
                    - update: { table: orders, key: { order_id: item.orderId }, set: { paid_cents: ord.paid_cents + 1 } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { customer_id: ord.customer_id } }
            """), path: "handlers.PaymentReceived[1].update.set.customer_id",
            "lookup 'ord' is used before it is defined (at handlers.PaymentReceived[0].do[0])")
    }

    @Test func aliasesAreNamesAndUnique() {
        expectFileError(yaml("""
                - lookup: { as: ord, table: orders, key: { order_id: payload.orderId } }
                - lookup: { as: ord, table: orders, key: { order_id: payload.other } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: 1 } }
            """), path: "handlers.PaymentReceived[1].lookup.as", "lookup alias 'ord' is already defined at handlers.PaymentReceived[0]")
        expectFileError(yaml("""
                - lookup: { as: payload, table: orders, key: { order_id: payload.orderId } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: 1 } }
            """), path: "handlers.PaymentReceived[0].lookup.as", "'payload' is a reserved word")
        expectFileError(yaml("""
                - lookup: { as: Ord, table: orders, key: { order_id: payload.orderId } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: 1 } }
            """), path: "handlers.PaymentReceived[0].lookup.as", "invalid lookup alias 'Ord'")
        expectFileError(yaml("""
                - lookup: { as: ord, table: orders, key: { order_id: payload.orderId } }
            """), path: "handlers.PaymentReceived", "a list of only lookups does nothing")
        expectFileError(yaml("""
                - lookup: { as: ord, table: orders, key: { order_id: payload.orderId }, when: true }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: 1 } }
            """), path: "handlers.PaymentReceived[0].lookup.when", "unknown key 'when'")
    }

    @Test func lookupColumnsServeKeysOfWrites() throws {
        // Keys computed from a lookup are allowed (rows of another table, decided by a looked-up row).
        let definition = try ProjectionFileParser.parse(yaml: yaml(chained), file: "test.yml")
        guard case .upsert(_, let values, _)? = definition.handlers["PaymentReceived"]?[2] else { Issue.record("no upsert"); return }
        #expect(values.first { $0.column == "country" }?.value == .lookup(alias: "cust", column: "country"))
    }

    @Test func partitionsRefuseLookupsNotKeyedByThePartitionKey() throws {
        let unsafe = try ProjectionFileParser.parse(yaml: yaml(chained, partitionKey: "payload.orderId"), file: "test.yml")
        let reason = try #require(unsafe.partitionUnsafeLookup)
        #expect(reason.contains("lookup 'cust' (handlers.PaymentReceived[1]) reads table customers by { customer_id: ord.customer_id }, not by the partition key payload.orderId"))
        let safe = try ProjectionFileParser.parse(yaml: yaml("""
                - lookup: { as: ord, table: orders, key: { order_id: payload.orderId } }
                - update: { table: orders, key: { order_id: payload.orderId }, set: { paid_cents: ord.paid_cents + payload.cents } }
            """, partitionKey: "payload.orderId"), file: "test.yml")
        #expect(safe.partitionUnsafeLookup == nil)
    }

    @Test func theSamplesParse() throws {
        let directory = Fixtures.projectionsDirectory
        let categories = try ProjectionFileParser.load(path: directory + "/category_sales_daily.yml")
        #expect(categories.tables.map(\.name).sorted() == ["category_products", "category_sales_daily"])
        let countries = try ProjectionFileParser.load(path: directory + "/country_revenue_daily.yml")
        #expect(countries.partitionKey == nil)
        #expect(countries.partitionUnsafeLookup?.contains("this event type has no partition key") == true)
        #expect(try ProjectionFileParser.loadDirectory(directory).count == 5)
    }
}
