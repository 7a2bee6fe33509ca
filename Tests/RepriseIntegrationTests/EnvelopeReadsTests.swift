import Foundation
@testable import RepriseEngine
import RepriseEventSource
import RepriseProjection
import ReprisePostgres
import Testing

/// One row per order created, keyed by its event id, with the time it was recorded: reads the
/// envelope text the rebuild's cursor leaves out when no handler of the round names it.
let envelopeTimesYAML = """
    name: envelope_times
    version: 1
    tables:
      envelope_times:
        columns:
          event_id: varchar(64) not null
          recorded_at: varchar(40)
          last_position: bigint
        primary_key: [event_id]
    handlers:
      OrderCreated:
        - upsert:
            table: envelope_times
            set: { event_id: event.event_id, recorded_at: event.recorded_at, last_position: event.position }
    """

/// The rebuild reads only the envelope fields its handlers can read (`EventStoreReader.envelopeReads`):
/// the transaction id, event id and time are NULL in the cursor's rows, and the stream id is
/// decoded only when read, unless a handler names them. What handlers see must not change.
@Suite("Envelope reads of a rebuild (real servers)")
struct EnvelopeReadsTests {
    /// A round read without the envelope text and without decoding stream ids: the stream id read
    /// later is the stored one (also after a setter lets go of the batch), the text is not there.
    @Test func roundWithoutEnvelopeTextKeepsStreamIDsReadable() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 400, seed: 31)
            let source = try await ResolvedEventSource.resolve(.reprise(environment.storeSchema), on: environment.postgres)
            let reader = EventStoreReader(connection: environment.postgres, source: source)
            let snapshot = try await reader.currentSnapshot()
            let stored = try await environment.postgres.query(
                "SELECT global_position, stream_id FROM \(source.qualifiedTable) ORDER BY global_position")
            let decoder = JSONFieldDecoder(paths: [[.key("orderId")]])
            for reads in [EventStoreReader.EnvelopeReads.all, .init(text: false, streamID: false), .init(text: false, streamID: true)] {
                var round = EventStoreReader.Round(
                    eventTypes: [], baseSnapshot: nil, targetSnapshot: snapshot, afterPosition: 0, readMetadata: false)
                round.envelope = reads
                let types = try await environment.postgres.query("SELECT DISTINCT event_type FROM \(source.qualifiedTable)")
                round.eventTypes = (0..<types.rowCount).compactMap { types.string($0, 0) }
                var events: [ProjectionEvent] = []
                try await reader.read(round, fetchSize: 150, decoder: decoder, metadataDecoder: JSONFieldDecoder(paths: []), timings: EngineTimings()) {
                    events += $0
                }
                try #require(events.count == stored.rowCount && events.count == 400)
                for (row, event) in events.enumerated() {
                    #expect(event.position == stored.int64(row, 0))
                    #expect(event.streamID == stored.string(row, 1))
                    if reads.text {
                        #expect(event.recordedAt.hasSuffix("Z") && !event.transactionID.isEmpty && event.eventID.count == 36)
                    } else {
                        #expect(event.recordedAt.isEmpty && event.transactionID.isEmpty)
                    }
                }
                // A setter replaces the storage: the stream id comes along, read from the batch.
                var changed = events[7]
                changed.eventID = "changed"
                #expect(changed.eventID == "changed" && changed.streamID == stored.string(7, 1))
                #expect(events[7].streamID == stored.string(7, 1))
            }
        }
    }

    /// Which envelope fields a group's handlers can read, from their compiled field tables.
    @Test func envelopeReadsFollowTheHandlers() throws {
        func reads(_ definitions: [ProjectionDefinition]) -> EventStoreReader.EnvelopeReads {
            let builds = definitions.enumerated().map { index, definition in
                ActiveBuild(
                    record: BuildRecord(
                        buildID: Int64(index + 1), projection: definition.name, version: 1, definitionHash: "h", state: .building,
                        baseSnapshot: nil, targetSnapshot: "100:100:", roundPosition: 0, eventsApplied: 0, rounds: 0),
                    runnable: .file(definition), fresh: true, cacheLimit: 1)
            }
            return EventStoreReader.envelopeReads(builds)
        }
        let times = try ProjectionFileParser.parse(yaml: envelopeTimesYAML, file: "envelope_times.yml")
        let counts = try streamCounts()
        let neither = try ProjectionFileParser.parse(yaml: streamCountsYAML.replacingOccurrences(of: "stream_id: event.stream_id", with: "stream_id: payload.orderId"),
                                                     file: "stream_counts.yml")
        #expect(reads([times]).text && !reads([times]).streamID)
        #expect(!reads([counts]).text && reads([counts]).streamID)
        #expect(!reads([neither]).text && !reads([neither]).streamID)
        #expect(reads([neither, times]).text)
    }

    /// A plain rebuild logs in to PostgreSQL once: the control statements share the reader's
    /// session (each login costs SCRAM's password hashing and a TLS handshake).
    @Test func plainRebuildUsesOnePostgresSession() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 600, seed: 33)
            let application = TestServers.uniqueName("onesession")
            let separator = TestServers.postgresURL.contains("?") ? "&" : "?"
            var hooks = RebuildHooks()
            let postgres = environment.postgres
            let sessions = Counts()
            hooks.afterRound = { _ in
                let count = try await postgres.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", [.text(application)]).int(0, 0) ?? -1
                await sessions.add(count)
            }
            let engine = RebuildEngine(
                postgresURL: TestServers.postgresURL + separator + "application_name=" + application, mysqlURL: environment.mysqlURL,
                storeSchema: environment.storeSchema)
            let results = try await engine.rebuild([.file(try streamCounts())], hooks: hooks)
            #expect(results[0].eventsApplied == 600)
            let seen = await sessions.values
            #expect(!seen.isEmpty && seen.allSatisfy { $0 == 1 })
            #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        }
    }

    actor Counts {
        var values: [Int] = []
        func add(_ value: Int) { values.append(value) }
    }

    /// A rebuild of a group where one projection reads the event id and time and the other does
    /// not: both tables hold what the store says.
    @Test func groupRebuildReadsTheEnvelopeItsHandlersName() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 1_500, seed: 32)
            let times = try ProjectionFileParser.parse(yaml: envelopeTimesYAML, file: "envelope_times.yml")
            let results = try await environment.engine { $0.fetchSize = 400 }.rebuild([.file(times), .file(try streamCounts())])
            #expect(results.count == 2 && results.allSatisfy { $0.swapped })
            let expected = try await environment.postgres.query(
                """
                SELECT event_id::text, to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), global_position::text
                FROM \(environment.storeSchema.qualifiedEvents) WHERE event_type = 'OrderCreated'
                """)
            let rows = (0..<expected.rowCount).map { row in (0..<3).map { expected.string(row, $0) ?? "NULL" } }.sorted { $0.lexicographicallyPrecedes($1) }
            #expect(!rows.isEmpty)
            #expect(try await environment.rows("envelope_times") == rows)
            #expect(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
        }
    }
}
