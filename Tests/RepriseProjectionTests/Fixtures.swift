import Foundation

/// Projection texts shared by the tests.
enum Fixtures {
    /// The projections directory of the repository.
    static var projectionsDirectory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("projections").path
    }

    /// The format example of the brief, with the two tables its last handlers write.
    static let formatExample = """
        name: order_summary          # [a-z][a-z0-9_]{0,39}
        version: 1                   # positive integer
        description: One row per order.   # optional
        tables:
          order_summary:
            columns:
              order_id: varchar(64) not null          # short form
              status: { type: varchar(16), nullable: false, default: "'created'" }   # long form
              item_count: int not null default 0
              total_cents: bigint not null default 0
              created_at: datetime
            primary_key: [order_id]
            indexes:
              - [status, created_at]
          product_sales:
            columns:
              sku: varchar(64) not null
              units: bigint not null default 0
            primary_key: [sku]
          customers:
            columns:
              customer_id: varchar(64) not null
            primary_key: [customer_id]
        handlers:
          OrderCreated:
            - upsert:
                table: order_summary
                set:
                  order_id: payload.orderId
                  status: "'created'"
                  item_count: payload.itemCount
                  total_cents: payload.totalCents
                  created_at: payload.occurredAt
          OrderItemAdded:
            - update:
                table: order_summary
                key: { order_id: payload.orderId }
                set:
                  item_count: item_count + 1
                  total_cents: total_cents + payload.lineTotalCents
                if_missing: skip
                when: payload.quantity > 0
          OrderCancelled:
            - delete: { table: order_summary, key: { order_id: payload.orderId } }
          SomethingWithItems:
            - for_each: payload.items
              do:
                - upsert: { table: product_sales, set: { sku: item.sku, units: units + item.quantity } }
          Registered:
            - insert: { table: customers, set: { customer_id: payload.customerId } }
        checks:
          - min_rows: { table: order_summary, rows: 1 }
          - no_rows: { name: no_negative_totals, sql: "SELECT order_id FROM order_summary WHERE total_cents < 0" }
        """

    static let defaultTables = """
          orders:
            columns:
              order_id: varchar(64) not null
              status: varchar(16) not null default 'created'
              total_cents: bigint not null default 0
              note: text
              created_at: datetime
            primary_key: [order_id]
          lines:
            columns:
              order_id: varchar(64) not null
              line_no: int not null
              sku: varchar(32)
            primary_key: [order_id, line_no]
        """

    static let defaultHandlers = """
          OrderCreated:
            - upsert:
                table: orders
                set:
                  order_id: payload.orderId
                  total_cents: payload.totalCents
        """

    /// A small valid projection; tests swap one section for a broken one.
    static func projection(header: String = "name: shop\nversion: 1", tables: String = defaultTables,
                           handlers: String = defaultHandlers, checks: String? = nil) -> String {
        var text = "\(header)\ntables:\n\(tables)\nhandlers:\n\(handlers)\n"
        if let checks { text += "checks:\n\(checks)\n" }
        return text
    }
}
