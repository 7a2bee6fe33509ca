import Foundation
import RepriseEngine
import RepriseProjection
import Testing

/// Lookups on the real servers: the two lookup samples against golden rows folded independently,
/// chained lookups whose rows come from the same chunk, an earlier chunk and an earlier (killed)
/// run, each `if_missing`, and partitioned rebuilds refused or allowed.
@Suite("Lookups (real servers)")
struct LookupTests {
    static func sample(_ name: String) throws -> ProjectionDefinition {
        try ProjectionFileParser.load(path: RebuildEnvironment.repositoryRoot() + "/projections/\(name).yml")
    }

    @Test func lookupSamplesMatchIndependentlyComputedRows() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 8_000, seed: 515)
        let samples = [try Self.sample("category_sales_daily"), try Self.sample("country_revenue_daily")]
        // A small row cache: generations turn during the build, so lookups also read rows back from MySQL.
        let results = try await environment.engine {
            $0.chunkSize = 700
            $0.rowCacheLimit = 1_000
        }.rebuild(samples.map { .file($0) })
        #expect(results.allSatisfy { $0.swapped })
        let events = try await LookupGolden.events(environment)

        let categorySales = LookupGolden.categorySales(events)
        #expect(categorySales.count > 30)
        #expect(!categorySales.contains { $0[0] == "unknown" })  // every ordered product was added first
        #expect(try await environment.rows("category_sales_daily") == categorySales)

        let countryRevenue = LookupGolden.countryRevenue(events)
        #expect(countryRevenue.count > 20)
        #expect(Set(countryRevenue.map { $0[0] }).isSuperset(of: ["DE", "FR", "US"]))
        #expect(try await environment.rows("country_revenue_daily") == countryRevenue)

        // Batched: far fewer lookup queries than events, even with the cache emptied over and over.
        let country = try #require(results.first { $0.projection == "country_revenue_daily" })
        #expect(country.lookupQueries > 0)
        #expect(country.rowReadQueries < Int64(events.count) / 20, "\(country.rowReadQueries) row-read queries for \(events.count) events")
        await environment.tearDown()
    }

    /// Events of the chained lookup test, in order; chunks of 4.
    static let chainedHistory: [(type: String, payload: String)] = [
        // chunk 1: the order and the customer are written earlier in the same chunk as the payment
        ("CustomerRegistered", #"{"customerId":"C1","country":"DE","occurredAt":"2026-02-01T08:00:00Z"}"#),
        ("OrderCreated", #"{"orderId":"O1","customerId":"C1","occurredAt":"2026-02-01T08:01:00Z"}"#),
        ("PaymentReceived", #"{"orderId":"O1","amountCents":100,"occurredAt":"2026-02-01T08:02:00Z"}"#),
        ("CustomerRegistered", #"{"customerId":"C2","country":"FR","occurredAt":"2026-02-01T08:03:00Z"}"#),
        // chunk 2: the order in this chunk, its customer in the previous one; an order from the previous one
        ("OrderCreated", #"{"orderId":"O2","customerId":"C2","occurredAt":"2026-02-01T09:00:00Z"}"#),
        ("PaymentReceived", #"{"orderId":"O2","amountCents":200,"occurredAt":"2026-02-01T09:01:00Z"}"#),
        ("PaymentReceived", #"{"orderId":"O1","amountCents":50,"occurredAt":"2026-02-02T09:02:00Z"}"#),
        ("OrderCreated", #"{"orderId":"O3","customerId":"C1","occurredAt":"2026-02-02T09:03:00Z"}"#),
        // chunk 3 (the resumed run): orders and customers written by the killed run
        ("PaymentReceived", #"{"orderId":"O3","amountCents":70,"occurredAt":"2026-02-02T10:00:00Z"}"#),
        ("OrderCancelled", #"{"orderId":"O1","occurredAt":"2026-02-03T10:01:00Z"}"#),
        ("OrderCreated", #"{"orderId":"O4","customerId":"C2","occurredAt":"2026-02-03T10:02:00Z"}"#),
        ("PaymentReceived", #"{"orderId":"O4","amountCents":40,"occurredAt":"2026-02-03T10:03:00Z"}"#),
        // chunk 4: an unknown order is skipped, an unregistered customer counts as 'unknown',
        // an unpaid cancellation refunds nothing, a customer moves country for later payments
        ("PaymentReceived", #"{"orderId":"O9","amountCents":999,"occurredAt":"2026-02-03T11:00:00Z"}"#),
        ("OrderCreated", #"{"orderId":"O5","customerId":"C9","occurredAt":"2026-02-03T11:01:00Z"}"#),
        ("PaymentReceived", #"{"orderId":"O5","amountCents":30,"occurredAt":"2026-02-03T11:02:00Z"}"#),
        ("OrderCancelled", #"{"orderId":"O2","occurredAt":"2026-02-04T11:03:00Z"}"#),
        ("OrderCreated", #"{"orderId":"O6","customerId":"C1","occurredAt":"2026-02-04T12:00:00Z"}"#),
        ("OrderCancelled", #"{"orderId":"O6","occurredAt":"2026-02-04T12:01:00Z"}"#),
        ("CustomerRegistered", #"{"customerId":"C1","country":"SE","occurredAt":"2026-02-04T12:02:00Z"}"#),
        ("PaymentReceived", #"{"orderId":"O3","amountCents":5,"occurredAt":"2026-02-04T12:03:00Z"}"#),
    ]

    static let chainedExpected: [[String]] = [
        ["DE", "2026-02-01", "100", "0"],
        ["DE", "2026-02-02", "120", "0"],   // O1's 50 (order from chunk 1) + O3's 70 (order from the killed run)
        ["DE", "2026-02-03", "0", "150"],   // O1 cancelled: 100 + 50 refunded on the cancellation's day
        ["FR", "2026-02-01", "200", "0"],
        ["FR", "2026-02-03", "40", "0"],
        ["FR", "2026-02-04", "0", "200"],
        ["SE", "2026-02-04", "5", "0"],
        ["unknown", "2026-02-03", "30", "0"],
    ]

    @Test func chainedLookupsFromTheSameChunkAnEarlierChunkAndAKilledRun() async throws {
        let environment = try await RebuildEnvironment.make()
        try await LookupGolden.append(environment, Self.chainedHistory)
        #expect(LookupGolden.countryRevenue(try await LookupGolden.events(environment)) == Self.chainedExpected)
        let folder = try LookupGolden.folder(with: ["country_revenue_daily"])
        func rebuild(fault: String? = nil) throws -> ProcessOutcome {
            var variables = environment.processVariables
            if let fault { variables["REPRISE_FAULT"] = fault }
            return try runReprise(
                ["rebuild", "country_revenue_daily", "--projections-dir", folder, "--store-schema", environment.storeSchema.schema,
                 "--chunk-size", "4", "--fetch-size", "4"] + (fault == nil ? [] : ["--quiet"]), environment: variables)
        }
        // kill -9 after chunk 2 committed: chunks 3 and 4 run in a new process, whose rows of
        // orders and customers are only in MySQL.
        let crashed = try rebuild(fault: "kill-after-commit:2")
        try #require(crashed.killedBySIGKILL, "the fault should have killed the process: \(crashed.standardError)")
        let resumed = try rebuild()
        #expect(resumed.status == 0, "resumed run failed: \(resumed.standardError)")
        #expect(resumed.standardOutput.contains("(resumed)"), "\(resumed.standardOutput)")
        #expect(try await environment.rows("country_revenue_daily") == Self.chainedExpected)
        // The resumed run read the orders and customers of the killed run from MySQL, batched.
        #expect(!resumed.standardOutput.contains(" 0 for lookups"), "\(resumed.standardOutput)")

        // The same history in one uninterrupted run, in one chunk and in chunks of one event.
        for chunkSize in [1, 100] {
            _ = try await environment.engine { $0.chunkSize = chunkSize; $0.resume = false }.rebuild([.file(try Self.sample("country_revenue_daily"))])
            #expect(try await environment.rows("country_revenue_daily") == Self.chainedExpected, "chunk size \(chunkSize)")
        }
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    static let missingYAML = """
        name: lookup_missing
        version: 1
        tables:
          owners:
            columns: { id: varchar(16) not null, name: varchar(32) }
            primary_key: [id]
          notes:
            columns: { id: varchar(16) not null, owner_name: varchar(32), how: varchar(8) }
            primary_key: [id]
        handlers:
          OwnerNamed:
            - upsert: { table: owners, set: { id: payload.owner, name: payload.name } }
          NoteNull:
            - lookup: { as: o, table: owners, key: { id: payload.owner } }
            - upsert: { table: notes, set: { id: payload.id, owner_name: "coalesce(o.name, '(none)')", how: "'null'" } }
          NoteSkip:
            - lookup: { as: o, table: owners, key: { id: payload.owner }, if_missing: skip }
            - upsert: { table: notes, set: { id: payload.id, owner_name: o.name, how: "'skip'" } }
          NoteError:
            - lookup: { as: o, table: owners, key: { id: payload.owner }, if_missing: error }
            - upsert: { table: notes, set: { id: payload.id, owner_name: o.name, how: "'error'" } }
        """

    @Test func aMissingLookedUpRowWithEachPolicy() async throws {
        let environment = try await RebuildEnvironment.make()
        let definition = try ProjectionFileParser.parse(yaml: Self.missingYAML, file: "lookup_missing.yml")
        try await LookupGolden.append(environment, [
            ("OwnerNamed", #"{"owner":"a","name":"Ada"}"#),
            ("NoteNull", #"{"id":"n1","owner":"a"}"#),
            ("NoteNull", #"{"id":"n2","owner":"zz"}"#),
            ("NoteNull", #"{"id":"n3"}"#),  // a null key finds no row either
            ("NoteSkip", #"{"id":"n4","owner":"zz"}"#),
            ("NoteSkip", #"{"id":"n5","owner":"a"}"#),
            ("NoteError", #"{"id":"n6","owner":"a"}"#),
        ])
        _ = try await environment.engine().rebuild([.file(definition)])
        #expect(try await environment.rows("notes") == [
            ["n1", "Ada", "null"], ["n2", "(none)", "null"], ["n3", "(none)", "null"], ["n5", "Ada", "skip"], ["n6", "Ada", "error"],
        ])
        try await LookupGolden.append(environment, [("NoteError", #"{"id":"n7","owner":"zz"}"#)])
        let position = try await environment.postgres.query("SELECT max(global_position) FROM \(environment.storeSchema.qualifiedEvents)").int64(0, 0)
        do {
            _ = try await environment.engine { $0.resume = false }.rebuild([.file(definition)])
            Issue.record("a missing row with if_missing: error should fail the rebuild")
        } catch let error as EngineError {
            #expect(error.kind == .handlerFailed)
            #expect(error.position == position)
            #expect(error.eventType == "NoteError")
            #expect(error.message.contains("handlers.NoteError[0]: lookup o: no row of owners with key (zz)"), "\(error)")
        }
        await environment.tearDown()
    }

    @Test func lookupsSeeTheRowsAsTheyWereBeforeTheEvent() async throws {
        let environment = try await RebuildEnvironment.make()
        let definition = try ProjectionFileParser.parse(yaml: """
            name: lookup_view
            version: 1
            tables:
              counters:
                columns: { id: varchar(16) not null, n: bigint not null default 0 }
                primary_key: [id]
              seen:
                columns: { id: varchar(40) not null, n_before: bigint }
                primary_key: [id]
            handlers:
              Bump:
                - for_each: payload.ids
                  do:
                    - lookup: { as: c, table: counters, key: { id: item } }
                    - upsert: { table: counters, set: { id: item, n: n + 1 } }
                    - upsert: { table: seen, set: { id: "concat(payload.tag, '-', item)", n_before: "coalesce(c.n, 0)" } }
            """, file: "lookup_view.yml")
        try await LookupGolden.append(environment, [
            ("Bump", #"{"tag":"t1","ids":["a","a","b"]}"#),
            ("Bump", #"{"tag":"t2","ids":["a","b","b"]}"#),
        ])
        for chunkSize in [1, 10] {
            _ = try await environment.engine { $0.chunkSize = chunkSize; $0.resume = false }.rebuild([.file(definition)])
            #expect(try await environment.rows("counters") == [["a", "3"], ["b", "3"]])
            // Element 2 of t1 does not see what element 1 wrote: a was 0 before the event.
            #expect(try await environment.rows("seen") == [["t1-a", "0"], ["t1-b", "0"], ["t2-a", "2"], ["t2-b", "1"]], "chunk size \(chunkSize)")
        }
        await environment.tearDown()
    }

    /// One row per order with what was paid, the payment read through a lookup keyed by `key`.
    static func paidYAML(key: String) -> String {
        """
        name: order_paid
        version: 1
        partition_key: payload.orderId
        tables:
          order_paid:
            columns: { order_id: varchar(64) not null, customer_id: varchar(64), paid_cents: bigint not null default 0 }
            primary_key: [order_id]
        handlers:
          OrderCreated:
            - upsert: { table: order_paid, set: { order_id: payload.orderId, customer_id: payload.customerId } }
          PaymentReceived:
            - lookup: { as: ord, table: order_paid, key: { order_id: \(key) } }
            - update: { table: order_paid, key: { order_id: payload.orderId }, set: { paid_cents: "coalesce(ord.paid_cents, 0) + payload.amountCents" } }
        """
    }

    @Test func partitionedRebuildsRefuseUnsafeLookupsAndRunSafeOnes() async throws {
        let environment = try await RebuildEnvironment.make()
        try await environment.seed(events: 3_000, seed: 516)
        let unsafe = try ProjectionFileParser.parse(yaml: Self.paidYAML(key: "lower(payload.orderId)"), file: "order_paid.yml")
        do {
            _ = try await environment.engine().rebuildPartitioned([.file(unsafe)], partitions: 3, worker: "w1")
            Issue.record("a lookup not keyed by the partition key must refuse --partitions")
        } catch let error as EngineError {
            #expect(error.kind == .invalidRequest)
            #expect(error.message.contains("lookup 'ord' (handlers.PaymentReceived[0]) reads table order_paid by { order_id: lower(payload.orderId) }, not by the partition key payload.orderId"), "\(error)")
        }
        let safe = try ProjectionFileParser.parse(yaml: Self.paidYAML(key: "payload.orderId"), file: "order_paid.yml")
        let results = try await environment.engine { $0.chunkSize = 300 }.rebuildPartitioned([.file(safe)], partitions: 3, worker: "w1")
        #expect(results.first?.swapped == true)
        var paid: [String: (customer: String, cents: Int64)] = [:]
        for event in try await LookupGolden.events(environment) {
            let order = event.payload["orderId"] as? String ?? ""
            if event.type == "OrderCreated" { paid[order] = (event.payload["customerId"] as? String ?? "", 0) }
            if event.type == "PaymentReceived" { paid[order]?.cents += (event.payload["amountCents"] as? NSNumber)?.int64Value ?? 0 }
        }
        let expected = paid.map { [$0.key, $0.value.customer, String($0.value.cents)] }.sorted { $0.lexicographicallyPrecedes($1) }
        #expect(expected.count > 100)
        #expect(try await environment.rows("order_paid") == expected)
        await environment.tearDown()
    }
}
