import RepriseProjection
import ReprisePostgres

/// An event as handlers see it: the envelope, and the decoded parts of payload and metadata.
///
/// The fields live in one immutable storage object, so a copy (filtering a batch per build,
/// chunk arrays, frames) retains one reference instead of each string and part; a setter
/// replaces the storage with a changed copy.
public struct ProjectionEvent: Sendable {
    private var storage: Storage

    public var position: Int64 {
        get { storage.fields.position }
        set { change { $0.position = newValue } }
    }
    /// The id of the transaction that wrote the event (`xid8`), as text.
    public var transactionID: String {
        get { storage.fields.text.transactionID }
        set { change { $0.text.transactionID = newValue } }
    }
    public var eventID: String {
        get { storage.fields.text.eventID }
        set { change { $0.text.eventID = newValue } }
    }
    public var streamID: String {
        get { storage.fields.streamID ?? storage.fields.text.streamID }
        set { change { $0.streamID = newValue } }
    }
    public var streamVersion: Int64 {
        get { storage.fields.streamVersion }
        set { change { $0.streamVersion = newValue } }
    }
    public var type: String {
        get { storage.fields.type }
        set { change { $0.type = newValue } }
    }
    /// ISO-8601 UTC (`2026-11-23T10:00:00.123456Z`).
    public var recordedAt: String {
        get { storage.fields.text.recordedAt }
        set { change { $0.text.recordedAt = newValue } }
    }
    /// The payload as a tree: the decoded one, or rebuilt from the decoded fields.
    public var payload: JSONValue {
        get { storage.fields.payloadFields?.tree ?? storage.fields.payloadTree }
        set {
            change {
                $0.payloadTree = newValue
                $0.payloadFields = nil
            }
        }
    }
    public var metadata: JSONValue {
        get { storage.fields.metadataFields?.tree ?? storage.fields.metadataTree }
        set {
            change {
                $0.metadataTree = newValue
                $0.metadataFields = nil
            }
        }
    }
    /// The fields handlers read, decoded into slots by the rebuild's reader (no tree); nil when
    /// the event carries a tree.
    var payloadFields: DecodedFields? { storage.fields.payloadFields }
    var metadataFields: DecodedFields? { storage.fields.metadataFields }

    public init(position: Int64, transactionID: String = "0", eventID: String, streamID: String, streamVersion: Int64, type: String,
                recordedAt: String, payload: JSONValue, metadata: JSONValue = .null) {
        storage = Storage(Fields(
            position: position, text: EnvelopeText(transactionID: transactionID, eventID: eventID, recordedAt: recordedAt),
            streamID: streamID, streamVersion: streamVersion, type: type, payloadTree: payload, metadataTree: metadata,
            payloadFields: nil, metadataFields: nil))
    }

    /// An event whose payload and metadata were decoded into slots.
    init(position: Int64, transactionID: String, eventID: String, streamID: String, streamVersion: Int64, type: String,
         recordedAt: String, payload: DecodedPart, metadata: DecodedPart) {
        self.init(position: position, text: EnvelopeText(transactionID: transactionID, eventID: eventID, recordedAt: recordedAt),
                  streamID: streamID, streamVersion: streamVersion, type: type, payload: payload, metadata: metadata)
    }

    /// An event decoded by `EventStoreReader`, whose transaction id, event id and time stay in
    /// `row` of `envelope` until read; and its stream id too when `streamID` is nil.
    init(position: Int64, envelope: PostgresResult, row: Int, streamID: String?, streamVersion: Int64, type: String,
         payload: consuming DecodedPart, metadata: consuming DecodedPart) {
        let (payloadTree, payloadFields) = payload.parts()
        let (metadataTree, metadataFields) = metadata.parts()
        // The envelope text built in the expression: passed to another initializer it was
        // copied and destroyed (a retain and a release per event).
        storage = Storage(Fields(
            position: position, text: EnvelopeText(envelope, row: row, position: position), streamID: streamID,
            streamVersion: streamVersion, type: type, payloadTree: payloadTree, metadataTree: metadataTree,
            payloadFields: payloadFields, metadataFields: metadataFields))
    }

    private init(position: Int64, text: EnvelopeText, streamID: String, streamVersion: Int64, type: String,
                 payload: consuming DecodedPart, metadata: consuming DecodedPart) {
        let (payloadTree, payloadFields) = payload.parts()
        let (metadataTree, metadataFields) = metadata.parts()
        // Built in place: a `Fields` variable changed after it was made was copied into the
        // storage and then destroyed (a retain and a release of each of its references).
        storage = Storage(Fields(
            position: position, text: text, streamID: streamID, streamVersion: streamVersion, type: type,
            payloadTree: payloadTree, metadataTree: metadataTree, payloadFields: payloadFields, metadataFields: metadataFields))
    }

    /// The event's fields, as the storage keeps them.
    private struct Fields: Sendable {
        var position: Int64
        var text: EnvelopeText
        /// Nil: in the batch (`text`), decoded on each read. The rebuild's reader leaves it there
        /// when no handler of the round reads it (a `String` per event, most of them allocated).
        var streamID: String?
        var streamVersion: Int64
        var type: String
        var payloadTree: JSONValue
        var metadataTree: JSONValue
        var payloadFields: DecodedFields?
        var metadataFields: DecodedFields?
    }

    /// Immutable: events are shared between threads and builds.
    private final class Storage: Sendable {
        let fields: Fields
        init(_ fields: Fields) { self.fields = fields }
    }

    /// A setter: the storage is shared by the copies of this event, so it is replaced, not changed.
    private mutating func change(_ body: (inout Fields) -> Void) {
        var fields = storage.fields
        // A text setter lets go of the batch: the stream id is taken out of it first.
        if fields.streamID == nil { fields.streamID = fields.text.streamID }
        body(&fields)
        storage = Storage(fields)
    }

    /// The envelope's text fields no handler of the rebuild reads unless an expression names them
    /// (`event.event_id`, `event.recorded_at`) or a Swift projection does: decoded on each read
    /// from the batch they came in (which stays alive while its events do), or set ones.
    private struct EnvelopeText: Sendable {
        private var row: (result: PostgresResult, index: Int)?
        private var strings: (transactionID: String, eventID: String, recordedAt: String)
        /// The event's position, for an event id column that is NULL.
        private let position: Int64

        init(transactionID: String, eventID: String, recordedAt: String) {
            strings = (transactionID, eventID, recordedAt)
            position = 0
        }

        init(_ result: PostgresResult, row index: Int, position: Int64) {
            row = (result, index)
            strings = ("", "", "")
            self.position = position
        }

        var transactionID: String {
            get { row.map { $0.result.string($0.index, EnvelopeColumn.transactionID) ?? "" } ?? strings.transactionID }
            set { materialize(); strings.transactionID = newValue }
        }
        var eventID: String {
            get { row.map { $0.result.string($0.index, EnvelopeColumn.eventID) ?? String(position) } ?? strings.eventID }
            set { materialize(); strings.eventID = newValue }
        }
        var recordedAt: String {
            get { row.map { $0.result.string($0.index, EnvelopeColumn.recordedAt) ?? "" } ?? strings.recordedAt }
            set { materialize(); strings.recordedAt = newValue }
        }
        /// The stream id in the batch (for `Fields.streamID` nil, which only events of a batch have).
        var streamID: String { row.map { $0.result.string($0.index, EnvelopeColumn.streamID) ?? "" } ?? "" }

        /// Before a setter: the other fields as strings, the batch no longer needed.
        private mutating func materialize() {
            guard row != nil else { return }
            strings = (transactionID, eventID, recordedAt)
            row = nil
        }
    }

    /// A decoded payload or metadata document.
    enum DecodedPart {
        case tree(JSONValue)
        case fields(DecodedFields)

        /// The tree (`.null` for slots) and the slots (nil for a tree), as `Fields` keeps them;
        /// consuming, so the part moves instead of being copied and destroyed.
        consuming func parts() -> (JSONValue, DecodedFields?) {
            switch self {
            case .tree(let tree): (tree, nil)
            case .fields(let decoded): (.null, decoded)
            }
        }
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
