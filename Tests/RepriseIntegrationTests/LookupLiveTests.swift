import RepriseEngine
import RepriseLive
import RepriseProjection
import Testing

extension BrokerSuites {
/// The lookup samples in live mode: relay -> RabbitMQ -> live worker, whose workspace starts
/// empty of the rows a rebuild wrote (every lookup is read from MySQL, batched).
@Suite("Lookups in live mode (real servers)")
struct LookupLiveTests {
    @Test func liveBuiltLookupTablesEqualARebuild() async throws {
        let environment = try await RebuildEnvironment.make()
        let harness = LiveHarness(environment: environment)
        let samples: [RunnableProjection] = [.file(try LookupTests.sample("category_sales_daily")), .file(try LookupTests.sample("country_revenue_daily"))]
        try await environment.seed(events: 600, seed: 518)
        _ = try await environment.engine().rebuild(samples)

        let stop = StopSignal()
        let relay = Task { try await OutboxRelay(harness.relayConfiguration()).run(stop: stop, metrics: MetricsRegistry()) }
        let worker = Task { try await LiveWorker(harness.configuration(), projections: samples).run(stop: stop, metrics: MetricsRegistry()) }
        // Events appended while both run: new products, customers and orders, and payments of
        // orders the rebuild wrote.
        try await environment.seed(events: 2_000, seed: 519)
        try await waitUntil("the live lookup tables to match the golden rows") {
            let events = try await LookupGolden.events(environment)
            let categories = try await environment.rows("category_sales_daily")
            let countries = try await environment.rows("country_revenue_daily")
            return categories == LookupGolden.categorySales(events) && countries == LookupGolden.countryRevenue(events)
        }
        stop.stop()
        try await relay.value
        try await worker.value
        let live = (try await environment.rows("category_sales_daily"), try await environment.rows("country_revenue_daily"))
        _ = try await environment.engine().rebuild(samples)
        #expect(try await environment.rows("category_sales_daily") == live.0)
        #expect(try await environment.rows("country_revenue_daily") == live.1)
        await harness.cleanUp()
        await environment.tearDown()
    }
}
}
