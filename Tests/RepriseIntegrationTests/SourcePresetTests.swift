import Foundation
import RepriseEngine
import RepriseEventSource
import RepriseLive
import RepriseProjection
import ReprisePostgres
import Testing
import RepriseLive

/// Rebuilds from event tables written by other libraries, each created as that library's own
/// migration creates it and filled in its stored format (see the schema notes in the README).
@Suite("Source mappings (real servers)")
struct SourcePresetTests {
    /// A bank account history: (stream, version, kind, owner or amount).
    struct Entry: Sendable {
        var stream: String
        var version: Int
        var opened: String?
        var amount: Int?
    }

    static let streams = ["2f1c9a36-7d35-4a57-9f36-5d1a0e2b7c11", "8b3e6f20-1a2b-4c3d-8e9f-0a1b2c3d4e5f", "c0ffee00-0000-4000-8000-000000000abc"]

    /// Three accounts, deposits interleaved across them, with quotes and multi-byte text in a name.
    static func history() -> [Entry] {
        var entries: [Entry] = []
        let owners = ["Ada O'Brien", "Zoë \"Z\" Ñúñez", "Grace"]
        var versions = [0, 0, 0]
        for (index, stream) in streams.enumerated() {
            versions[index] += 1
            entries.append(Entry(stream: stream, version: versions[index], opened: owners[index]))
        }
        for step in 0..<12 {
            let index = step % 3
            versions[index] += 1
            entries.append(Entry(stream: streams[index], version: versions[index], amount: (step + 1) * 7))
        }
        return entries
    }

    /// account_id, owner, balance, events, last_version: computed from the history directly.
    static func expectedRows() -> [[String]] {
        streams.map { stream in
            let mine = history().filter { $0.stream == stream }
            let owner = mine.compactMap(\.opened).first ?? "NULL"
            let balance = mine.compactMap(\.amount).reduce(0, +)
            return [stream, owner, String(balance), String(mine.count), String(mine.map(\.version).max() ?? 0)]
        }.sorted { $0.lexicographicallyPrecedes($1) }
    }

    static func projection(opened: String, deposited: String, owner: String, amount: String) -> String {
        """
        name: accounts
        version: 1
        tables:
          accounts:
            columns:
              account_id: varchar(64) not null
              owner: varchar(200)
              balance: bigint not null default 0
              events: int not null default 0
              last_version: bigint
            primary_key: [account_id]
        handlers:
          \(opened):
            - upsert:
                table: accounts
                set: { account_id: event.stream_id, owner: \(owner), events: events + 1, last_version: event.stream_version }
          \(deposited):
            - upsert:
                table: accounts
                set: { account_id: event.stream_id, balance: balance + \(amount), events: events + 1, last_version: event.stream_version }
        """
    }

    static func folder(with projection: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.uniqueName("sources")).path
        try FileManager.default.createDirectory(atPath: folder + "/projections", withIntermediateDirectories: true)
        try projection.write(toFile: folder + "/projections/accounts.yml", atomically: true, encoding: .utf8)
        return folder
    }

    static func json(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    // MARK: - spatie/laravel-event-sourcing

    /// `create_stored_events_table.php.stub` (v7) as Laravel's PostgreSQL grammar runs it.
    static func createSpatie(_ schema: String, on postgres: PostgresConnection) async throws {
        let table = "\(PostgresIdentifier.quote(schema)).\"stored_events\""
        try await postgres.execute("""
            create table \(table) ("id" bigserial not null primary key, "aggregate_uuid" uuid null, "aggregate_version" bigint null,
              "event_version" smallint not null default '1', "event_class" varchar(255) not null, "event_properties" jsonb not null,
              "meta_data" jsonb not null, "created_at" timestamp(0) without time zone not null)
            """)
        try await postgres.execute("create index \"stored_events_event_class_index\" on \(table) (\"event_class\")")
        try await postgres.execute("create index \"stored_events_aggregate_uuid_index\" on \(table) (\"aggregate_uuid\")")
        try await postgres.execute("alter table \(table) add constraint \"stored_events_aggregate_uuid_aggregate_version_unique\" unique (\"aggregate_uuid\", \"aggregate_version\")")
    }

    static func insertSpatie(_ entries: [Entry], schema: String, on postgres: PostgresConnection) async throws {
        let table = "\(PostgresIdentifier.quote(schema)).\"stored_events\""
        for entry in entries {
            let (eventClass, properties): (String, [String: Any]) = entry.opened.map { (#"App\Events\AccountOpened"#, ["owner": $0]) }
                ?? (#"App\Events\MoneyAdded"#, ["amount": entry.amount ?? 0])
            let meta: [String: Any] = ["aggregate-root-uuid": entry.stream, "aggregate-root-version": entry.version, "created-at": "2026-11-23 10:00:00"]
            // As EloquentStoredEventRepository::persist: insert, then stamp stored-event-id.
            let id = try await postgres.query(
                """
                insert into \(table) ("aggregate_uuid", "aggregate_version", "event_version", "event_class", "event_properties", "meta_data", "created_at")
                values ($1::uuid, $2, 1, $3, $4::jsonb, $5::jsonb, '2026-11-23 10:00:00') returning "id"
                """, [.text(entry.stream), .int(Int64(entry.version)), .text(eventClass), .text(try json(properties)), .text(try json(meta))]).int64(0, 0) ?? 0
            try await postgres.execute(
                "update \(table) set \"meta_data\" = jsonb_set(\"meta_data\", '{stored-event-id}', to_jsonb($1::bigint)) where \"id\" = $1", [.int(id)])
        }
        // An event fired outside an aggregate: no uuid, no version; no projection handles it.
        try await postgres.execute(
            "insert into \(table) (\"event_class\", \"event_properties\", \"meta_data\", \"created_at\") values ($1, '{}', '{}', now())",
            [.text(#"App\Events\NewsletterSent"#)])
    }

    /// spatie, from a job file with an inline `source:` (preset plus type names), through the binary.
    @Test func spatieStoredEventsRebuildFromAJobWithAnInlineSource() async throws {
        try await RebuildEnvironment.with { environment in
            let schema = environment.storeSchema.schema
            try await Self.createSpatie(schema, on: environment.postgres)
            try await Self.insertSpatie(Self.history(), schema: schema, on: environment.postgres)
            let folder = try Self.folder(with: Self.projection(opened: "AccountOpened", deposited: "MoneyDeposited", owner: "payload.owner", amount: "payload.amount"))
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let job = """
                job: spatie-accounts
                run: rebuild
                projections: [accounts]
                settings: { projections_dir: \(folder)/projections, chunk_size: 4 }
                source:
                  preset: spatie
                  schema: \(schema)
                  type_names:
                    'App\\Events\\AccountOpened': AccountOpened
                    'App\\Events\\MoneyAdded': MoneyDeposited
                  safe_head: { settle_window: 50ms }
                connections: { postgres: SRC_TEST_POSTGRES, mysql: SRC_TEST_MYSQL }
                """
            try job.write(toFile: folder + "/job.yml", atomically: true, encoding: .utf8)
            let outcome = try runReprise(["run", folder + "/job.yml"], environment: ["SRC_TEST_POSTGRES": TestServers.postgresURL, "SRC_TEST_MYSQL": environment.mysqlURL])
            #expect(outcome.status == 0, "\(outcome.standardError)")
            #expect(try await environment.rows("accounts") == Self.expectedRows())
        }
    }

    /// A spatie table holding the first 8 entries of `history()` under a settle-window source,
    /// with `accounts` rebuilt from it.
    static func rebuiltSpatieAccounts(_ environment: RebuildEnvironment, settleWindow: String) async throws -> (EventSource, ProjectionDefinition) {
        let schema = environment.storeSchema.schema
        try await Self.createSpatie(schema, on: environment.postgres)
        try await Self.insertSpatie(Array(history().prefix(8)), schema: schema, on: environment.postgres)
        let source = try EventSourceFile.parse(
            """
            preset: spatie
            schema: \(schema)
            type_names: { 'App\\Events\\AccountOpened': AccountOpened, 'App\\Events\\MoneyAdded': MoneyDeposited }
            safe_head: { settle_window: \(settleWindow) }
            """, path: "test")
        let definition = try ProjectionFileParser.parse(
            yaml: Self.projection(opened: "AccountOpened", deposited: "MoneyDeposited", owner: "payload.owner", amount: "payload.amount"), file: "accounts.yml")
        _ = try await RebuildEngine(postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL, source: source).rebuild([.file(definition)])
        return (source, definition)
    }

    /// spatie, then live catch-up through the same mapping: new events reach the live table.
    @Test func liveCatchUpReadsTheMappedTable() async throws {
        try await RebuildEnvironment.with { environment in
            let (schema, history) = (environment.storeSchema.schema, Self.history())
            let (source, definition) = try await Self.rebuiltSpatieAccounts(environment, settleWindow: "20ms")

            let runner = try await LiveProjectionRunner.open(projections: [.file(definition)], postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL, source: source)
            try await Self.insertSpatie(Array(history.dropFirst(8)), schema: schema, on: environment.postgres)
            // The settle window holds back the newest head once; catch up until everything is in.
            let applied = Counter()
            try await waitUntil("live catch-up to apply the new events") {
                await applied.add(try await runner.catchUp().reduce(0) { $0 + $1.eventsApplied })
                return await applied.value >= Int64(history.count - 8)
            }
            #expect(await applied.value == Int64(history.count - 8))
            #expect(try await environment.rows("accounts") == Self.expectedRows())
            // Once the window has passed since an observation of the whole table, the bound covers it all
            // (polled: no fixed sleep standing in for the window).
            try await waitUntil("the live build's bound to cover the whole table") {
                _ = try await runner.catchUp()
                return try await ProjectionStatusReader.read(mysql: environment.mysql, postgres: environment.postgres, source: source).first?.lagEvents == 0
            }
            try await Self.insertSpatie([], schema: schema, on: environment.postgres)
            try await Self.insertSpatie([], schema: schema, on: environment.postgres)
            let statuses = try await ProjectionStatusReader.read(mysql: environment.mysql, postgres: environment.postgres, source: source)
            #expect(statuses.first?.lagEvents == 2, "the two events written after the live build's bound")
            await runner.close()
        }
    }

    /// The settle window on a table without a transaction id column: a writer holds a lower
    /// position open while a later writer commits higher ones; inside the window the reader must
    /// not pass the open position (a tracker that answers the head at once fails here), and once
    /// the writer commits, its events are applied like the others.
    @Test func theSettleWindowKeepsTheReaderBelowAPositionStillBeingWritten() async throws {
        try await RebuildEnvironment.with { environment in
            let (schema, history) = (environment.storeSchema.schema, Self.history())
            let (source, definition) = try await Self.rebuiltSpatieAccounts(environment, settleWindow: "2s")
            let runner = try await LiveProjectionRunner.open(projections: [.file(definition)], postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL, source: source)
            // The runner's first observation of the head waits out the window once: over before the writers start.
            _ = try await runner.catchUp()

            // Writer A takes the next positions inside a transaction it keeps open (closed on every
            // path: its open transaction would block dropping the schema).
            let writerA = try await TestServers.postgres()
            do {
                try await writerA.execute("BEGIN")
                try await Self.insertSpatie([history[8]], schema: schema, on: writerA)
                let heldPosition = try #require(try await writerA.query("SELECT max(id) FROM \(PostgresIdentifier.quote(schema)).stored_events").int64(0, 0))
                // Writer B appends the rest above it and commits.
                try await Self.insertSpatie(Array(history.dropFirst(9)), schema: schema, on: environment.postgres)
                let committedHead = try #require(try await environment.postgres.query("SELECT max(id) FROM \(PostgresIdentifier.quote(schema)).stored_events").int64(0, 0))
                try #require(committedHead > heldPosition)

                // The reader sees B's positions now; A's is below them and still open. Inside the window
                // nothing past A may be read: this catch-up observes B's head for the first time.
                let early = try await runner.catchUp().reduce(0) { $0 + $1.eventsApplied }
                try #require(early == 0, "the reader passed position \(heldPosition) while its writer was still open (applied \(early))")
                try await writerA.execute("COMMIT")
            } catch {
                await writerA.close()
                await runner.close()
                throw error
            }
            await writerA.close()
            let applied = Counter()
            try await waitUntil("every event, the held one included, to be applied") {
                await applied.add(try await runner.catchUp().reduce(0) { $0 + $1.eventsApplied })
                return await applied.value >= Int64(history.count - 8)
            }
            try #require(await applied.value == Int64(history.count - 8))
            try #require(try await environment.rows("accounts") == Self.expectedRows())
            await runner.close()
        }
    }

    // MARK: - Marten

    /// Marten's default event store DDL (V9, Guid streams, single tenancy), as Weasel writes it.
    static func createMarten(_ schema: String, on postgres: PostgresConnection) async throws {
        let s = PostgresIdentifier.quote(schema)
        try await postgres.execute("""
            CREATE TABLE IF NOT EXISTS \(s).mt_streams (
                id uuid NOT NULL, type varchar NULL, version bigint NULL, timestamp timestamptz NOT NULL DEFAULT (now()),
                created timestamptz NOT NULL DEFAULT (now()), tenant_id varchar NULL DEFAULT '*DEFAULT*', is_archived bool NULL DEFAULT FALSE,
            CONSTRAINT pkey_mt_streams_id PRIMARY KEY (id))
            """)
        try await postgres.execute("""
            CREATE TABLE IF NOT EXISTS \(s).mt_events (
                seq_id bigint NOT NULL, id uuid NOT NULL, stream_id uuid NULL, version bigint NOT NULL, data jsonb NOT NULL, bdata bytea NULL,
                type varchar(500) NOT NULL, timestamp timestamp with time zone NOT NULL DEFAULT '(now())', tenant_id varchar NULL DEFAULT '*DEFAULT*',
                mt_dotnet_type varchar NULL, is_archived bool NULL DEFAULT FALSE,
            CONSTRAINT pkey_mt_events_seq_id PRIMARY KEY (seq_id))
            """)
        try await postgres.execute("ALTER TABLE \(s).mt_events ADD CONSTRAINT fkey_mt_events_stream_id FOREIGN KEY(stream_id) REFERENCES \(s).mt_streams(id) ON DELETE CASCADE")
        try await postgres.execute("CREATE UNIQUE INDEX pk_mt_events_stream_and_version ON \(s).mt_events USING btree (stream_id, version)")
        try await postgres.execute("CREATE SEQUENCE \(s).mt_events_sequence")
        try await postgres.execute("ALTER SEQUENCE \(s).mt_events_sequence OWNED BY \(s).mt_events.seq_id")
    }

    static func insertMarten(_ entries: [Entry], schema: String, on postgres: PostgresConnection) async throws {
        let s = PostgresIdentifier.quote(schema)
        for entry in entries {
            if entry.version == 1 {
                try await postgres.execute("INSERT INTO \(s).mt_streams (id, type, version) VALUES ($1::uuid, 'account', 0)", [.text(entry.stream)])
            }
            // Marten's alias (ClassicTypeName) in `type`, System.Text.Json with PascalCase members in `data`.
            let (alias, dotnet, data): (String, String, [String: Any]) = entry.opened.map { ("account_opened", "Bank.AccountOpened, Bank", ["Owner": $0]) }
                ?? ("money_deposited", "Bank.MoneyDeposited, Bank", ["Amount": entry.amount ?? 0])
            try await postgres.execute(
                """
                INSERT INTO \(s).mt_events (seq_id, id, stream_id, version, data, type, timestamp, mt_dotnet_type)
                VALUES (nextval('\(schema).mt_events_sequence'), gen_random_uuid(), $1::uuid, $2, $3::jsonb, $4, now(), $5)
                """, [.text(entry.stream), .int(Int64(entry.version)), .text(try json(data)), .text(alias), .text(dotnet)])
            try await postgres.execute("UPDATE \(s).mt_streams SET version = $2 WHERE id = $1::uuid", [.text(entry.stream), .int(Int64(entry.version))])
        }
    }

    /// Marten, with the preset alone (`--source marten`): projection files use Marten's aliases.
    @Test func martenEventsRebuildWithThePresetFlag() async throws {
        try await RebuildEnvironment.with { environment in
            let schema = environment.storeSchema.schema
            try await Self.createMarten(schema, on: environment.postgres)
            try await Self.insertMarten(Self.history(), schema: schema, on: environment.postgres)
            let folder = try Self.folder(with: Self.projection(opened: "account_opened", deposited: "money_deposited", owner: "payload.Owner", amount: "payload.Amount"))
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let outcome = try runReprise(
                ["rebuild", "accounts", "--source", "marten", "--store-schema", schema, "--projections-dir", folder + "/projections", "--quiet"],
                environment: environment.processVariables)
            #expect(outcome.status == 0, "\(outcome.standardError)")
            #expect(try await environment.rows("accounts") == Self.expectedRows())

            // A mapping that does not fit the table is refused before anything is read.
            let wrong = try runReprise(
                ["rebuild", "accounts", "--source", "spatie", "--store-schema", schema, "--projections-dir", folder + "/projections", "--quiet"],
                environment: environment.processVariables)
            #expect(wrong.status != 0)
            #expect(wrong.standardError.contains("event source spatie: table \(schema).stored_events does not exist"), "\(wrong.standardError)")
        }
    }

    // MARK: - Python eventsourcing

    /// `PostgresApplicationRecorder` (9.5) for an application named `BankAccounts`.
    static func createEventsourcing(_ schema: String, on postgres: PostgresConnection) async throws {
        let s = PostgresIdentifier.quote(schema)
        try await postgres.execute("""
            CREATE TABLE IF NOT EXISTS \(s)."bankaccounts_events" (originator_id "uuid" NOT NULL, originator_version bigint NOT NULL, topic text, state bytea,
              notification_id bigserial, PRIMARY KEY (originator_id, originator_version)) WITH (autovacuum_enabled = true,
              autovacuum_vacuum_threshold = 100000000, autovacuum_vacuum_scale_factor = 0.5, autovacuum_analyze_threshold = 1000,
              autovacuum_analyze_scale_factor = 0.01)
            """)
        try await postgres.execute("CREATE UNIQUE INDEX IF NOT EXISTS \"bankaccounts_events_notification_id_idx\" ON \(s).\"bankaccounts_events\" (notification_id ASC)")
    }

    /// As the recorder inserts: table locked in EXCLUSIVE mode, state = compact UTF-8 JSON without
    /// originator_id/originator_version, timestamp as `{"_type_": "datetime_iso", ...}`.
    static func insertEventsourcing(_ entries: [Entry], schema: String, on postgres: PostgresConnection) async throws {
        let table = "\(PostgresIdentifier.quote(schema)).\"bankaccounts_events\""
        try await postgres.withTransaction { db in
            try await db.execute("LOCK TABLE \(table) IN EXCLUSIVE MODE")
            for entry in entries {
                let timestamp = "{\"_type_\":\"datetime_iso\",\"_data_\":\"2026-11-23T21:31:23.993833+00:00\"}"
                let (topic, state): (String, String) = if let owner = entry.opened {
                    ("bank.domain:Account.Opened", "{\"timestamp\":\(timestamp),\"originator_topic\":\"bank.domain:Account\",\"owner\":\(try json(["o": owner]).dropFirst(5).dropLast())}")
                } else {
                    ("bank.domain:Account.Deposited", "{\"timestamp\":\(timestamp),\"amount\":{\"_type_\":\"decimal_str\",\"_data_\":\"\(entry.amount ?? 0)\"}}")
                }
                try await db.execute(
                    "INSERT INTO \(table) (originator_id, originator_version, topic, state) VALUES ($1::uuid, $2, $3, convert_to($4, 'UTF8'))",
                    [.text(entry.stream), .int(Int64(entry.version)), .text(topic), .text(state)])
            }
        }
    }

    /// eventsourcing, from a mapping file with the table overridden; Decimals stored as strings.
    @Test func eventsourcingRecorderRebuildsFromAMappingFile() async throws {
        try await RebuildEnvironment.with { environment in
            let schema = environment.storeSchema.schema
            try await Self.createEventsourcing(schema, on: environment.postgres)
            try await Self.insertEventsourcing(Self.history(), schema: schema, on: environment.postgres)
            let folder = try Self.folder(with: Self.projection(opened: "AccountOpened", deposited: "Deposited", owner: "payload.owner", amount: "number(payload.amount._data_)"))
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try """
                preset: eventsourcing
                schema: \(schema)
                table: bankaccounts_events
                type_names: { 'bank.domain:Account.Opened': AccountOpened, 'bank.domain:Account.Deposited': Deposited }
                """.write(toFile: folder + "/source.yml", atomically: true, encoding: .utf8)
            let outcome = try runReprise(
                ["rebuild", "accounts", "--source", folder + "/source.yml", "--projections-dir", folder + "/projections", "--quiet"],
                environment: environment.processVariables)
            #expect(outcome.status == 0, "\(outcome.standardError)")
            #expect(try await environment.rows("accounts") == Self.expectedRows())

            // A state that is not UTF-8 stops the rebuild with the position and the column.
            let table = "\(PostgresIdentifier.quote(schema)).\"bankaccounts_events\""
            let position = try await environment.postgres.query(
                "INSERT INTO \(table) (originator_id, originator_version, topic, state) VALUES ($1::uuid, 99, 'bank.domain:Account.Deposited', '\\xfffe7b7d'::bytea) RETURNING notification_id",
                [.text(Self.streams[0])]).int64(0, 0) ?? 0
            let failed = try runReprise(
                ["rebuild", "accounts", "--source", folder + "/source.yml", "--projections-dir", folder + "/projections", "--quiet"],
                environment: environment.processVariables)
            #expect(failed.status == 1)
            #expect(failed.standardError.contains("position \(position)") && failed.standardError.contains("column state: bytea is not UTF-8 text"), "\(failed.standardError)")
        }
    }

    // MARK: - A custom schema

    /// A home-grown table: text payloads, a bigint transaction id column for exact rounds.
    @Test func aCustomTableWithATransactionIDColumnRebuildsAndCatchesUp() async throws {
        try await RebuildEnvironment.with { environment in
            let schema = environment.storeSchema.schema
            let table = "\(PostgresIdentifier.quote(schema)).domain_events"
            try await environment.postgres.execute("""
                CREATE TABLE \(table) (seq bigserial PRIMARY KEY, aggregate_id text NOT NULL, aggregate_version int NOT NULL, kind text NOT NULL,
                  body text NOT NULL, happened_at timestamptz NOT NULL DEFAULT now(), txid bigint NOT NULL DEFAULT txid_current())
                """)
            @Sendable func insert(_ entries: ArraySlice<Entry>) async throws {
                for entry in entries {
                    let (kind, body) = entry.opened.map { ("AccountOpened", try! Self.json(["owner": $0])) } ?? ("MoneyDeposited", "{\"amount\": \(entry.amount ?? 0)}")
                    try await environment.postgres.execute(
                        "INSERT INTO \(table) (aggregate_id, aggregate_version, kind, body) VALUES ($1, $2, $3, $4)",
                        [.text(entry.stream), .int(Int64(entry.version)), .text(kind), .text(body)])
                }
            }
            let history = Self.history()
            try await insert(history.prefix(10))
            let source = try EventSourceFile.parse(
                """
                schema: \(schema)
                table: domain_events
                columns: { position: seq, stream_id: aggregate_id, stream_version: aggregate_version, event_type: kind, payload: body, recorded_at: happened_at }
                payload_encoding: text
                safe_head: { transaction_id: txid }
                """, path: "custom.yml")
            let definition = try ProjectionFileParser.parse(
                yaml: Self.projection(opened: "AccountOpened", deposited: "MoneyDeposited", owner: "payload.owner", amount: "payload.amount"), file: "accounts.yml")
            let engine = RebuildEngine(postgresURL: TestServers.postgresURL, mysqlURL: environment.mysqlURL, source: source)
            // Events committed while the first round reads are picked up by a catch-up round.
            var hooks = RebuildHooks()
            let remaining = history.dropFirst(10)
            hooks.afterRound = { round in if round == 0 { try await insert(remaining) } }
            let results = try await engine.rebuild([.file(definition)], hooks: hooks)
            #expect(results.first?.catchUpRounds ?? 0 >= 1)
            #expect(try await environment.rows("accounts") == Self.expectedRows())
        }
    }
}
