import RepriseSupport

/// An error from the AMQP (RabbitMQ) wrapper. Server closes carry the AMQP reply code
/// (403 access refused, 404 not found, 406 precondition failed, ...) and text. It answers
/// `isConnectionLoss` and `isTransient` itself (`ConnectionLossReporting`).
public struct AMQPError: Error, Sendable, CustomStringConvertible, ConnectionLossReporting {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Sendable {
            case invalidURL, connectionFailed, connectionTimedOut, authenticationFailed, connectionLost, connectionClosed, channelClosed
            case timedOut, protocolError, publishRejected
        }
        let base: Base
        public static let invalidURL = Code(base: .invalidURL)
        /// The broker could not be reached (refused, DNS, TLS handshake).
        public static let connectionFailed = Code(base: .connectionFailed)
        /// The broker did not answer within the connect timeout.
        public static let connectionTimedOut = Code(base: .connectionTimedOut)
        /// The broker refused the user or password.
        public static let authenticationFailed = Code(base: .authenticationFailed)
        /// The connection dropped while in use (the broker closed it, the network failed, a
        /// heartbeat was missed): channels, consumers and unacknowledged deliveries are gone.
        public static let connectionLost = Code(base: .connectionLost)
        /// The connection was closed with `close()`.
        public static let connectionClosed = Code(base: .connectionClosed)
        /// The broker closed the channel (`replyCode` says why); the next call reopens it.
        public static let channelClosed = Code(base: .channelClosed)
        /// A wait (confirms, RPC) exceeded its timeout.
        public static let timedOut = Code(base: .timedOut)
        public static let protocolError = Code(base: .protocolError)
        /// The broker nacked a published message.
        public static let publishRejected = Code(base: .publishRejected)
        public var description: String { base.rawValue }
    }

    public var code: Code
    public var message: String
    /// The AMQP reply code of a server close (channel or connection).
    public var replyCode: UInt16?
    /// The operation that failed ("queue.declare reprise.live").
    public var operation: String?
    /// The broker, as a redacted URL.
    public var server: String?

    public init(code: Code, message: String, replyCode: UInt16? = nil, operation: String? = nil, server: String? = nil) {
        self.code = code
        self.message = message
        self.replyCode = replyCode
        self.operation = operation
        self.server = server
    }

    public var isConnectionLoss: Bool { code == .connectionLost }

    /// A lost or refused connection: the broker may be back for the next attempt.
    public var isTransient: Bool { [.connectionLost, .connectionFailed, .connectionTimedOut].contains(code) }

    public var description: String {
        var text = "AMQP \(code)"
        if let replyCode { text += " [\(replyCode)]" }
        if let server { text += " (\(server))" }
        if let operation { text += " during \(operation)" }
        return text + ": \(message)"
    }
}
