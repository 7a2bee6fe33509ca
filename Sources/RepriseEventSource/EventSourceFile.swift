import Foundation
import Yams

/// Reads a source mapping from YAML (a file given with `--source`, or `source:` in a job file).
///
/// ```yaml
/// preset: marten              # optional: start from a preset, override below
/// schema: public
/// table: mt_events
/// columns: { position: seq_id, stream_id: stream_id, stream_version: version, event_type: type,
///            payload: data, metadata: headers, recorded_at: timestamp, event_id: id }
/// payload_encoding: jsonb     # json | jsonb | text | bytea (UTF-8 JSON)
/// type_names: { order_placed: OrderPlaced }   # stored name: name in projection files
/// safe_head: { settle_window: 2s }             # or { transaction_id: txid_column }
/// ```
public enum EventSourceFile {
    static let topKeys: Set<String> = ["preset", "schema", "table", "columns", "payload_encoding", "metadata_encoding", "type_names", "safe_head", "description"]
    static let columnKeys: Set<String> = ["position", "stream_id", "stream_version", "event_type", "payload", "metadata", "recorded_at", "event_id"]

    public static func load(path: String) throws(EventSourceError) -> EventSource {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw EventSourceError.file(path: path, message: "cannot read the source mapping file")
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) throws(EventSourceError) -> EventSource {
        let document: Any?
        do {
            document = try Yams.load(yaml: text)
        } catch {
            throw EventSourceError.file(path: path, message: "not valid YAML: \(error)")
        }
        guard let root = document as? [String: Any] else {
            throw EventSourceError.file(path: path, message: "a source mapping is a mapping (preset, table, columns, payload_encoding, type_names, safe_head)")
        }
        return try parse(root, path: path)
    }

    /// From an already-parsed mapping (a job file's `source:`).
    public static func parse(_ root: [String: Any], path: String) throws(EventSourceError) -> EventSource {
        func fail(_ key: String, _ message: String) -> EventSourceError { .file(path: path, message: "\(key): \(message)") }
        func string(_ value: Any?, _ key: String) throws(EventSourceError) -> String? {
            guard let value else { return nil }
            guard let text = value as? String, !text.isEmpty else { throw fail(key, "a non-empty string") }
            return text
        }
        if let unknown = root.keys.sorted().first(where: { !topKeys.contains($0) }) {
            throw fail(unknown, "unknown key (known: \(topKeys.sorted().joined(separator: ", ")))")
        }
        let schema = try string(root["schema"], "schema") ?? "public"
        let table = try string(root["table"], "table")
        var source: EventSource?
        if let preset = try string(root["preset"], "preset") {
            guard EventSource.presetNames.contains(preset) else {
                throw fail("preset", "unknown preset '\(preset)' (known: \(EventSource.presetNames.joined(separator: ", ")))")
            }
            do {
                source = try EventSource.preset(preset, schema: schema, table: table)
            } catch {
                throw EventSourceError.file(path: path, message: error.description)
            }
        }

        var columns: [String: String] = [:]
        if let raw = root["columns"] {
            guard let map = raw as? [String: Any] else { throw fail("columns", "a mapping of envelope field to column name") }
            for (key, value) in map {
                guard columnKeys.contains(key) else {
                    throw fail("columns.\(key)", "unknown field (known: \(columnKeys.sorted().joined(separator: ", ")))")
                }
                columns[key] = try string(value, "columns.\(key)")
            }
        }
        func encoding(_ key: String) throws(EventSourceError) -> EventSource.Encoding? {
            guard let text = try string(root[key], key) else { return nil }
            guard let encoding = EventSource.Encoding(rawValue: text) else {
                throw fail(key, "unknown encoding '\(text)' (known: \(EventSource.Encoding.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            return encoding
        }
        let payloadEncoding = try encoding("payload_encoding")
        let metadataEncoding = try encoding("metadata_encoding")

        var typeNames: [String: String]?
        if let raw = root["type_names"] {
            guard let map = raw as? [String: Any] else { throw fail("type_names", "a mapping of stored type name to event type name") }
            var names: [String: String] = [:]
            for (stored, value) in map {
                guard let logical = value as? String, !logical.isEmpty, !stored.isEmpty else {
                    throw fail("type_names.\(stored)", "the event type name projection files use (a non-empty string)")
                }
                names[stored] = logical
            }
            typeNames = names
        }
        let safeHead = try parseSafeHead(root["safe_head"], fail: fail)

        func required(_ key: String, _ presetValue: String?) throws(EventSourceError) -> String {
            guard let value = columns[key] ?? presetValue else { throw fail("columns.\(key)", "required (no preset gives it)") }
            return value
        }
        guard let tableName = table ?? source?.table else { throw fail("table", "required (no preset gives it)") }
        guard let payloadEncoding = payloadEncoding ?? source?.payloadEncoding else {
            throw fail("payload_encoding", "required: one of \(EventSource.Encoding.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let safeHead = safeHead ?? source?.safeHead else {
            throw fail("safe_head", "required: { transaction_id: <xid8 or bigint column> } or { settle_window: <duration> }")
        }
        let position = try required("position", source?.positionColumn)
        let streamID = try required("stream_id", source?.streamIDColumn)
        let eventType = try required("event_type", source?.eventTypeColumn)
        let payload = try required("payload", source?.payloadColumn)
        do {
            return try EventSource(
                name: source?.name ?? "custom", schema: schema, table: tableName,
                positionColumn: position, streamIDColumn: streamID,
                streamVersionColumn: columns["stream_version"] ?? source?.streamVersionColumn,
                eventTypeColumn: eventType, payloadColumn: payload, payloadEncoding: payloadEncoding,
                metadataColumn: columns["metadata"] ?? source?.metadataColumn,
                metadataEncoding: metadataEncoding ?? source?.metadataEncoding ?? .jsonb,
                recordedAtColumn: columns["recorded_at"] ?? source?.recordedAtColumn,
                eventIDColumn: columns["event_id"] ?? source?.eventIDColumn,
                typeNames: typeNames ?? source?.typeNames ?? [:], safeHead: safeHead)
        } catch {
            throw EventSourceError.file(path: path, message: error.description)
        }
    }

    static func parseSafeHead(_ raw: Any?, fail: (String, String) -> EventSourceError) throws(EventSourceError) -> EventSource.SafeHead? {
        guard let raw else { return nil }
        guard let map = raw as? [String: Any], map.count == 1, let (key, value) = map.first else {
            throw fail("safe_head", "exactly one of transaction_id or settle_window")
        }
        switch key {
        case "transaction_id":
            guard let column = value as? String, !column.isEmpty else { throw fail("safe_head.transaction_id", "a column name") }
            return .transactionID(column: column)
        case "settle_window":
            guard let milliseconds = parseDuration(value) else {
                throw fail("safe_head.settle_window", "a duration such as 2s, 500ms or 0")
            }
            return .settleWindow(milliseconds: milliseconds)
        default:
            throw fail("safe_head.\(key)", "unknown (known: transaction_id, settle_window)")
        }
    }

    /// `2s`, `500ms`, `0`: milliseconds.
    static func parseDuration(_ value: Any) -> Int? {
        if let number = value as? Int { return number == 0 ? 0 : nil }
        guard let text = value as? String else { return nil }
        if text == "0" { return 0 }
        for (suffix, factor) in [("ms", 1), ("s", 1_000), ("m", 60_000)] where text.hasSuffix(suffix) {
            guard let number = Int(text.dropLast(suffix.count)), number >= 0 else { return nil }
            return number * factor
        }
        return nil
    }
}
