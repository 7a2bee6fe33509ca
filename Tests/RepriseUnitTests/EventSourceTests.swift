import RepriseEventSource
import ReprisePostgres
import Testing

@Suite("Source mappings")
struct EventSourceTests {
    @Test func presetsAreValidAndNamed() throws {
        for name in EventSource.presetNames {
            let source = try EventSource.preset(name)
            #expect(source.name == name)
            try source.validate()
        }
        #expect(throws: EventSourceError.self) { try EventSource.preset("axon") }
    }

    @Test func aFileOverridesItsPreset() throws {
        let source = try EventSourceFile.parse(
            """
            preset: spatie
            schema: legacy
            table: account_events
            columns: { metadata: meta }
            type_names: { "App\\\\Events\\\\MoneyAdded": MoneyAdded }
            safe_head: { settle_window: 500ms }
            """, path: "s.yml")
        #expect(source.schema == "legacy")
        #expect(source.table == "account_events")
        #expect(source.metadataColumn == "meta")
        #expect(source.positionColumn == "id")
        #expect(source.eventType(forStored: #"App\Events\MoneyAdded"#) == "MoneyAdded")
        #expect(source.safeHead == .settleWindow(milliseconds: 500))
    }

    @Test func aCustomMappingNeedsItsRequiredFields() throws {
        let full = try EventSourceFile.parse(
            """
            table: domain_events
            columns: { position: seq, stream_id: aggregate_id, event_type: kind, payload: body }
            payload_encoding: text
            safe_head: { transaction_id: txid }
            """, path: "c.yml")
        #expect(full.payloadEncoding == .text)
        #expect(full.streamVersionColumn == nil)
        #expect(full.safeHead == .transactionID(column: "txid"))

        let missing = #expect(throws: EventSourceError.self) {
            try EventSourceFile.parse("table: t\ncolumns: { position: p, stream_id: s, event_type: e }\npayload_encoding: json\nsafe_head: { settle_window: 1s }", path: "m.yml")
        }
        #expect(missing?.description == "m.yml: columns.payload: required (no preset gives it)")
    }

    @Test func anUnknownEncodingIsRefusedAtLoad() {
        let error = #expect(throws: EventSourceError.self) {
            try EventSourceFile.parse("preset: marten\npayload_encoding: xml", path: "bad.yml")
        }
        #expect(error?.description == "bad.yml: payload_encoding: unknown encoding 'xml' (known: json, jsonb, text, bytea)")
    }

    @Test func hostileIdentifiersAndUnknownKeysAreRefused() {
        let hostile = #expect(throws: EventSourceError.self) {
            try EventSourceFile.parse("preset: marten\ntable: \"mt_events; DROP TABLE x\"", path: "h.yml")
        }
        #expect(hostile?.description.contains("not a plain identifier") == true)
        let unknown = #expect(throws: EventSourceError.self) { try EventSourceFile.parse("preset: marten\ncolumn: {}", path: "u.yml") }
        #expect(unknown?.description.hasPrefix("u.yml: column: unknown key") == true)
        #expect(throws: EventSourceError.self) { try EventSourceFile.parse("preset: marten\nsafe_head: { settle_window: soon }", path: "w.yml") }
        #expect(throws: EventSourceError.self) {
            try EventSourceFile.parse("preset: marten\nsafe_head: { settle_window: 1s, transaction_id: t }", path: "w.yml")
        }
    }

    @Test func storedNamesCoverEveryMappedName() throws {
        var source = try EventSource.preset("eventsourcing")
        source.typeNames = ["bank:Account.Opened": "AccountOpened", "bank:Account.Created": "AccountOpened", "AccountClosed": "Closed"]
        #expect(source.storedNames(for: ["AccountOpened"]) == ["bank:Account.Created", "bank:Account.Opened", "AccountOpened"].sorted())
        // A stored name mapped to something else does not stand for itself.
        #expect(source.storedNames(for: ["AccountClosed"]) == [])
        #expect(source.storedNames(for: ["Closed"]) == ["AccountClosed", "Closed"])
    }

    @Test func theCatalogCheckNamesTheColumnAndItsType() throws {
        let marten = try EventSource.preset("marten")
        let types = ["seq_id": "bigint", "id": "uuid", "stream_id": "uuid", "version": "bigint", "data": "jsonb", "type": "character varying(500)",
                     "timestamp": "timestamp with time zone"]
        let resolved = try ResolvedEventSource(source: marten, columnTypes: types)
        #expect(resolved.envelopeColumns.contains("\"data\"::text"))
        var wrong = types
        wrong["data"] = "bytea"
        let error = #expect(throws: EventSourceError.self) { try ResolvedEventSource(source: marten, columnTypes: wrong) }
        #expect(error?.description == "event source marten: columns.payload: column data is bytea, expected jsonb")
        let missing = #expect(throws: EventSourceError.self) { try ResolvedEventSource(source: marten, columnTypes: [:]) }
        #expect(missing?.description.contains("does not exist") == true)
    }

    @Test func boundsOfTheOtherStrategyAreRefused() throws {
        let reprise = try ResolvedEventSource(source: .reprise(.standard), columnTypes: [
            "global_position": "bigint", "event_id": "uuid", "stream_id": "text", "stream_version": "bigint", "event_type": "text",
            "payload": "jsonb", "metadata": "jsonb", "recorded_at": "timestamp with time zone", "transaction_id": "xid8",
        ])
        #expect(try reprise.bound("10:12:") == .snapshot("10:12:"))
        #expect(throws: EventSourceError.self) { try reprise.bound("head:12") }
        let spatie = try ResolvedEventSource(source: try EventSource.preset("spatie"), columnTypes: [
            "id": "bigint", "aggregate_uuid": "uuid", "aggregate_version": "bigint", "event_version": "smallint",
            "event_class": "character varying(255)", "event_properties": "jsonb", "meta_data": "jsonb", "created_at": "timestamp(0) without time zone",
        ])
        #expect(try spatie.bound("head:12") == .head(12))
        #expect(throws: EventSourceError.self) { try spatie.bound("10:12:") }
        let (clause, parameters) = try spatie.roundFilter(storedTypes: ["A"], base: "head:5", target: "head:9", afterPosition: 0)
        #expect(clause == "\"event_class\" = ANY($1::text[]) AND \"id\" > $2 AND \"id\" <= $3 AND \"id\" > $4")
        #expect(parameters == [.text("{\"A\"}"), .int(0), .int(9), .int(5)])
    }

    @Test func theSettledHeadNeverGoesBack() async throws {
        let immediate = SafeHeadTracker(window: .zero)
        #expect(try await immediate.settledHead(observed: 7) == 7)
        let tracker = SafeHeadTracker(window: .milliseconds(20))
        // The first answer waits for the first observation to settle.
        #expect(try await tracker.settledHead(observed: 5) == 5)
        var last: Int64 = 5
        for head in Int64(6)...12 {
            let settled = try await tracker.settledHead(observed: head)
            #expect(settled >= last && settled <= head)
            last = settled
        }
    }
}
