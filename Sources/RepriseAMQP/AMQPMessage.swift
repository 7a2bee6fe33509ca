/// A value in an AMQP field table (message headers, queue arguments).
public enum AMQPFieldValue: Sendable, Hashable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case double(Double)
}

/// The properties of a message that Reprise uses.
public struct AMQPMessageProperties: Sendable, Hashable {
    public var contentType: String?
    public var messageID: String?
    public var type: String?
    /// Delivery mode 2: the broker writes the message to disk in durable queues.
    public var persistent: Bool
    public var timestamp: UInt64?
    public var headers: [String: AMQPFieldValue]

    public init(contentType: String? = nil, messageID: String? = nil, type: String? = nil, persistent: Bool = true,
                timestamp: UInt64? = nil, headers: [String: AMQPFieldValue] = [:]) {
        self.contentType = contentType
        self.messageID = messageID
        self.type = type
        self.persistent = persistent
        self.timestamp = timestamp
        self.headers = headers
    }
}

/// A message to publish.
public struct AMQPOutgoingMessage: Sendable {
    public var exchange: String
    public var routingKey: String
    public var body: [UInt8]
    public var properties: AMQPMessageProperties
    /// Ask the broker to return the message when no queue is bound for it.
    public var mandatory: Bool

    public init(exchange: String, routingKey: String, body: [UInt8], properties: AMQPMessageProperties = .init(), mandatory: Bool = true) {
        self.exchange = exchange
        self.routingKey = routingKey
        self.body = body
        self.properties = properties
        self.mandatory = mandatory
    }
}

/// What the broker said about a batch published with confirms.
public struct AMQPPublishOutcome: Sendable, Equatable {
    /// Messages the broker confirmed (acked), including returned ones (the broker acks those too).
    public var confirmed: Int
    /// Indexes (into the published batch) of messages the broker nacked.
    public var nacked: [Int]
    /// Message ids of messages returned as unroutable (mandatory and no queue bound).
    public var returnedMessageIDs: [String]

    public var allConfirmedAndRouted: Bool { nacked.isEmpty && returnedMessageIDs.isEmpty }
}

/// A message received from a queue. Ack, nack or reject it by `deliveryTag`.
public struct AMQPDelivery: Sendable {
    public var deliveryTag: UInt64
    /// Set by the broker when the message was delivered before and not acked.
    public var redelivered: Bool
    public var exchange: String
    public var routingKey: String
    public var body: [UInt8]
    public var properties: AMQPMessageProperties
}

/// A queue's state as the broker reported it on declare.
public struct AMQPQueueInfo: Sendable, Equatable {
    public var name: String
    public var messageCount: UInt32
    public var consumerCount: UInt32
}

/// Exchange types.
public enum AMQPExchangeType: String, Sendable {
    case direct, fanout, topic, headers
    /// RabbitMQ's consistent-hash exchange plugin.
    case consistentHash = "x-consistent-hash"
}
