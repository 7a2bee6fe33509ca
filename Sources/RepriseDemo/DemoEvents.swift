import RepriseSupport

/// The e-commerce demo domain: event types and their JSON payloads.
///
/// Money is in minor units (cents) as integers, so read models can be checked exactly.
/// Times are ISO-8601 UTC strings in the payload (`occurredAt`), produced by a simulated clock.
public enum DemoEventType {
    public static let customerRegistered = "CustomerRegistered"
    public static let productAdded = "ProductAdded"
    public static let orderCreated = "OrderCreated"
    public static let orderItemAdded = "OrderItemAdded"
    public static let paymentReceived = "PaymentReceived"
    public static let orderShipped = "OrderShipped"
    public static let orderCancelled = "OrderCancelled"

    public static let all = [customerRegistered, productAdded, orderCreated, orderItemAdded, paymentReceived, orderShipped, orderCancelled]
}

/// One line of an order.
public struct OrderLine: Sendable, Equatable {
    public var sku: String
    public var quantity: Int
    public var unitPriceCents: Int

    public init(sku: String, quantity: Int, unitPriceCents: Int) {
        self.sku = sku
        self.quantity = quantity
        self.unitPriceCents = unitPriceCents
    }

    var json: String { #"{"sku":"\#(sku)","quantity":\#(quantity),"unitPriceCents":\#(unitPriceCents)}"# }
}

/// JSON payload builders. Values that could hold quotes go through `JSONText.quoted`.
enum DemoPayload {
    static func customerRegistered(customerID: String, name: String, email: String, country: String, at time: String) -> String {
        #"{"customerId":\#(JSONText.quoted(customerID)),"name":\#(JSONText.quoted(name)),"email":\#(JSONText.quoted(email)),"country":"\#(country)","occurredAt":"\#(time)"}"#
    }

    static func productAdded(sku: String, name: String, category: String, priceCents: Int, at time: String) -> String {
        #"{"sku":"\#(sku)","name":\#(JSONText.quoted(name)),"category":"\#(category)","priceCents":\#(priceCents),"occurredAt":"\#(time)"}"#
    }

    static func orderCreated(orderID: String, customerID: String, lines: [OrderLine], currency: String, at time: String) -> String {
        let total = lines.reduce(0) { $0 + $1.quantity * $1.unitPriceCents }
        let items = lines.map(\.json).joined(separator: ",")
        return #"{"orderId":"\#(orderID)","customerId":"\#(customerID)","items":[\#(items)],"itemCount":\#(lines.count),"totalCents":\#(total),"currency":"\#(currency)","occurredAt":"\#(time)"}"#
    }

    static func orderItemAdded(orderID: String, line: OrderLine, at time: String) -> String {
        #"{"orderId":"\#(orderID)","sku":"\#(line.sku)","quantity":\#(line.quantity),"unitPriceCents":\#(line.unitPriceCents),"lineTotalCents":\#(line.quantity * line.unitPriceCents),"occurredAt":"\#(time)"}"#
    }

    static func paymentReceived(orderID: String, amountCents: Int, method: String, at time: String) -> String {
        #"{"orderId":"\#(orderID)","amountCents":\#(amountCents),"method":"\#(method)","occurredAt":"\#(time)"}"#
    }

    static func orderShipped(orderID: String, carrier: String, at time: String) -> String {
        #"{"orderId":"\#(orderID)","carrier":"\#(carrier)","occurredAt":"\#(time)"}"#
    }

    static func orderCancelled(orderID: String, reason: String, at time: String) -> String {
        #"{"orderId":"\#(orderID)","reason":\#(JSONText.quoted(reason)),"occurredAt":"\#(time)"}"#
    }
}

/// A simulated UTC clock for payload timestamps, so a seed gives the same history every run.
struct DemoClock {
    /// Seconds since 2026-01-01T00:00:00Z.
    private(set) var seconds: Int = 0

    mutating func advance(by delta: Int) { seconds += delta }

    /// ISO-8601, e.g. "2026-03-14T09:26:53Z".
    var iso8601: String {
        var days = seconds / 86_400
        let secondOfDay = seconds % 86_400
        var year = 2026, month = 1
        func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }
        while days >= (isLeap(year) ? 366 : 365) {
            days -= isLeap(year) ? 366 : 365
            year += 1
        }
        let monthLengths = [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        while days >= monthLengths[month - 1] {
            days -= monthLengths[month - 1]
            month += 1
        }
        func two(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(year)-\(two(month))-\(two(days + 1))T\(two(secondOfDay / 3600)):\(two(secondOfDay / 60 % 60)):\(two(secondOfDay % 60))Z"
    }
}
