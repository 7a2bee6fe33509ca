import RepriseEventSource
import Testing

/// Outbox mappings from YAML, and their check against a table's columns (no server needed).
struct OutboxMappingFileTests {
    @Test func aPresetWithOverridesKeepsWhatItDoesNotOverride() throws {
        let mapping = try OutboxMappingFile.parse(
            """
            preset: outbox_delete
            schema: billing
            table: outgoing
            columns: { headers: headers }
            safe_head: { transaction_id: txid }
            """, path: "outbox.yml")
        #expect(mapping.name == "outbox_delete" && mapping.schema == "billing" && mapping.table == "outgoing")
        #expect(mapping.orderColumn == "id" && mapping.streamKeyColumn == "aggregate_id" && mapping.headersColumn == "headers")
        #expect(mapping.published == .delete && mapping.safeHead == .transactionID(column: "txid"))
        #expect(try OutboxMappingFile.parse("preset: debezium\nsafe_head: { transaction_id: xmin }", path: "d.yml").safeHead == .insertingTransaction)
    }

    @Test func aCustomMappingNamesWhatIsMissingOrWrong() {
        let cases: [(String, String)] = [
            ("table: t\ncolumns: { order: id, message_id: id, stream_key: s, routing_key: r, body: b }\nbody_encoding: jsonb\npublished: delete", "safe_head: required"),
            ("table: t\ncolumns: { message_id: id, stream_key: s, routing_key: r, body: b }\nbody_encoding: jsonb\npublished: delete\nsafe_head: { settle_window: 1s }", "columns.order: required"),
            ("preset: outbox_events\ncolumns: { payload: p }", "columns.payload: unknown field"),
            ("preset: outbox_events\npublished: { flipped: done }", "published.flipped: unknown"),
            ("preset: outbox_events\ntable: \"x; drop\"", "not a plain identifier"),
            ("preset: nope", "unknown preset 'nope'"),
        ]
        for (text, expected) in cases {
            #expect(throws: EventSourceError.self) { try OutboxMappingFile.parse(text, path: "m.yml") }
            do {
                _ = try OutboxMappingFile.parse(text, path: "m.yml")
            } catch {
                #expect(error.description.contains(expected), "\(text): \(error.description)")
            }
        }
    }

    @Test func theCatalogCheckNamesTheFieldAndTheColumn() throws {
        let mapping = try OutboxMapping.preset("outbox_events")
        let columns = ["id": "bigint", "aggregate_id": "text", "event_type": "text", "payload": "jsonb", "is_published": "boolean"]
        _ = try ResolvedOutboxMapping(mapping: mapping, columnTypes: columns, uniqueColumns: ["id"])
        func problem(_ types: [String: String], unique: Set<String> = ["id"]) -> String {
            do {
                _ = try ResolvedOutboxMapping(mapping: mapping, columnTypes: types, uniqueColumns: unique)
                return ""
            } catch {
                return error.description
            }
        }
        #expect(problem(columns, unique: []).contains("columns.message_id: column id has no unique index"))
        #expect(problem(columns.merging(["payload": "text"]) { $1 }).contains("columns.body: column payload is text, expected jsonb"))
        #expect(problem(columns.merging(["is_published": "integer"]) { $1 }).contains("published.flag: column is_published is integer, expected boolean"))
        #expect(problem([:]).contains("does not exist"))
    }
}
