import Foundation
import RepriseEngine
import RepriseProjection
import Testing

/// A Swift projection that declares the rows an event needs (`rowsNeeded(by:)`): the engine reads
/// them per chunk, one query per table, instead of one query per event.
struct OrderPayments: Projection {
    /// Whether `rowsNeeded` declares the order row a payment reads (false: the same projection,
    /// reading each row on demand).
    let declaresRows: Bool

    var definition: ProjectionDefinition {
        let table = TableDefinition(name: "order_payments", columns: [
            ColumnDefinition(name: "order_id", type: .varchar(length: 64), nullable: false),
            ColumnDefinition(name: "customer_id", type: .varchar(length: 64)),
            ColumnDefinition(name: "paid_cents", type: .bigint, nullable: false, defaultValue: .int(0)),
        ], primaryKey: ["order_id"])
        return ProjectionDefinition(name: "order_payments", version: 1, tables: [table],
                                    handlers: ["OrderCreated": [], "PaymentReceived": []], definitionHash: "order_payments-code-1")
    }

    private func orderID(_ event: ProjectionEvent) -> ProjectionValue {
        event.payload.value(at: [.key("orderId")])?.projectionValue ?? .null
    }

    func rowsNeeded(by event: ProjectionEvent) -> [RowRequest] {
        guard declaresRows, event.type == "PaymentReceived" else { return [] }
        return [RowRequest("order_payments", key: [orderID(event)])]
    }

    func handle(_ event: ProjectionEvent, rows: ProjectionRows) async throws {
        switch event.type {
        case "OrderCreated":
            let customer = event.payload.value(at: [.key("customerId")])?.projectionValue ?? .null
            try await rows.upsert("order_payments", ["order_id": orderID(event), "customer_id": customer])
        case "PaymentReceived":
            guard let order = try await rows.row("order_payments", key: [orderID(event)]) else { return }
            guard case .int(let paid)? = order["paid_cents"],
                  case .int(let amount)? = event.payload.value(at: [.key("amountCents")])?.projectionValue else { return }
            try await rows.upsert("order_payments", ["order_id": orderID(event), "paid_cents": .int(paid + amount)])
        default:
            return
        }
    }
}

@Suite("Code projections declare the rows they need (real servers)")
struct CodeProjectionRowsTests {
    @Test func declaredRowsAreReadPerChunkNotPerEvent() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 4_000, seed: 517)
        var expected: [String: (customer: String, paid: Int64)] = [:]
        var payments = 0
        for event in try await LookupGolden.events(environment) {
            let order = event.payload["orderId"] as? String ?? ""
            if event.type == "OrderCreated" { expected[order] = (event.payload["customerId"] as? String ?? "", 0) }
            if event.type == "PaymentReceived" {
                payments += 1
                expected[order]?.paid += (event.payload["amountCents"] as? NSNumber)?.int64Value ?? 0
            }
        }
        let expectedRows = expected.map { [$0.key, $0.value.customer, String($0.value.paid)] }.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(payments > 300)

        // A tiny row cache: most orders a payment reads are only in MySQL.
        func rebuild(declaring: Bool) async throws -> RebuildResult {
            let results = try await environment.engine {
                $0.chunkSize = 50
                $0.rowCacheLimit = 20
                $0.resume = false
            }.rebuild([.code(OrderPayments(declaresRows: declaring))])
            #expect(try await environment.rows("order_payments") == expectedRows, "declaring: \(declaring)")
            return try #require(results.first)
        }
        let onDemand = try await rebuild(declaring: false)
        let declared = try await rebuild(declaring: true)
        let chunks = Int64((4_000 + 49) / 50)
        // One query per chunk and table (this projection has one table), at most.
        #expect(declared.rowReadQueries <= chunks, "\(declared.rowReadQueries) queries for \(chunks) chunks")
        #expect(declared.lookupQueries == declared.rowReadQueries)
        // Without the declaration the same reads cost about one query per payment.
        #expect(onDemand.rowReadQueries > Int64(payments) / 4, "\(onDemand.rowReadQueries) queries for \(payments) payments")
        await environment.tearDown()
    }
}
