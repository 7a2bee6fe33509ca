import RepriseEventStore
import ReprisePostgres

/// The command side of the demo domain (the seeds' `CreateOrderCommand` -> `OrderCreated` + outbox row).
public struct CreateOrderCommand: Sendable, Equatable {
    public var orderID: String
    public var customerID: String
    public var lines: [OrderLine]
    public var currency: String
    /// The business time of the command, ISO-8601 UTC.
    public var occurredAt: String

    public init(orderID: String, customerID: String, lines: [OrderLine], currency: String = "EUR", occurredAt: String) {
        self.orderID = orderID
        self.customerID = customerID
        self.lines = lines
        self.currency = currency
        self.occurredAt = occurredAt
    }
}

/// Errors of the demo command side.
public enum DemoCommandError: Error, Sendable, CustomStringConvertible {
    case invalidCommand(String)
    public var description: String {
        switch self {
        case .invalidCommand(let reason): "invalid command: \(reason)"
        }
    }
}

/// Handles order commands: validates, builds the events, and appends them with their outbox
/// rows in one transaction. A second `CreateOrderCommand` for the same order is refused by
/// optimistic concurrency (`.noStream`).
public struct OrderCommandHandler: Sendable {
    public let store: EventStore

    public init(store: EventStore = EventStore()) {
        self.store = store
    }

    public static func streamID(orderID: String) -> String { "order-\(orderID)" }

    @discardableResult
    public func handle(_ command: CreateOrderCommand, eventID: String, on connection: PostgresConnection) async throws -> AppendResult {
        guard !command.lines.isEmpty else { throw DemoCommandError.invalidCommand("an order needs at least one line") }
        guard command.lines.allSatisfy({ $0.quantity > 0 && $0.unitPriceCents >= 0 }) else {
            throw DemoCommandError.invalidCommand("quantities must be positive and prices not negative")
        }
        let event = NewEvent(
            eventID: eventID, type: DemoEventType.orderCreated,
            payload: DemoPayload.orderCreated(
                orderID: command.orderID, customerID: command.customerID, lines: command.lines, currency: command.currency,
                at: command.occurredAt),
            metadata: #"{"command":"CreateOrderCommand"}"#)
        let append = StreamAppend(streamID: Self.streamID(orderID: command.orderID), expectedVersion: .noStream, events: [event])
        let results = try await store.append([append], on: connection)
        return results[0]
    }
}
