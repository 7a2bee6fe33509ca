import RepriseCommandLine

/// `projections/customer_stats.yml` written in Swift, into its own table `customer_stats_swift`:
/// one row per customer with name, country, number of orders, lifetime value and the times of
/// the first and last order. Same rows as the file projection, for the same events.
struct CustomerStatsInSwift: Projection {
    let definition = ProjectionDefinition(
        name: "customer_stats_swift", version: 1,
        tables: [
            TableDefinition(
                name: "customer_stats_swift",
                columns: [
                    ColumnDefinition(name: "customer_id", type: .varchar(length: 64), nullable: false),
                    ColumnDefinition(name: "name", type: .varchar(length: 200)),
                    ColumnDefinition(name: "country", type: .varchar(length: 8)),
                    ColumnDefinition(name: "order_count", type: .int, nullable: false, defaultValue: .int(0)),
                    ColumnDefinition(name: "lifetime_value_cents", type: .bigint, nullable: false, defaultValue: .int(0)),
                    ColumnDefinition(name: "first_order_at", type: .datetime),
                    ColumnDefinition(name: "last_order_at", type: .datetime),
                ],
                primaryKey: ["customer_id"], indexes: [["country"]]),
        ],
        // The event types it handles; a Swift projection's operations are its `handle` method.
        handlers: ["CustomerRegistered": [], "OrderCreated": []],
        // Change it (or `version`) whenever `handle` changes meaning: a live worker refuses a
        // definition that differs from the active build's.
        definitionHash: "customer_stats_swift-1")

    func handle(_ event: ProjectionEvent, rows: ProjectionRows) async throws {
        let customer = event.payload["customerId"].projectionValue
        switch event.type {
        case "CustomerRegistered":
            try await rows.upsert("customer_stats_swift", [
                "customer_id": customer,
                "name": event.payload["name"].projectionValue,
                "country": event.payload["country"].projectionValue,
            ])
        case "OrderCreated":
            // An order may arrive before its customer's registration: the row starts with defaults.
            let current = try await rows.row("customer_stats_swift", key: [customer])
            let occurredAt = event.payload["occurredAt"].projectionValue
            try await rows.upsert("customer_stats_swift", [
                "customer_id": customer,
                "order_count": .int(integer(current?["order_count"]) + 1),
                "lifetime_value_cents": .int(integer(current?["lifetime_value_cents"]) + integer(event.payload["totalCents"].projectionValue)),
                "first_order_at": current?["first_order_at"].flatMap { $0 == .null ? nil : $0 } ?? occurredAt,
                "last_order_at": occurredAt,
            ])
        default:
            break
        }
    }

    private func integer(_ value: ProjectionValue?) -> Int64 {
        if case .int(let number)? = value { return number }
        return 0
    }
}
