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
    /// The payload as a tree: the decoded one, or rebuilt from the decoded fields.
    public var payload: JSONValue {
        get { payloadFields?.tree ?? payloadTree }
        set {
            payloadTree = newValue
            payloadFields = nil
        }
    }
    public var metadata: JSONValue {
        get { metadataFields?.tree ?? metadataTree }
        set {
            metadataTree = newValue
            metadataFields = nil
        }
    }
    private var payloadTree: JSONValue
    private var metadataTree: JSONValue
    /// The fields handlers read, decoded into slots by the rebuild's reader (no tree); nil when
    /// the event carries a tree.
    private(set) var payloadFields: DecodedFields?
    private(set) var metadataFields: DecodedFields?

    public init(position: Int64, transactionID: String = "0", eventID: String, streamID: String, streamVersion: Int64, type: String,
                recordedAt: String, payload: JSONValue, metadata: JSONValue = .null) {
        self.position = position
        self.transactionID = transactionID
        self.eventID = eventID
        self.streamID = streamID
        self.streamVersion = streamVersion
        self.type = type
        self.recordedAt = recordedAt
        self.payloadTree = payload
        self.metadataTree = metadata
    }

    /// An event whose payload and metadata were decoded into slots.
    init(position: Int64, transactionID: String, eventID: String, streamID: String, streamVersion: Int64, type: String,
         recordedAt: String, payload: DecodedPart, metadata: DecodedPart) {
        self.init(position: position, transactionID: transactionID, eventID: eventID, streamID: streamID, streamVersion: streamVersion,
                  type: type, recordedAt: recordedAt, payload: .null, metadata: .null)
        switch payload {
        case .tree(let tree): payloadTree = tree
        case .fields(let fields): payloadFields = fields
        }
        switch metadata {
        case .tree(let tree): metadataTree = tree
        case .fields(let fields): metadataFields = fields
        }
    }

    /// A decoded payload or metadata document.
    enum DecodedPart {
        case tree(JSONValue)
        case fields(DecodedFields)
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
