import RepriseEventStore

/// A deterministic e-commerce history: products, customers (registered on first order),
/// orders with items, payments, shipments and cancellations, with hot customers and products.
///
/// Memory stays bounded for any size: only a window of open orders is kept.
///
/// ```swift
/// var history = DemoHistory(seed: 42, totalEvents: 1_000_000)
/// while let batch = history.nextBatch(maxEvents: 2_000) { try await store.append(batch, on: db) }
/// ```
public struct DemoHistory: Sendable {
    public let seed: UInt64
    public let totalEvents: Int
    public private(set) var producedEvents = 0

    private var random: SeededGenerator
    private var clock = DemoClock()
    private let customerCount: Int
    private let products: [(sku: String, name: String, category: String, priceCents: Int)]
    private var productsAdded = 0
    private var registeredCustomers: [Bool]
    private var openOrders: [OpenOrder] = []
    private var nextOrderNumber = 1
    private var idCounter: UInt64 = 0
    private static let maxOpenOrders = 5_000

    private struct OpenOrder: Sendable {
        var orderID: String
        var version: Int64
        var paid: Bool
        var totalCents: Int
    }

    public init(seed: UInt64, totalEvents: Int) {
        self.seed = seed
        self.totalEvents = totalEvents
        random = SeededGenerator(seed: seed)
        customerCount = max(10, totalEvents / 40)
        registeredCustomers = Array(repeating: false, count: customerCount)
        let categories = ["books", "games", "garden", "kitchen", "music", "outdoor", "toys", "tools"]
        var productRandom = SeededGenerator(seed: seed ^ 0x5EED)
        let productCount = max(5, min(5_000, totalEvents / 400))
        products = (1...productCount).map { number in
            let category = categories[Int(productRandom.next() % UInt64(categories.count))]
            return ("SKU-\(seed)-\(number)", "Product \(number) of \(category)", category, 199 + Int(productRandom.next() % 20_000))
        }
    }

    /// The stream id of the first event of this history (to detect a seed already written).
    public var firstStreamID: String { "product-\(products[0].sku)" }

    /// The next appends: `maxEvents` events, or one more when a customer's registration and
    /// first order belong together; nil when the history is complete. The history itself never
    /// depends on the batch size.
    public mutating func nextBatch(maxEvents: Int) -> [StreamAppend]? {
        guard producedEvents < totalEvents else { return nil }
        var batch: [StreamAppend] = []
        let limit = min(maxEvents, totalEvents - producedEvents)
        var produced = 0
        while produced < limit {
            produced += step(into: &batch, remaining: totalEvents - producedEvents - produced)
        }
        producedEvents += produced
        return batch
    }

    private func customerID(_ index: Int) -> String { "C-\(seed)-\(index + 1)" }

    /// Emits one business step (1 or 2 events) and returns how many events it produced.
    private mutating func step(into batch: inout [StreamAppend], remaining: Int) -> Int {
        clock.advance(by: 1 + Int(random.next() % 90))
        let time = clock.iso8601
        if productsAdded < products.count {
            let product = products[productsAdded]
            productsAdded += 1
            batch.append(single(
                "product-\(product.sku)", .noStream, DemoEventType.productAdded,
                DemoPayload.productAdded(sku: product.sku, name: product.name, category: product.category, priceCents: product.priceCents, at: time)))
            return 1
        }
        let roll = random.next() % 100
        if openOrders.isEmpty || (roll < 35 && openOrders.count < Self.maxOpenOrders) {
            return createOrder(into: &batch, remaining: remaining, time: time)
        }
        let index = Int(random.next() % UInt64(openOrders.count))
        var order = openOrders[index]
        let streamID = "order-\(order.orderID)"
        let expected = ExpectedVersion.exact(order.version)
        if openOrders.count >= Self.maxOpenOrders || roll >= 95 {
            if order.paid {
                batch.append(single(streamID, expected, DemoEventType.orderShipped, DemoPayload.orderShipped(orderID: order.orderID, carrier: carrier(), at: time)))
            } else {
                batch.append(single(streamID, expected, DemoEventType.orderCancelled, DemoPayload.orderCancelled(orderID: order.orderID, reason: "customer changed their mind", at: time)))
            }
            openOrders.swapAt(index, openOrders.count - 1)
            openOrders.removeLast()
            return 1
        }
        if !order.paid && roll < 50 {
            let line = orderLine()
            order.totalCents += line.quantity * line.unitPriceCents
            batch.append(single(streamID, expected, DemoEventType.orderItemAdded, DemoPayload.orderItemAdded(orderID: order.orderID, line: line, at: time)))
        } else if !order.paid {
            order.paid = true
            let method = ["card", "paypal", "invoice"][Int(random.next() % 3)]
            batch.append(single(streamID, expected, DemoEventType.paymentReceived, DemoPayload.paymentReceived(orderID: order.orderID, amountCents: order.totalCents, method: method, at: time)))
        } else {
            batch.append(single(streamID, expected, DemoEventType.orderShipped, DemoPayload.orderShipped(orderID: order.orderID, carrier: carrier(), at: time)))
            openOrders.swapAt(index, openOrders.count - 1)
            openOrders.removeLast()
            return 1
        }
        order.version += 1
        openOrders[index] = order
        return 1
    }

    private mutating func createOrder(into batch: inout [StreamAppend], remaining: Int, time: String) -> Int {
        let customer = random.skewedIndex(customerCount)
        var produced = 0
        if !registeredCustomers[customer] {
            guard remaining >= 2 else {
                // No room for registration + order: register only, the order comes later.
                registerCustomer(customer, into: &batch, time: time)
                return 1
            }
            registerCustomer(customer, into: &batch, time: time)
            produced += 1
        }
        let orderID = "O-\(seed)-\(nextOrderNumber)"
        nextOrderNumber += 1
        let lines = (0..<(1 + Int(random.next() % 4))).map { _ in orderLine() }
        let payload = DemoPayload.orderCreated(orderID: orderID, customerID: customerID(customer), lines: lines, currency: "EUR", at: time)
        batch.append(single("order-\(orderID)", .noStream, DemoEventType.orderCreated, payload))
        openOrders.append(OpenOrder(orderID: orderID, version: 1, paid: false, totalCents: lines.reduce(0) { $0 + $1.quantity * $1.unitPriceCents }))
        return produced + 1
    }

    private mutating func registerCustomer(_ index: Int, into batch: inout [StreamAppend], time: String) {
        registeredCustomers[index] = true
        let id = customerID(index)
        let names = ["Ada", "Grace", "Linus", "Barbara", "Edsger", "Frances", "Ken", "Margaret", "Dennis", "Radia", "Zoë", "José"]
        let name = names[index % names.count] + " O'Neil-\(index + 1)"
        let countries = ["DE", "FR", "NL", "PL", "SE", "ES", "IT", "US"]
        batch.append(single(
            "customer-\(id)", .noStream, DemoEventType.customerRegistered,
            DemoPayload.customerRegistered(
                customerID: id, name: name, email: "customer\(index + 1)@example.com", country: countries[index % countries.count], at: time)))
    }

    private mutating func orderLine() -> OrderLine {
        let product = products[random.skewedIndex(products.count)]
        return OrderLine(sku: product.sku, quantity: 1 + Int(random.next() % 3), unitPriceCents: product.priceCents)
    }

    private mutating func carrier() -> String { ["DHL", "UPS", "PostNL", "La Poste"][Int(random.next() % 4)] }

    private mutating func single(_ streamID: String, _ expected: ExpectedVersion, _ type: String, _ payload: String) -> StreamAppend {
        // 2026-01-01T00:00:00Z in Unix milliseconds, plus the simulated clock and a per-event counter.
        idCounter += 1
        let milliseconds = 1_767_225_600_000 + UInt64(clock.seconds) * 1_000 + idCounter % 1_000
        return StreamAppend(
            streamID: streamID, expectedVersion: expected,
            events: [NewEvent(eventID: random.uuid(milliseconds: milliseconds), type: type, payload: payload)])
    }
}
