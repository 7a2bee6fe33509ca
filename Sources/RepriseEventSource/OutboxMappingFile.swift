import Foundation
import Yams

/// Reads an outbox mapping from YAML (a file given with `relay --outbox`, or `outbox:` in a job file).
///
/// ```yaml
/// preset: outbox_events       # optional: start from a preset, override below
/// schema: public
/// table: outbox_events
/// columns: { order: id, message_id: id, stream_key: aggregate_id, routing_key: event_type,
///            body: payload, headers: headers }
/// body_encoding: jsonb        # json | jsonb | text | bytea
/// header_columns: [tenant_id] # sent as string headers under their own names
/// published: { flag: is_published }   # or { timestamp: published_at } or delete
/// safe_head: { settle_window: 2s }    # or { transaction_id: txid_column } or { transaction_id: xmin }
/// ```
public enum OutboxMappingFile {
    static let topKeys: Set<String> = ["preset", "schema", "table", "columns", "body_encoding", "header_columns", "published", "safe_head", "description"]
    static let columnKeys: Set<String> = ["order", "message_id", "stream_key", "routing_key", "body", "headers"]

    public static func load(path: String) throws(EventSourceError) -> OutboxMapping {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw EventSourceError.file(path: path, message: "cannot read the outbox mapping file")
        }
        return try parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) throws(EventSourceError) -> OutboxMapping {
        let document: Any?
        do {
            document = try Yams.load(yaml: text)
        } catch {
            throw EventSourceError.file(path: path, message: "not valid YAML: \(error)")
        }
        guard let root = document as? [String: Any] else {
            throw EventSourceError.file(path: path, message: "an outbox mapping is a mapping (preset, table, columns, body_encoding, published, safe_head)")
        }
        return try parse(root, path: path)
    }

    /// A preset name (unless a file of that name exists), or the path of a mapping file.
    public static func resolve(_ presetOrPath: String, schema: String = "public") throws(EventSourceError) -> OutboxMapping {
        if OutboxMapping.presetNames.contains(presetOrPath) && !FileManager.default.fileExists(atPath: presetOrPath) {
            return try OutboxMapping.preset(presetOrPath, schema: schema)
        }
        guard FileManager.default.fileExists(atPath: presetOrPath) else {
            throw EventSourceError.invalid(
                field: "outbox", message: "'\(presetOrPath)' is neither a preset (\(OutboxMapping.presetNames.joined(separator: ", "))) nor a mapping file")
        }
        return try load(path: presetOrPath)
    }

    /// From an already-parsed mapping (a job file's `outbox:`).
    public static func parse(_ root: [String: Any], path: String) throws(EventSourceError) -> OutboxMapping {
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
        var preset: OutboxMapping?
        if let name = try string(root["preset"], "preset") {
            guard OutboxMapping.presetNames.contains(name), name != "reprise" else {
                throw fail("preset", "unknown preset '\(name)' (known: \(OutboxMapping.presetNames.filter { $0 != "reprise" }.joined(separator: ", ")))")
            }
            do {
                preset = try OutboxMapping.preset(name, schema: schema, table: table)
            } catch {
                throw EventSourceError.file(path: path, message: error.description)
            }
        }
        var columns: [String: String] = [:]
        if let raw = root["columns"] {
            guard let map = raw as? [String: Any] else { throw fail("columns", "a mapping of message field to column name") }
            for (key, value) in map {
                guard columnKeys.contains(key) else { throw fail("columns.\(key)", "unknown field (known: \(columnKeys.sorted().joined(separator: ", ")))") }
                columns[key] = try string(value, "columns.\(key)")
            }
        }
        var encoding: EventSource.Encoding?
        if let text = try string(root["body_encoding"], "body_encoding") {
            guard let known = EventSource.Encoding(rawValue: text) else {
                throw fail("body_encoding", "unknown encoding '\(text)' (known: \(EventSource.Encoding.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            encoding = known
        }
        var headerColumns: [String]?
        if let raw = root["header_columns"] {
            guard let list = raw as? [Any], let names = list as? [String] else { throw fail("header_columns", "a list of column names") }
            headerColumns = names
        }
        let published = try parsePublished(root["published"], fail: fail)
        let safeHead = try parseSafeHead(root["safe_head"], fail: fail)

        func required(_ key: String, _ presetValue: String?) throws(EventSourceError) -> String {
            guard let value = columns[key] ?? presetValue else { throw fail("columns.\(key)", "required (no preset gives it)") }
            return value
        }
        guard let tableName = table ?? preset?.table else { throw fail("table", "required (no preset gives it)") }
        guard let bodyEncoding = encoding ?? preset?.bodyEncoding else {
            throw fail("body_encoding", "required: one of \(EventSource.Encoding.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let published = published ?? preset?.published else {
            throw fail("published", "required: { flag: <boolean column> }, { timestamp: <timestamp column> } or delete")
        }
        guard let safeHead = safeHead ?? preset?.safeHead else {
            throw fail("safe_head", "required: { transaction_id: <xid8 or bigint column, or xmin> } or { settle_window: <duration> }")
        }
        let messageID = try required("message_id", preset?.messageIDColumn)
        do {
            return try OutboxMapping(
                name: preset?.name ?? "custom", schema: schema, table: tableName, orderColumn: columns["order"] ?? preset?.orderColumn,
                messageIDColumn: messageID, streamKeyColumn: try required("stream_key", preset?.streamKeyColumn),
                routingKeyColumn: try required("routing_key", preset?.routingKeyColumn), bodyColumn: try required("body", preset?.bodyColumn),
                bodyEncoding: bodyEncoding, headersColumn: columns["headers"] ?? preset?.headersColumn,
                headerColumns: headerColumns ?? preset?.headerColumns ?? [], published: published, safeHead: safeHead)
        } catch {
            throw EventSourceError.file(path: path, message: error.description)
        }
    }

    static func parsePublished(_ raw: Any?, fail: (String, String) -> EventSourceError) throws(EventSourceError) -> OutboxMapping.Published? {
        guard let raw else { return nil }
        if let text = raw as? String, text == "delete" { return .delete }
        guard let map = raw as? [String: Any], map.count == 1, let (key, value) = map.first, let column = value as? String, !column.isEmpty else {
            throw fail("published", "one of { flag: <boolean column> }, { timestamp: <timestamp column> } or delete")
        }
        switch key {
        case "flag": return .flag(column: column)
        case "timestamp": return .timestamp(column: column)
        default: throw fail("published.\(key)", "unknown (known: flag, timestamp, or the word delete)")
        }
    }

    static func parseSafeHead(_ raw: Any?, fail: (String, String) -> EventSourceError) throws(EventSourceError) -> OutboxMapping.SafeHead? {
        if let map = raw as? [String: Any], map.count == 1, map["transaction_id"] as? String == "xmin" { return .insertingTransaction }
        return switch try EventSourceFile.parseSafeHead(raw, fail: fail) {
        case .transactionID(let column)?: .transactionID(column: column)
        case .settleWindow(let milliseconds)?: .settleWindow(milliseconds: milliseconds)
        case nil: nil
        }
    }
}
