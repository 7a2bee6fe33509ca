import RepriseAMQP
import RepriseEventSource
import ReprisePostgres

/// How an event travels through RabbitMQ: the payload as the body, the envelope in headers.
///
/// Routing key: the event type. Message id: the event id. Persistent, `application/json`.
public enum EventMessage {
    public static let positionHeader = "reprise-position"
    public static let streamHeader = "reprise-stream-id"
    public static let versionHeader = "reprise-stream-version"
    public static let typeHeader = "reprise-event-type"
    public static let recordedAtHeader = "reprise-recorded-at"
    public static let metadataHeader = "reprise-metadata"
    /// The stream's slot (`PartitionSlots`): live partition queues are bound by it.
    public static let slotHeader = "reprise-slot"
    /// On parked (dead-lettered) messages: why, for which projection.
    public static let errorHeader = "reprise-error"
    public static let projectionHeader = "reprise-projection"

    public struct Envelope: Sendable, Equatable {
        public var position: Int64
        public var eventID: String
        public var streamID: String
        public var streamVersion: Int64
        public var type: String
        public var recordedAt: String
        public var payload: String
        public var metadata: String?
        /// The stream's slot, computed by the relay in PostgreSQL.
        public var slot: Int? = nil
    }

    /// The `SELECT` list `envelopes(_:)` decodes, for Reprise's events table under `alias`.
    static func envelopeColumns(_ alias: String) -> String {
        """
        \(alias).global_position, \(alias).event_id::text, \(alias).stream_id, \(alias).stream_version, \(alias).event_type,
        to_char(\(alias).recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), \(alias).payload::text, \(alias).metadata::text,
        \(PartitionSlots.sql(of: "\(alias).stream_id::text"))
        """
    }

    /// The envelopes of rows selected with `envelopeColumns`.
    static func envelopes(_ result: PostgresResult) -> [Envelope] {
        (0..<result.rowCount).map { row in
            Envelope(
                position: result.int64(row, 0) ?? 0, eventID: result.string(row, 1) ?? "", streamID: result.string(row, 2) ?? "",
                streamVersion: result.int64(row, 3) ?? 0, type: result.string(row, 4) ?? "", recordedAt: result.string(row, 5) ?? "",
                payload: result.string(row, 6) ?? "null", metadata: result.string(row, 7), slot: result.int(row, 8))
        }
    }

    public static func message(_ event: Envelope, exchange: String, persistent: Bool = true, extraHeaders: [String: AMQPFieldValue] = [:]) -> AMQPOutgoingMessage {
        var headers: [String: AMQPFieldValue] = [
            positionHeader: .int(event.position), streamHeader: .string(event.streamID), versionHeader: .int(event.streamVersion),
            typeHeader: .string(event.type), recordedAtHeader: .string(event.recordedAt),
        ]
        if let metadata = event.metadata { headers[metadataHeader] = .string(metadata) }
        if let slot = event.slot { headers[slotHeader] = .int(Int64(slot)) }
        for (key, value) in extraHeaders { headers[key] = value }
        return AMQPOutgoingMessage(
            exchange: exchange, routingKey: event.type, body: Array(event.payload.utf8),
            properties: AMQPMessageProperties(contentType: "application/json", messageID: event.eventID, type: event.type, persistent: persistent, headers: headers),
            mandatory: true)
    }

    /// The global position a delivery announces, if it carries one.
    public static func position(of delivery: AMQPDelivery) -> Int64? {
        if case .int(let position)? = delivery.properties.headers[positionHeader] { return position }
        return nil
    }
}
