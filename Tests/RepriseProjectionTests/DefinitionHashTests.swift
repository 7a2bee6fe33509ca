import Foundation
import Testing
@testable import RepriseProjection

@Suite("Definition hash")
struct DefinitionHashTests {
    func hash(_ yaml: String) throws -> String {
        try ProjectionFileParser.parse(yaml: yaml, file: "hash.yml").definitionHash
    }

    /// The format example written differently: no comments, other key and handler order, block
    /// instead of flow style, other quoting, redundant parentheses, `values:` for `set:`, the
    /// default `if_missing` left out, columns reordered, and another name, version and description.
    static let sameMeaning = """
        handlers:
          Registered:
            - insert:
                values:
                  customer_id: payload.customerId
                table: customers
          SomethingWithItems:
            - do:
                - upsert:
                    set:
                      units: (units + item.quantity)
                      sku: item.sku
                    table: product_sales
              for_each: payload.items
          OrderCancelled:
            - delete:
                key:
                  order_id: payload.orderId
                table: order_summary
          OrderItemAdded:
            - update:
                when: "payload.quantity>0"
                set: { total_cents: "total_cents+payload.lineTotalCents", item_count: ((item_count) + 1) }
                key: { order_id: payload.orderId }
                table: order_summary
          OrderCreated:
            - upsert:
                table: order_summary
                set:
                  created_at: payload.occurredAt
                  total_cents: payload.totalCents
                  item_count: payload.itemCount
                  status: '''created'''
                  order_id: payload.orderId
        checks:
          - no_rows:
              sql: SELECT order_id FROM order_summary WHERE total_cents < 0
              name: no_negative_totals
          - min_rows: { rows: 1, table: order_summary }
        tables:
          customers:
            primary_key: customer_id
            columns:
              customer_id: { type: VARCHAR(64), nullable: false }
          order_summary:
            indexes: [[status, created_at]]
            primary_key: [order_id]
            columns:
              total_cents: BIGINT NOT NULL DEFAULT 0
              order_id: varchar(64) not null
              item_count: { type: int, nullable: false, default: 0 }
              status: varchar(16) not null default 'created'
              created_at: datetime null
          product_sales:
            columns:
              units: bigint not null default 0
              sku: varchar(64) not null
            primary_key: [sku]
        name: renamed_projection
        version: 7
        description: Something else entirely.
        """

    @Test func sameMeaningSameHash() throws {
        #expect(try hash(Self.sameMeaning) == hash(Fixtures.formatExample))
    }

    @Test func hashIsPinned() throws {
        // A changed value here means every stored hash changes: bump versions or keep the canonical form.
        let value = try hash(Fixtures.formatExample)
        #expect(value == "557da5d990c3806d")
    }

    @Test func hashIsHex() throws {
        let value = try hash(Fixtures.formatExample)
        #expect(value.count == 16)
        #expect(value.allSatisfy { $0.isHexDigit && !$0.isUppercase })
    }

    @Test(arguments: [
        ("order_id: varchar(64) not null          # short form", "order_id: varchar(65) not null"),
        ("created_at: datetime", "created_at: datetime not null default '2026-01-01 00:00:00'"),
        ("created_at: datetime", "created_at: date"),
        ("item_count: int not null default 0", "item_count: int not null default 1"),
        ("item_count: int not null default 0", "item_count: bigint not null default 0"),
        ("item_count: int not null default 0", "item_count: int default 0"),
        ("- [status, created_at]", "- [created_at, status]"),
        ("- [status, created_at]", "- [status, created_at]\n      - [item_count]"),
        ("      created_at: datetime\n", "      created_at: datetime\n      note: text\n"),
        ("item_count: item_count + 1", "item_count: item_count + 2"),
        ("item_count: item_count + 1", "item_count: 1 + item_count"),
        ("if_missing: skip", "if_missing: error"),
        ("        when: payload.quantity > 0\n", ""),
        ("when: payload.quantity > 0", "when: payload.quantity >= 0"),
        ("status: \"'created'\"", "status: \"'Created'\""),
        ("  Registered:", "  CustomerRegistered:"),
        ("- insert: { table: customers", "- upsert: { table: customers"),
        ("rows: 1 }", "rows: 2 }"),
        ("WHERE total_cents < 0", "WHERE total_cents < -1"),
        ("name: no_negative_totals", "name: no_negative_total"),
        ("- for_each: payload.items", "- for_each: payload.lines"),
    ])
    func changesChangeTheHash(find: String, replace: String) throws {
        let original = Fixtures.formatExample
        #expect(original.contains(find), "fixture lacks \(find)")
        let changed = original.replacingOccurrences(of: find, with: replace)
        #expect(try hash(changed) != hash(original))
    }

    @Test func operationOrderMatters() throws {
        let twoOperations = """
              OrderCancelled:
                - delete: { table: order_summary, key: { order_id: payload.orderId } }
                - upsert: { table: order_summary, set: { order_id: payload.orderId, status: "'cancelled'" } }
            """
        let swapped = """
              OrderCancelled:
                - upsert: { table: order_summary, set: { order_id: payload.orderId, status: "'cancelled'" } }
                - delete: { table: order_summary, key: { order_id: payload.orderId } }
            """
        let original = "  OrderCancelled:\n    - delete: { table: order_summary, key: { order_id: payload.orderId } }"
        #expect(Fixtures.formatExample.contains(original))
        let first = Fixtures.formatExample.replacingOccurrences(of: original, with: twoOperations)
        let second = Fixtures.formatExample.replacingOccurrences(of: original, with: swapped)
        #expect(try hash(first) != hash(second))
    }

    @Test func sampleHashesAreDistinctAndStable() throws {
        let samples = try ProjectionFileParser.loadDirectory(Fixtures.projectionsDirectory)
        let first = samples.map(\.definitionHash)
        let second = try ProjectionFileParser.loadDirectory(Fixtures.projectionsDirectory).map(\.definitionHash)
        #expect(first == second)
        #expect(Set(first).count == first.count)
        // Stable across processes and releases, not only within this one: the hashes of the
        // shipped samples as first computed (a changed sample file needs a new version, and then
        // a new line here).
        let pinned: [String: String] = [
            "customer_stats": "2ec1b48158f488cc", "order_summary": "0cf0f226c276e80e", "product_sales_daily": "4257ec135b33488b",
            "category_sales_daily": "c2611d1e414cd063", "country_revenue_daily": "bb2d13b192ba3cf2",
        ]
        #expect(Dictionary(uniqueKeysWithValues: samples.map { ($0.name, $0.definitionHash) }) == pinned)
    }
}
