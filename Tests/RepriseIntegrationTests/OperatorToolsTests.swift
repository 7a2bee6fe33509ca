import Foundation
@testable import RepriseEngine
import RepriseMySQL
import RepriseProjection
import ReprisePostgres
import Testing

/// What every table of both servers holds, to prove a command wrote nothing: `CHECKSUM TABLE`
/// of every MySQL table of the read-model database, and a count and hash of the events and the
/// outbox (published marks included) in PostgreSQL.
func serverFingerprint(_ environment: RebuildEnvironment) async throws -> [String] {
    var lines: [String] = []
    let tables = try await environment.mysql.query("SHOW TABLES").rows.compactMap { $0.first ?? nil }.sorted()
    for table in tables {
        let checksum = try await environment.mysql.query("CHECKSUM TABLE \(MySQLIdentifier.quote(table))")
        lines.append("mysql \(table) \(checksum.string(0, 1) ?? "NULL")")
    }
    for table in [environment.storeSchema.qualifiedEvents, environment.storeSchema.qualifiedOutbox] {
        let result = try await environment.postgres.query("SELECT count(*)::text || ' ' || coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '-') FROM \(table) t")
        lines.append("postgres \(table) \(result.string(0, 0) ?? "")")
    }
    return lines
}

/// The stream with the most events of a kind (`order-` streams), for traces that show something.
func longestStream(_ environment: RebuildEnvironment, prefix: String) async throws -> String {
    let result = try await environment.postgres.query(
        "SELECT stream_id FROM \(environment.storeSchema.qualifiedEvents) WHERE stream_id LIKE $1 GROUP BY stream_id ORDER BY count(*) DESC, stream_id LIMIT 1",
        [.text(prefix + "%")])
    guard let stream = result.string(0, 0) else { throw TestSetupError("no stream starting with \(prefix)") }
    return stream
}

func sampleDefinition(_ name: String) throws -> ProjectionDefinition {
    guard let definition = try RebuildEnvironment.samples().first(where: { $0.name == name }) else { throw TestSetupError("no sample \(name)") }
    return definition
}

@Suite("Operator tools: trace (real servers)")
struct TraceTests {
    @Test func traceOfAnOrderEndsWithTheRebuiltRowAndWritesNothing() async throws {
        let environment = try await RebuildEnvironment.make()
        defer { Task { await environment.tearDown() } }
        try await environment.seed(events: 2_000, seed: 91)
        let definition = try sampleDefinition("order_summary")
        _ = try await environment.engine().rebuild([.file(definition)])
        let stream = try await longestStream(environment, prefix: "order-")
        let before = try await serverFingerprint(environment)

        // The command as an operator runs it: from empty rows, and from the live rows.
        var traces: [[String: Any]] = []
        for extra in [[], ["--from-live"]] {
            let outcome = try runReprise(
                ["trace", "order_summary", "--stream", stream, "--json", "--store-schema", environment.storeSchema.schema] + extra,
                environment: environment.processVariables)
            #expect(outcome.status == 0, "\(outcome.standardError)")
            let json = try JSONSerialization.jsonObject(with: Data(outcome.standardOutput.utf8)) as? [String: Any]
            traces.append(try #require(json))
        }
        #expect(try await serverFingerprint(environment) == before)

        // The row the rebuild wrote, read the way the engine reads rows (canonical values).
        let layout = TableLayout(try #require(definition.table(named: "order_summary")))
        let orderID = String(stream.dropFirst("order-".count))
        let key = RowKey([.string(orderID)])
        let live = try #require(try await ReadModelStore(connection: environment.mysql).loadRows(layout, physical: "order_summary", keys: [key])[key])
        let expected = Dictionary(uniqueKeysWithValues: zip(layout.columns.map(\.name), live.map { TraceValue($0).description }))

        let eventCount = try await environment.postgres.query(
            "SELECT count(*) FROM \(environment.storeSchema.qualifiedEvents) WHERE stream_id = $1", [.text(stream)]).int(0, 0)
        for trace in traces {
            let events = try #require(trace["events"] as? [[String: Any]])
            #expect(events.count == eventCount)
            #expect(try #require(trace["finalRows"] as? [[String: Any]]).count == 1)
        }
        // From empty rows: the trace ends with exactly the row the rebuild wrote.
        let finalRow = try #require((traces[0]["finalRows"] as? [[String: Any]])?.first?["columns"] as? [String: Any])
        #expect(finalRow.mapValues { "\($0)" } == expected)
        // The first event creates the row: every column is new.
        let events = try #require(traces[0]["events"] as? [[String: Any]])
        let first = try #require((events.first?["operations"] as? [[String: Any]])?.first)
        #expect(first["outcome"] as? String == "ran")
        #expect((first["columns"] as? [[String: Any]])?.allSatisfy { $0["before"] == nil && $0["changed"] as? Bool == true } == true)
        // From the live rows: the first operation starts from the live row (replaying the stream
        // on top of it shows what the handlers would do to the rows as they are).
        let fromLiveFirst = try #require((((traces[1]["events"] as? [[String: Any]])?.first?["operations"]) as? [[String: Any]])?.first)
        let liveBefore = try #require(fromLiveFirst["columns"] as? [[String: Any]]).reduce(into: [String: String]()) { row, column in
            row[column["name"] as? String ?? ""] = column["before"].map { "\($0)" }
        }
        #expect(liveBefore == expected)
    }

    @Test func traceStopsAtUptoAndReportsSkippedOperations() async throws {
        let environment = try await RebuildEnvironment.make()
        defer { Task { await environment.tearDown() } }
        try await environment.seed(events: 1_000, seed: 92)
        let stream = try await longestStream(environment, prefix: "order-")
        let positions = try await environment.postgres.query(
            "SELECT global_position FROM \(environment.storeSchema.qualifiedEvents) WHERE stream_id = $1 ORDER BY global_position", [.text(stream)])
        let second = try #require(positions.int64(1, 0))
        let definition = try sampleDefinition("order_summary")
        let trace = try await StreamTracer.trace(
            .file(definition), streamID: stream, postgresURL: TestServers.postgresURL, mysqlURL: nil, source: .reprise(environment.storeSchema),
            fromLive: false, upto: second)
        #expect(trace.events.map(\.position) == [try #require(positions.int64(0, 0)), second])
        #expect(trace.failure == nil)

        // Without its OrderCreated, the stream's updates find no row and are skipped.
        let later = try await StreamTracer.trace(
            .file(definition), streamID: stream, postgresURL: TestServers.postgresURL, mysqlURL: nil, source: .reprise(environment.storeSchema),
            fromLive: false, upto: nil)
        var withoutCreate = definition
        withoutCreate.handlers["OrderCreated"] = []
        let skipped = try await StreamTracer.trace(
            .file(withoutCreate), streamID: stream, postgresURL: TestServers.postgresURL, mysqlURL: nil, source: .reprise(environment.storeSchema),
            fromLive: false, upto: nil)
        #expect(later.finalRows.count == 1)
        #expect(skipped.finalRows.isEmpty)
        let reasons = skipped.events.dropFirst().flatMap(\.operations).map { "\($0.outcome) \($0.reason ?? "")" }
        #expect(!reasons.isEmpty && reasons.allSatisfy { $0 == "skipped row missing" })
    }
}
