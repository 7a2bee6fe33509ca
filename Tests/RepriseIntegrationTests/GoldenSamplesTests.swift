import Foundation
import RepriseEngine
import Testing

/// The rows of the three samples folded from the raw events with plain Swift (JSONSerialization,
/// dictionaries), sharing no code with the engine: the reference every sample-based test
/// (golden, partitioned rebuild and live, crash series) compares whole tables with.
enum GoldenRows {
    struct Event {
        var position: Int64
        var type: String
        var payload: [String: Any]
    }

    /// Every event of the store in position order, decoded with JSONSerialization.
    static func events(_ environment: RebuildEnvironment) async throws -> [Event] {
        let result = try await environment.postgres.query(
            "SELECT global_position, event_type, payload::text FROM \(environment.storeSchema.qualifiedEvents) ORDER BY global_position")
        return try (0..<result.rowCount).map { row in
            let data = Data((result.string(row, 2) ?? "{}").utf8)
            let payload = try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
            return Event(position: result.int64(row, 0) ?? 0, type: result.string(row, 1) ?? "", payload: payload)
        }
    }

    static func text(_ any: Any?) -> String {
        switch any {
        case let number as NSNumber: return number.stringValue
        case let string as String: return string
        default: return "NULL"
        }
    }

    static func int(_ any: Any?) -> Int64 { (any as? NSNumber)?.int64Value ?? 0 }

    /// "2026-01-01T00:07:15Z" as MySQL's DATETIME(6) prints it.
    static func datetime(_ any: Any?) -> String {
        guard let iso = any as? String else { return "NULL" }
        return String(iso.prefix(19)).replacing("T", with: " ") + ".000000"
    }

    static func sorted(_ rows: [[String]]) -> [[String]] { rows.sorted { $0.lexicographicallyPrecedes($1) } }

    static func expectedOrderSummary(_ events: [Event]) -> [[String]] {
        var orders: [String: [String]] = [:]  // order_id, customer_id, status, item_count, total, paid, created, updated, last_position
        for event in events {
            let id = text(event.payload["orderId"])
            let at = datetime(event.payload["occurredAt"])
            let position = String(event.position)
            switch event.type {
            case "OrderCreated":
                orders[id] = [id, text(event.payload["customerId"]), "created", text(event.payload["itemCount"]), text(event.payload["totalCents"]), "0", at, at, position]
            case "OrderItemAdded":
                guard var row = orders[id] else { continue }
                row[3] = String((Int64(row[3]) ?? 0) + 1)
                row[4] = String((Int64(row[4]) ?? 0) + int(event.payload["lineTotalCents"]))
                row[7] = at
                row[8] = position
                orders[id] = row
            case "PaymentReceived":
                guard var row = orders[id] else { continue }
                row[2] = "paid"
                row[5] = String((Int64(row[5]) ?? 0) + int(event.payload["amountCents"]))
                row[7] = at
                row[8] = position
                orders[id] = row
            case "OrderShipped", "OrderCancelled":
                guard var row = orders[id] else { continue }
                row[2] = event.type == "OrderShipped" ? "shipped" : "cancelled"
                row[7] = at
                row[8] = position
                orders[id] = row
            default: continue
            }
        }
        return sorted(Array(orders.values))
    }

    static func expectedCustomerStats(_ events: [Event]) -> [[String]] {
        var customers: [String: [String]] = [:]  // customer_id, name, country, order_count, lifetime, first, last
        for event in events {
            let id = text(event.payload["customerId"])
            switch event.type {
            case "CustomerRegistered":
                var row = customers[id] ?? [id, "NULL", "NULL", "0", "0", "NULL", "NULL"]
                row[1] = text(event.payload["name"])
                row[2] = text(event.payload["country"])
                customers[id] = row
            case "OrderCreated":
                var row = customers[id] ?? [id, "NULL", "NULL", "0", "0", "NULL", "NULL"]
                let at = datetime(event.payload["occurredAt"])
                row[3] = String((Int64(row[3]) ?? 0) + 1)
                row[4] = String((Int64(row[4]) ?? 0) + int(event.payload["totalCents"]))
                if row[5] == "NULL" { row[5] = at }
                row[6] = at
                customers[id] = row
            default: continue
            }
        }
        return sorted(Array(customers.values))
    }

    static func expectedProductSales(_ events: [Event]) -> [[String]] {
        var sales: [String: (sku: String, day: String, units: Int64, revenue: Int64)] = [:]
        func add(_ sku: String, _ day: String, _ units: Int64, _ revenue: Int64) {
            let key = sku + "|" + day
            let current = sales[key] ?? (sku, day, 0, 0)
            sales[key] = (sku, day, current.units + units, current.revenue + revenue)
        }
        for event in events {
            let day = String(text(event.payload["occurredAt"]).prefix(10))
            switch event.type {
            case "OrderCreated":
                for item in event.payload["items"] as? [[String: Any]] ?? [] {
                    let quantity = int(item["quantity"])
                    add(text(item["sku"]), day, quantity, quantity * int(item["unitPriceCents"]))
                }
            case "OrderItemAdded":
                add(text(event.payload["sku"]), day, int(event.payload["quantity"]), int(event.payload["lineTotalCents"]))
            default: continue
            }
        }
        return sorted(sales.values.map { [$0.sku, $0.day, String($0.units), String($0.revenue)] })
    }

    /// The expected rows of every sample table, by table name, for the store's events now.
    static func tables(_ environment: RebuildEnvironment) async throws -> [String: [[String]]] {
        let events = try await events(environment)
        let lookupEvents = try await LookupGolden.events(environment)
        return [
            "order_summary": expectedOrderSummary(events), "customer_stats": expectedCustomerStats(events),
            "product_sales_daily": expectedProductSales(events),
            "category_sales_daily": LookupGolden.categorySales(lookupEvents), "country_revenue_daily": LookupGolden.countryRevenue(lookupEvents),
        ]
    }
}

/// The three sample projections on a seeded demo history, against the golden rows: an
/// independent second opinion.
@Suite("Golden results of the sample projections (real servers)")
struct GoldenSamplesTests {
    @Test func samplesMatchIndependentlyComputedRows() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 6_000, seed: 77)
            let samples = try RebuildEnvironment.samples()
            #expect(Set(samples.map { $0.name }) == ["order_summary", "customer_stats", "product_sales_daily", "category_sales_daily", "country_revenue_daily"])
            let results = try await environment.engine { $0.chunkSize = 900 }.rebuild(samples.map { .file($0) })
            #expect(results.allSatisfy { $0.swapped })
            let events = try await GoldenRows.events(environment)

            let orderSummary = GoldenRows.expectedOrderSummary(events)
            #expect(orderSummary.count > 500)
            #expect(try await environment.rows("order_summary") == orderSummary)
            #expect(Set(orderSummary.map { $0[2] }) == ["created", "paid", "shipped", "cancelled"])

            let customerStats = GoldenRows.expectedCustomerStats(events)
            #expect(try await environment.rows("customer_stats") == customerStats)

            let productSales = GoldenRows.expectedProductSales(events)
            #expect(productSales.count > 50)
            #expect(try await environment.rows("product_sales_daily") == productSales)
        }
    }
}
