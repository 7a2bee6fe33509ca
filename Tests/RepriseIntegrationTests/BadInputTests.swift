import Foundation
import RepriseEngine
import RepriseEventSource
import RepriseLive
import RepriseMySQL
import RepriseProjection
import ReprisePostgres
import Testing
import RepriseLive

/// Bad input gets a precise error (naming the projection, the position and the cause) or is
/// parked by policy: never a crash, a silent skip or a corrupted row. Payloads are written to a
/// mapped table with a text payload column, so malformed JSON can exist at all.
@Suite("Bad input (real servers)")
struct BadInputTests {
    static let projectionYAML = """
        name: balances
        version: 1
        tables:
          balances:
            columns:
              account: varchar(64) not null
              owner: varchar(300)
              amount: bigint not null default 0
            primary_key: [account]
        handlers:
          Opened:
            - upsert: { table: balances, set: { account: event.stream_id, owner: payload.owner } }
          Deposited:
            - upsert: { table: balances, set: { account: event.stream_id, amount: amount + payload.amount } }
        """

    /// A store of its own: text payloads, a transaction id column.
    struct Store {
        let environment: RebuildEnvironment
        var table: String { "\(PostgresIdentifier.quote(environment.storeSchema.schema)).inputs" }

        private func created() async throws -> Store {
            let store = self
            try await environment.postgres.execute("""
                CREATE TABLE \(store.table) (seq bigserial PRIMARY KEY, stream text NOT NULL, version int NOT NULL, kind text NOT NULL,
                  body text NOT NULL, txid bigint NOT NULL DEFAULT txid_current())
                """)
            return store
        }

        /// A store for `body`, dropped afterwards, also when `body` throws.
        static func with(_ body: (Store) async throws -> Void) async throws {
            try await RebuildEnvironment.with { environment in
                let store = try await Store(environment: environment).created()
                try await body(store)
            }
        }

        @discardableResult
        func append(_ stream: String, _ kind: String, _ body: String) async throws -> Int64 {
            try await environment.postgres.query(
                "INSERT INTO \(table) (stream, version, kind, body) VALUES ($1, (SELECT count(*) + 1 FROM \(table) WHERE stream = $1), $2, $3) RETURNING seq",
                [.text(stream), .text(kind), .text(body)]).int64(0, 0) ?? 0
        }

        var source: EventSource {
            get throws {
                try EventSource(
                    schema: environment.storeSchema.schema, table: "inputs", positionColumn: "seq", streamIDColumn: "stream", streamVersionColumn: "version",
                    eventTypeColumn: "kind", payloadColumn: "body", payloadEncoding: .text, safeHead: .transactionID(column: "txid"))
            }
        }

        func engine(chunkSize: Int = 2, readAhead: Bool = false) throws -> RebuildEngine {
            var options = RebuildOptions()
            options.chunkSize = chunkSize
            options.fetchSize = chunkSize
            options.readAhead = readAhead
            return RebuildEngine(postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL, source: try source, options: options)
        }

        func rebuild(chunkSize: Int = 2, readAhead: Bool = false) async throws -> [RebuildResult] {
            try await engine(chunkSize: chunkSize, readAhead: readAhead).rebuild([.file(try BadInputTests.projection())])
        }

        /// The error a rebuild stops with.
        func failedRebuild(readAhead: Bool = false) async throws -> EngineError? {
            do {
                _ = try await rebuild(readAhead: readAhead)
                return nil
            } catch let error as EngineError {
                return error
            }
        }
    }

    static func projection() throws -> ProjectionDefinition {
        try ProjectionFileParser.parse(yaml: projectionYAML, file: "balances.yml")
    }

    /// With read-ahead the pipeline holds a step back; a payload that fails to decode after it
    /// still finds that step handled and committed, as without read-ahead.
    @Test func withReadAheadMalformedJSONStopsTheRebuildAtTheSamePlace() async throws {
        try await Store.with { store in
            for account in ["a", "b"] { try await store.append(account, "Opened", #"{"owner": "\#(account)"}"#) }
            try await store.append("b", "Deposited", #"{"amount": 3}"#)
            try await store.append("a", "Deposited", #"{"amount": 2}"#)
            let bad = try await store.append("a", "Deposited", #"{"amount": 5"#)
            try await store.append("b", "Deposited", #"{"amount": 4}"#)
            let error = try await store.failedRebuild(readAhead: true)
            #expect(error?.kind == .badPayload)
            #expect(error?.position == bad)
            let building = try await store.environment.mysql.query("SELECT events_applied FROM reprise_builds WHERE state = 'building'")
            #expect(building.int64(0, 0) == 4, "two chunks of two events before the bad one")
        }
    }

    @Test func malformedJSONStopsARebuildAtItsPositionAndParksItsStreamLive() async throws {
        try await Store.with { store in
            for account in ["a", "b"] { try await store.append(account, "Opened", #"{"owner": "\#(account)"}"#) }
            _ = try await store.rebuild()
            let runner = try await LiveProjectionRunner.open(
                projections: [.file(try Self.projection())], postgresURL: TestServers.postgresURL, mysqlURL: store.environment.mysqlURL, source: try store.source)
            try await store.append("b", "Deposited", #"{"amount": 3}"#)
            try await store.append("a", "Deposited", #"{"amount": 2}"#)
            let bad = try await store.append("a", "Deposited", #"{"amount": 5"#)
            try await store.append("b", "Deposited", #"{"amount": 4}"#)

            // Live: the failure names the position and the stream, which the worker parks.
            do {
                _ = try await runner.catchUp()
                Issue.record("catch-up should fail on the malformed payload")
            } catch let failure as LiveProjectionRunner.Failure {
                #expect(failure.error.kind == .badPayload)
                #expect(failure.error.position == bad)
                #expect(failure.streamID == "a")
                #expect(failure.error.description.contains("column body"), "\(failure.error)")
            }
            FaultLedger.record(.badInput, "malformed JSON payload (live: parked stream)")
            await runner.close()

            // Rebuild: stops with the position and column; chunks before the bad one stay committed,
            // the chunk holding it is not, and nothing is swapped in.
            let error = try await store.failedRebuild()
            #expect(error?.kind == .badPayload)
            #expect(error?.position == bad)
            #expect(error?.description.contains("column body") == true)
            let building = try await store.environment.mysql.query("SELECT events_applied FROM reprise_builds WHERE state = 'building'")
            #expect(building.int64(0, 0) == 4, "two chunks of two events before the bad one")
            #expect(try await store.environment.rows("balances") == [["a", "a", "0"], ["b", "b", "0"]], "the live table is the previous build's")
            FaultLedger.record(.badInput, "malformed JSON payload (rebuild: stopped at its position)")
        }
    }

    /// A worker can stop right after parking, before the round the poison failed in closes. A skip
    /// (or retry) asked for then waits for that round: released earlier, the round would read the
    /// poison again and fail, or park the stream a second time.
    @Test func aSkipAskedBeforeTheFailingRoundClosedWaitsForItAndIsNotMetAgain() async throws {
        try await Store.with { store in
            for account in ["a", "b"] { try await store.append(account, "Opened", #"{"owner": "\#(account)"}"#) }
            _ = try await store.rebuild()
            let bad = try await store.append("a", "Deposited", #"{"amount": "five"}"#)
            try await store.append("a", "Deposited", #"{"amount": 2}"#)
            try await store.append("b", "Deposited", #"{"amount": 4}"#)
            let open = { [store] in
                try await LiveProjectionRunner.open(
                    projections: [.file(try Self.projection())], postgresURL: TestServers.postgresURL, mysqlURL: store.environment.mysqlURL, source: try store.source)
            }
            let parked = ParkedStreamStore(connection: store.environment.mysql)
            // Parked, then stopped before the next catch-up (which would close the round).
            let first = try await open()
            do {
                _ = try await first.catchUp()
                Issue.record("catch-up should fail on the poison")
            } catch let failure as LiveProjectionRunner.Failure {
                #expect(failure.error.position == bad)
                try await first.park(projection: "balances", streamID: "a", failure: failure)
            }
            await first.close()
            #expect(try await parked.request(.skip, projection: "balances", streamID: "a"))

            // The next runner closes the round without the stream, then releases it.
            let second = try await open()
            let closing = try await second.catchUp()
            #expect(closing.flatMap(\.releasedStreams).isEmpty, "the round the poison failed in is still open")
            #expect(try await parked.list(projection: "balances").map(\.action) == [.skip])
            let releasing = try await second.catchUp()
            #expect(releasing.flatMap(\.releasedStreams) == ["a"])
            await second.close()
            #expect(try await parked.list(projection: "balances").isEmpty, "released, not parked again")
            #expect(try await store.environment.rows("balances") == [["a", "a", "2"], ["b", "b", "4"]], "the poison skipped, the stream's later event applied once")
            FaultLedger.record(.badInput, "skip asked before the poison's round closed")
        }
    }

    /// An unpartitioned worker can stop in the middle of a round (a chunk failed on a poison).
    /// Partitioned consumers then split the build, finishing that round first: the poison met
    /// there goes through the poison policy too, parked in the whole projection and then in every
    /// partition, instead of ending the consumer.
    @Test func aPoisonInTheRoundASplitFinishesIsParkedInEveryPartition() async throws {
        try await Store.with { store in
            let partitioned = try ProjectionFileParser.parse(yaml: Self.projectionYAML + "\npartition_key: event.stream_id\n", file: "balances.yml")
            for account in ["a", "b", "c", "d"] { try await store.append(account, "Opened", #"{"owner": "\#(account)"}"#) }
            _ = try await store.engine().rebuild([.file(partitioned)])
            try await store.append("b", "Deposited", #"{"amount": 1}"#)
            try await store.append("c", "Deposited", #"{"amount": 2}"#)
            let bad = try await store.append("a", "Deposited", #"{"amount": "five"}"#)
            try await store.append("d", "Deposited", #"{"amount": 4}"#)
            try await store.append("a", "Deposited", #"{"amount": 3}"#)
            var small = LiveProjectionRunner.Options()
            small.chunkSize = 1
            small.fetchSize = 1
            let open = { [store] (partition: LiveProjectionRunner.Partition?, options: LiveProjectionRunner.Options) in
                try await LiveProjectionRunner.open(
                    projections: [.file(partitioned)], postgresURL: TestServers.postgresURL, mysqlURL: store.environment.mysqlURL, source: try store.source,
                    partition: partition, options: options)
            }
            // An unpartitioned worker commits the chunks before the poison, then stops (round open).
            let whole = try await open(nil, small)
            await #expect(throws: LiveProjectionRunner.Failure.self) { _ = try await whole.catchUp() }
            await whole.close()

            // A partition's consumer opens; its first catch-up splits and meets the poison.
            let first = try await open(.init(number: 0, count: 2, owner: "test-0"), small)
            do {
                _ = try await first.catchUp()
                Issue.record("the split should meet the poison")
            } catch let failure as LiveProjectionRunner.Failure {
                #expect(failure.error.position == bad && failure.streamID == "a" && failure.splittingBuild != nil, "\(failure)")
                try await first.park(projection: "balances", streamID: "a", failure: failure)
            }
            _ = try await first.catchUp()
            let parked = ParkedStreamStore(connection: store.environment.mysql)
            #expect(try await parked.list(projection: "balances").map(\.livePartition).sorted() == ["0/2", "1/2"], "parked in every partition")
            let second = try await open(.init(number: 1, count: 2, owner: "test-1"), small)
            _ = try await second.catchUp()
            #expect(try await store.environment.rows("balances") == [["a", "a", "0"], ["b", "b", "1"], ["c", "c", "2"], ["d", "d", "4"]], "a's events wait")

            // Skipped: each partition releases its share of the stream.
            #expect(try await parked.request(.skip, projection: "balances", streamID: "a"))
            _ = try await first.catchUp()
            _ = try await second.catchUp()
            await first.close()
            await second.close()
            #expect(try await parked.list(projection: "balances").isEmpty)
            #expect(try await store.environment.rows("balances") == [["a", "a", "3"], ["b", "b", "1"], ["c", "c", "2"], ["d", "d", "4"]])
            FaultLedger.record(.badInput, "poison in the round a live split finishes (parked in every partition)")
        }
    }

    @Test(arguments: [("missing field", #"{"note": "no amount"}"#), ("wrong type", #"{"amount": "five"}"#), ("fraction into an integer column", #"{"amount": 1.5}"#)])
    func aPayloadHandlersCannotUseStopsWithThePositionAndCause(kind: String, body: String) async throws {
        try await Store.with { store in
            try await store.append("a", "Opened", #"{"owner": "a"}"#)
            let bad = try await store.append("a", "Deposited", body)
            let error = try await store.failedRebuild()
            #expect(error?.kind == .handlerFailed, "\(String(describing: error))")
            #expect(error?.projection == "balances")
            #expect(error?.position == bad)
            #expect(error?.eventType == "Deposited")
            FaultLedger.record(.badInput, "\(kind) in a payload")
        }
    }

    @Test func eventTypesNoProjectionHandlesAreNotRead() async throws {
        try await Store.with { store in
            try await store.append("a", "Opened", #"{"owner": "a"}"#)
            try await store.append("a", "AccountAudited", #"not even JSON"#)
            try await store.append("a", "Deposited", #"{"amount": 7}"#)
            let results = try await store.rebuild()
            #expect(results[0].eventsApplied == 2)
            #expect(try await store.environment.rows("balances") == [["a", "a", "7"]])
            FaultLedger.record(.badInput, "event type no projection knows")
        }
    }

    @Test func aSixteenMebibytePayloadIsReadAndDecoded() async throws {
        try await Store.with { store in
            let blob = String(repeating: "0123456789abcdef", count: 1 << 20)  // 16 MiB
            try await store.append("a", "Opened", #"{"blob": "\#(blob)", "owner": "big"}"#)
            try await store.append("a", "Deposited", #"{"amount": 1}"#)
            _ = try await store.rebuild()
            #expect(try await store.environment.rows("balances") == [["a", "big", "1"]])
            FaultLedger.record(.badInput, "16 MiB payload")
        }
    }

    @Test func quotesBackslashesNULAndMultibyteTextRoundTrip() async throws {
        try await Store.with { store in
            let hostile = "O'Brien \"Z\" back\\slash '; DROP TABLE balances; -- Zoë 日本 🚀 nul:\u{0}:end"
            let json = String(decoding: try JSONSerialization.data(withJSONObject: ["owner": hostile]), as: UTF8.self)
            #expect(json.contains("\\u0000"))
            try await store.append("x'; DROP TABLE balances; --", "Opened", json)
            _ = try await store.rebuild()
            let row = try await store.environment.mysql.query("SELECT account, owner FROM balances")
            #expect(row.rowCount == 1)
            #expect(row.string(0, 0) == "x'; DROP TABLE balances; --")
            #expect(row.string(0, 1) == hostile)
            FaultLedger.record(.badInput, "quotes, backslashes, NUL bytes and multi-byte text in values")
        }
    }

    @Test func hostileIdentifiersInAProjectionFileAreRefusedBeforeAnySQL() async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.mysql.execute("CREATE TABLE x (id int)")
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.uniqueName("hostile")).path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: folder) }
            for (file, yaml) in [
                ("table", Self.projectionYAML.replacingOccurrences(of: "  balances:\n", with: "  \"orders; DROP TABLE x\":\n")),
                ("column", Self.projectionYAML.replacingOccurrences(of: "owner: varchar(300)", with: "\"owner`; DROP TABLE x; --\": varchar(300)")),
                ("name", Self.projectionYAML.replacingOccurrences(of: "name: balances", with: "name: \"balances; DROP TABLE x\"")),
            ] {
                try yaml.write(toFile: folder + "/hostile.yml", atomically: true, encoding: .utf8)
                let outcome = try runReprise(
                    ["rebuild", "--all", "--projections-dir", folder, "--quiet"],
                    environment: environment.processVariables)
                #expect(outcome.status != 0 && outcome.signal == nil)
                #expect(outcome.standardError.contains("hostile.yml"), "\(file): \(outcome.standardError)")
                FaultLedger.record(.badInput, "hostile identifier in a projection file (\(file))")
            }
            #expect(try await environment.mysql.query("SHOW TABLES LIKE 'x'").rowCount == 1)
        }
    }

    @Test func wrongCredentialsAndUnreachableHostsExitWithCodeThreeAndNoSecret() async throws {
        let wrong = "wrong_pw_\(UInt32.random(in: 0...UInt32.max))"
        SecretWatch.register(wrong)
        let cases: [(String, [String: String])] = [
            ("postgresql wrong password", ["REPRISE_POSTGRES_URL": TestServers.withPassword(TestServers.postgresURL, wrong), "REPRISE_MYSQL_URL": TestServers.mysqlURL]),
            ("mysql wrong password", ["REPRISE_POSTGRES_URL": TestServers.postgresURL, "REPRISE_MYSQL_URL": TestServers.withPassword(TestServers.mysqlURL, wrong)]),
            ("postgresql unreachable", ["REPRISE_POSTGRES_URL": "postgresql://reprise:\(wrong)@127.0.0.1:1/x", "REPRISE_MYSQL_URL": TestServers.mysqlURL]),
            ("mysql unreachable", ["REPRISE_POSTGRES_URL": TestServers.postgresURL, "REPRISE_MYSQL_URL": "mysql://reprise:\(wrong)@127.0.0.1:1/x"]),
        ]
        for (kind, environment) in cases {
            let outcome = try runReprise(["status"], environment: environment)
            #expect(outcome.status == 3, "\(kind): \(outcome.standardError)")
            #expect(outcome.standardError.contains(kind.hasPrefix("postgresql") ? "PostgreSQL" : "MySQL"), "\(kind): \(outcome.standardError)")
            FaultLedger.record(.badInput, kind)
        }
        for (kind, url) in [("rabbitmq wrong password", TestServers.withPassword(TestServers.amqpURL, wrong)), ("rabbitmq unreachable", "amqp://reprise:\(wrong)@127.0.0.1:1/%2F")] {
            let outcome = try runReprise(["check"], environment: ["REPRISE_AMQP_URL": url])
            #expect(outcome.status != 0, "\(kind): \(outcome.standardOutput)")
            #expect((outcome.standardOutput + outcome.standardError).contains("rabbitmq   FAILED"), "\(kind)")
            FaultLedger.record(.badInput, kind)
        }
    }
}
