@testable import RepriseEngine
import RepriseEventSource
import RepriseEventStore
import RepriseProjection
import ReprisePostgres
import Testing

/// What the reader decodes from the store must be what the store holds: its envelope text is read
/// from the batch on demand, its type names interned per batch.
@Suite("Envelope decoding (real server)")
struct EnvelopeDecodingTests {
    @Test func decodedEnvelopeIsWhatTheStoreHolds() async throws {
        try await RebuildEnvironment.with { environment in
            let stream = "customer-envelope-\u{e9}-0001"
            let types = ["CustomerRegistered", "OrderCreated", "CustomerRegistered", "OrderCreated"]
            let appended = types.enumerated().map { index, type in
                NewEvent(eventID: "00000000-0000-7000-8000-00000000000\(index)", type: type, payload: #"{"n":\#(index),"customerId":"c-1"}"#,
                         metadata: #"{"by":"test"}"#)
            }
            _ = try await environment.store.append([StreamAppend(streamID: stream, expectedVersion: .noStream, events: appended)],
                                                   on: environment.postgres)
            let source = try await ResolvedEventSource.resolve(.reprise(environment.storeSchema), on: environment.postgres)
            let reader = EventStoreReader(connection: environment.postgres, source: source)
            let events = try await reader.streamEvents(stream, from: 0, visibleIn: try await reader.currentSnapshot())
            let stored = try await environment.postgres.query(
                "SELECT \(source.envelopeColumns) FROM \(source.qualifiedTable) WHERE stream_id = $1 ORDER BY global_position", [.text(stream)])
            try #require(events.count == types.count && stored.rowCount == types.count)
            for (row, event) in events.enumerated() {
                #expect(event.position == stored.int64(row, 0))
                #expect(event.transactionID == stored.string(row, 1) && !event.transactionID.isEmpty)
                #expect(event.eventID == appended[row].eventID && event.eventID == stored.string(row, 2))
                #expect(event.streamID == stream && event.streamVersion == Int64(row + 1))
                #expect(event.type == types[row])
                #expect(event.recordedAt == stored.string(row, 6) && event.recordedAt.hasSuffix("Z"))
                #expect(event.payload["n"] == .number(String(row)))
                #expect(event.metadata["by"] == .string("test"))
            }
            // A changed copy keeps the other fields and leaves the original alone.
            var copy = events[0]
            copy.eventID = "changed"
            #expect(copy.eventID == "changed" && events[0].eventID == appended[0].eventID)
            #expect(copy.transactionID == events[0].transactionID && copy.recordedAt == events[0].recordedAt)
        }
    }
}
