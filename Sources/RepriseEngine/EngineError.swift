/// A failure of a rebuild or of a handler, naming the projection, the event position and the cause.
public struct EngineError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// A handler could not apply an event (bad field type, failed expression, missing row with `if_missing: error`).
        case handlerFailed = "handler failed"
        /// An event's payload is not valid JSON.
        case badPayload = "bad payload"
        /// Another process holds the lock of this projection.
        case locked
        /// A check on the green tables failed; the live tables were left in place.
        case checkFailed = "check failed"
        /// The read model tables are not in the state the registry says.
        case inconsistentState = "inconsistent state"
        /// PostgreSQL or MySQL failed.
        case database
        case invalidRequest = "invalid request"
    }

    public var kind: Kind
    public var projection: String?
    /// The global position of the event being handled, when one was.
    public var position: Int64?
    public var eventType: String?
    public var message: String
    /// The underlying error itself (a wrapper's error keeps its code, SQLSTATE, and whether it
    /// was a connection loss), for callers that decide on it.
    public var underlying: (any Error)?
    /// The underlying error, described (server errors already hide passwords).
    public var cause: String?

    public init(
        _ kind: Kind, projection: String? = nil, position: Int64? = nil, eventType: String? = nil, message: String, cause: String? = nil,
        underlying: (any Error)? = nil
    ) {
        self.kind = kind
        self.projection = projection
        self.position = position
        self.eventType = eventType
        self.message = message
        self.underlying = underlying
        self.cause = cause ?? underlying.map { "\($0)" }
    }

    public var description: String {
        var text = kind.rawValue
        if let projection { text += " in projection \(projection)" }
        if let position { text += " at event position \(position)" }
        if let eventType { text += " (\(eventType))" }
        text += ": \(message)"
        if let cause { text += " — cause: \(cause)" }
        return text
    }
}
