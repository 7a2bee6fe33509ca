import CoreMetrics
import MetricsTestKit
import Prometheus
import Testing

@testable import RepriseCommandLine

/// A team's own executable passes its metrics backend to `Reprise.main(metricsFactories:)`: the
/// workers' metrics reach it and the Prometheus registry `/metrics` serves alike.
///
/// swift-metrics can be bootstrapped once per process, so this is the only test that does it.
@Suite("Metrics backends of a team's own executable")
struct CommandLineMetricsTests {
    @Test func aTeamsOwnBackendGetsTheWorkersMetricsBesidePrometheus() throws {
        let own = TestMetrics()
        CommandLineContext.install(projections: [], hooks: CommandLineHooks(), metricsFactories: [own])
        let metrics = Observability.workerMetrics()
        metrics.set("reprise_test_lag_events", 42, labels: ["projection": "order_summary"], help: "a gauge of this test")

        let gauge = try own.expectGauge("reprise_test_lag_events", [("projection", "order_summary")])
        #expect(gauge.lastValue == 42)
        let exposition = Observability.prometheus.emitToString()
        #expect(exposition.contains(#"reprise_test_lag_events{projection="order_summary"} 42"#), "\(exposition)")
    }
}
