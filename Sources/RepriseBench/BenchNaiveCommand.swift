import ArgumentParser
import RepriseCommandLine
import Foundation
import RepriseMySQL
import ReprisePostgres

/// The baseline of the benchmark: the per-event projector teams write by hand. Every event is
/// decoded whole with JSONSerialization and applied with one parameterized upsert per row it
/// touches; a commit every 100 events. Same data, same tables (`<table>_naive`) as the samples.
struct BenchNaiveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-naive",
        abstract: "Benchmark baseline: a hand-written per-event projector for the three samples.")

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var mysql: MySQLOptions

    @Option(help: "Stop after this many events (0: all).")
    var limit = 0

    func run() async throws {
        try await reportingFailures {
            let pg = try await PostgresConnection.connect(url: try postgres.resolvedURL())
            let my = try await MySQLConnection.connect(url: try mysql.resolvedURL())
            for table in ["order_summary", "customer_stats", "product_sales_daily"] {
                try await my.execute("DROP TABLE IF EXISTS \(table)_naive")
                try await my.execute("CREATE TABLE \(table)_naive LIKE \(table)")
            }
            let schema = try postgres.eventStoreSchema()
            let started = ContinuousClock.now
            var applied = 0
            try await my.begin()
            let types = "'OrderCreated','OrderItemAdded','PaymentReceived','OrderShipped','OrderCancelled','CustomerRegistered'"
            try await pg.withCursor(
                "SELECT global_position, event_type, payload::text FROM \(schema.qualifiedEvents) WHERE event_type IN (\(types)) ORDER BY global_position",
                fetchSize: 1_000
            ) { cursor in
                for try await batch in cursor {
                    for row in 0..<batch.rowCount {
                        if limit > 0 && applied >= limit { return }
                        let payload = (try? JSONSerialization.jsonObject(with: Data((batch.string(row, 2) ?? "{}").utf8))) as? [String: Any] ?? [:]
                        try await apply(type: batch.string(row, 1) ?? "", position: batch.int64(row, 0) ?? 0, payload: payload, on: my)
                        applied += 1
                        if applied % 100 == 0 {
                            try await my.commit()
                            try await my.begin()
                        }
                    }
                }
            }
            try await my.commit()
            let elapsed = ContinuousClock.now - started
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            Terminal.output("{\"events\":\(applied),\"seconds\":\(String(format: "%.3f", seconds))}")
            await pg.close()
            await my.close()
        }
    }

    private func apply(type: String, position: Int64, payload: [String: Any], on my: MySQLConnection) async throws {
        func text(_ key: String) -> MySQLValue { (payload[key] as? String).map { .string($0) } ?? .null }
        func int(_ key: String) -> MySQLValue { (payload[key] as? NSNumber).map { .int($0.int64Value) } ?? .null }
        func time(_ key: String) -> MySQLValue {
            (payload[key] as? String).map { .string(String($0.prefix(19)).replacingOccurrences(of: "T", with: " ")) } ?? .null
        }
        let at = time("occurredAt")
        switch type {
        case "OrderCreated":
            try await my.execute(
                "INSERT INTO order_summary_naive (order_id, customer_id, status, item_count, total_cents, created_at, updated_at, last_position) VALUES (?, ?, 'created', ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE customer_id = VALUES(customer_id), status = 'created', item_count = VALUES(item_count), total_cents = VALUES(total_cents), created_at = VALUES(created_at), updated_at = VALUES(updated_at), last_position = VALUES(last_position)",
                [text("orderId"), text("customerId"), int("itemCount"), int("totalCents"), at, at, .int(position)])
            try await my.execute(
                "INSERT INTO customer_stats_naive (customer_id, order_count, lifetime_value_cents, first_order_at, last_order_at) VALUES (?, 1, ?, ?, ?) ON DUPLICATE KEY UPDATE order_count = order_count + 1, lifetime_value_cents = lifetime_value_cents + VALUES(lifetime_value_cents), first_order_at = COALESCE(first_order_at, VALUES(first_order_at)), last_order_at = VALUES(last_order_at)",
                [text("customerId"), int("totalCents"), at, at])
            for item in payload["items"] as? [[String: Any]] ?? [] {
                let quantity = (item["quantity"] as? NSNumber)?.int64Value ?? 0
                let price = (item["unitPriceCents"] as? NSNumber)?.int64Value ?? 0
                try await my.execute(
                    "INSERT INTO product_sales_daily_naive (sku, day, units, revenue_cents) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE units = units + VALUES(units), revenue_cents = revenue_cents + VALUES(revenue_cents)",
                    [(item["sku"] as? String).map { .string($0) } ?? .null, .string(String((payload["occurredAt"] as? String ?? "").prefix(10))), .int(quantity), .int(quantity * price)])
            }
        case "OrderItemAdded":
            try await my.execute(
                "UPDATE order_summary_naive SET item_count = item_count + 1, total_cents = total_cents + ?, updated_at = ?, last_position = ? WHERE order_id = ?",
                [int("lineTotalCents"), at, .int(position), text("orderId")])
            try await my.execute(
                "INSERT INTO product_sales_daily_naive (sku, day, units, revenue_cents) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE units = units + VALUES(units), revenue_cents = revenue_cents + VALUES(revenue_cents)",
                [text("sku"), .string(String((payload["occurredAt"] as? String ?? "").prefix(10))), int("quantity"), int("lineTotalCents")])
        case "PaymentReceived":
            try await my.execute(
                "UPDATE order_summary_naive SET status = 'paid', paid_cents = paid_cents + ?, updated_at = ?, last_position = ? WHERE order_id = ?",
                [int("amountCents"), at, .int(position), text("orderId")])
        case "OrderShipped", "OrderCancelled":
            try await my.execute(
                "UPDATE order_summary_naive SET status = ?, updated_at = ?, last_position = ? WHERE order_id = ?",
                [.string(type == "OrderShipped" ? "shipped" : "cancelled"), at, .int(position), text("orderId")])
        case "CustomerRegistered":
            try await my.execute(
                "INSERT INTO customer_stats_naive (customer_id, name, country) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE name = VALUES(name), country = VALUES(country)",
                [text("customerId"), text("name"), text("country")])
        default:
            break
        }
    }
}
