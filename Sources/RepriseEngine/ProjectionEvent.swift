import RepriseProjection

/// An event as handlers see it: the envelope, and the decoded parts of payload and metadata.
public struct ProjectionEvent: Sendable {
    public var position: Int64
    /// The id of the transaction that wrote the event (`xid8`), as text.
    public var transactionID: String
    public var eventID: String
    public var streamID: String
    public var streamVersion: Int64
    public var type: String
    /// ISO-8601 UTC (`2026-11-23T10:00:00.123456Z`).
    public var recordedAt: String
    public var payload: JSONValue
    public var metadata: JSONValue

    public init(position: Int64, transactionID: String = "0", eventID: String, streamID: String, streamVersion: Int64, type: String,
                recordedAt: String, payload: JSONValue, metadata: JSONValue = .null) {
        self.position = position
        self.transactionID = transactionID
        self.eventID = eventID
        self.streamID = streamID
        self.streamVersion = streamVersion
        self.type = type
        self.recordedAt = recordedAt
        self.payload = payload
        self.metadata = metadata
    }

    /// The value an expression reads; `item` is the current element inside `for_each`.
    func value(of field: FieldReference, item: JSONValue?) -> ProjectionValue {
        switch field {
        case .payload(let path): payload.value(at: path[...])?.projectionValue ?? .null
        case .metadata(let path): metadata.value(at: path[...])?.projectionValue ?? .null
        case .item(let path): item?.value(at: path[...])?.projectionValue ?? .null
        case .envelope(let envelope):
            switch envelope {
            case .streamID: .string(streamID)
            case .streamVersion: .int(streamVersion)
            case .position: .int(position)
            case .eventType: .string(type)
            case .recordedAt: .string(recordedAt)
            case .eventID: .string(eventID)
            }
        }
    }
}
