import Foundation
import RepriseEventStore
import ReprisePostgres

/// The two lookup samples folded from the raw events with plain Swift (JSONSerialization,
/// dictionaries), independently of the engine and its projection language.
enum LookupGolden {
    struct Event {
        var type: String
        var payload: [String: Any]
    }

    static func events(_ environment: RebuildEnvironment) async throws -> [Event] {
        let result = try await environment.postgres.query(
            "SELECT event_type, payload::text FROM \(environment.storeSchema.qualifiedEvents) ORDER BY global_position")
        return try (0..<result.rowCount).map { row in
            let payload = try JSONSerialization.jsonObject(with: Data((result.string(row, 1) ?? "{}").utf8)) as? [String: Any] ?? [:]
            return Event(type: result.string(row, 0) ?? "", payload: payload)
        }
    }

    private static func string(_ any: Any?) -> String? { any as? String }
    private static func int(_ any: Any?) -> Int64 { (any as? NSNumber)?.int64Value ?? 0 }
    private static func day(_ payload: [String: Any]) -> String { String((string(payload["occurredAt"]) ?? "").prefix(10)) }

    /// Sums per (group, day): two figures each.
    private struct Totals {
        var sums: [String: (group: String, day: String, first: Int64, second: Int64)] = [:]
        mutating func add(_ group: String, _ day: String, first: Int64 = 0, second: Int64 = 0) {
            let current = sums[group + "|" + day] ?? (group, day, 0, 0)
            sums[group + "|" + day] = (group, day, current.first + first, current.second + second)
        }
        var rows: [[String]] {
            sums.values.map { [$0.group, $0.day, String($0.first), String($0.second)] }.sorted { $0.lexicographicallyPrecedes($1) }
        }
    }

    /// `category_sales_daily`: category, day, units, revenue_cents. A line's category is its
    /// product's category when the line was placed ('unknown' for a product never added).
    static func categorySales(_ events: [Event]) -> [[String]] {
        var categories: [String: String] = [:]
        var totals = Totals()
        for event in events {
            let payload = event.payload
            switch event.type {
            case "ProductAdded":
                if let sku = string(payload["sku"]) { categories[sku] = string(payload["category"]) }
            case "OrderCreated":
                for item in payload["items"] as? [[String: Any]] ?? [] {
                    let quantity = int(item["quantity"])
                    let category = string(item["sku"]).flatMap { categories[$0] } ?? "unknown"
                    totals.add(category, day(payload), first: quantity, second: quantity * int(item["unitPriceCents"]))
                }
            case "OrderItemAdded":
                let category = string(payload["sku"]).flatMap { categories[$0] } ?? "unknown"
                totals.add(category, day(payload), first: int(payload["quantity"]), second: int(payload["lineTotalCents"]))
            default:
                continue
            }
        }
        return totals.rows
    }

    /// `country_revenue_daily`: country, day, paid_cents, refunded_cents. A payment counts for its
    /// order's customer's country; a cancellation refunds what was paid for the order until then,
    /// on the cancellation's day, when that is more than nothing. Orders never created are left out.
    static func countryRevenue(_ events: [Event]) -> [[String]] {
        var countries: [String: String] = [:]
        var orders: [String: (customer: String?, paid: Int64)] = [:]
        var totals = Totals()
        for event in events {
            let payload = event.payload
            let orderID = string(payload["orderId"]) ?? ""
            switch event.type {
            case "CustomerRegistered":
                if let customer = string(payload["customerId"]) { countries[customer] = string(payload["country"]) }
            case "OrderCreated":
                orders[orderID] = (string(payload["customerId"]), orders[orderID]?.paid ?? 0)
            case "PaymentReceived":
                guard let order = orders[orderID] else { continue }
                let country = order.customer.flatMap { countries[$0] } ?? "unknown"
                totals.add(country, day(payload), first: int(payload["amountCents"]))
                orders[orderID]?.paid += int(payload["amountCents"])
            case "OrderCancelled":
                guard let order = orders[orderID] else { continue }
                if order.paid > 0 {
                    totals.add(order.customer.flatMap { countries[$0] } ?? "unknown", day(payload), second: order.paid)
                }
                orders[orderID]?.paid = 0
            default:
                continue
            }
        }
        return totals.rows
    }

    /// Appends events one stream each (`type`, payload JSON), in this order.
    static func append(_ environment: RebuildEnvironment, _ events: [(type: String, payload: String)]) async throws {
        let appends = events.map { event in
            StreamAppend(streamID: "s-\(UUID().uuidString)", expectedVersion: .noStream,
                         events: [NewEvent(eventID: UUID().uuidString.lowercased(), type: event.type, payload: event.payload)])
        }
        for append in appends { _ = try await environment.store.append([append], on: environment.postgres) }
    }

    /// A folder holding copies of sample projection files, for `reprise --projections-dir`.
    static func folder(with samples: [String]) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.uniqueName("projections")).path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for sample in samples {
            try FileManager.default.copyItem(atPath: RebuildEnvironment.repositoryRoot() + "/projections/\(sample).yml", toPath: folder + "/\(sample).yml")
        }
        return folder
    }
}
