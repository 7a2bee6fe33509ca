import CoreMetrics
import RepriseSupport
import Synchronization

/// The counters and gauges of a long-running worker, recorded through swift-metrics.
///
/// The worker code names a metric and its labels; the backend is whatever `MetricsFactory` the
/// executable chose (`reprise` bootstraps swift-prometheus and serves it on `/metrics`; a team that
/// embeds Reprise bootstraps its own). The registry also keeps the last value of each series, for
/// `value(_:labels:)`, and the time of the worker loop's last heartbeat, for `/health`.
///
/// ```swift
/// let metrics = MetricsRegistry(factory: PrometheusMetricsFactory(registry: registry))
/// metrics.add("reprise_live_events_applied_total", 10, labels: ["projection": "order_summary"], help: "…")
/// ```
public final class MetricsRegistry: Sendable {
    private struct SeriesKey: Hashable {
        var name: String
        var labels: [String]  // "key=value", sorted
    }

    private enum Handle {
        case counter(FloatingPointCounter)
        case gauge(Gauge)
    }

    private struct Series {
        var handle: Handle
        var value: Double
    }

    private let factory: any MetricsFactory
    private let series = Mutex<[SeriesKey: Series]>([:])
    private let startedAt = ContinuousClock.now
    private let lastBeat = Mutex<ContinuousClock.Instant>(ContinuousClock.now)

    /// `factory`: the metrics backend (default: the one bootstrapped in `MetricsSystem`).
    public init(factory: (any MetricsFactory)? = nil) {
        self.factory = factory ?? MetricsSystem.factory
    }

    /// Adds `amount` to a counter. `help` documents the series in the code; swift-metrics carries
    /// no help text, so Prometheus shows none (see docs/observability.md).
    public func add(_ name: String, _ amount: Double = 1, labels: [String: String] = [:], help: String) {
        update(name, labels: labels, counter: true) { series in
            series.value += amount
            if case .counter(let counter) = series.handle { counter.increment(by: amount) }
        }
    }

    /// Sets a gauge.
    public func set(_ name: String, _ value: Double, labels: [String: String] = [:], help: String) {
        update(name, labels: labels, counter: false) { series in
            series.value = value
            if case .gauge(let gauge) = series.handle { gauge.record(value) }
        }
    }

    /// The worker's loop is alive: called once per iteration.
    public func heartbeat() { lastBeat.withLock { $0 = ContinuousClock.now } }

    /// Seconds since the last heartbeat.
    public var secondsSinceHeartbeat: Double {
        (ContinuousClock.now - lastBeat.withLock { $0 }).seconds
    }

    /// Records `reprise_uptime_seconds` (called before each scrape).
    public func recordUptime() {
        set("reprise_uptime_seconds", (ContinuousClock.now - startedAt).seconds.rounded(.down), help: "Seconds since the process started.")
    }

    /// The last value recorded for a series, nil if it was never recorded.
    public func value(_ name: String, labels: [String: String] = [:]) -> Double? {
        series.withLock { $0[Self.key(name, labels)]?.value }
    }

    private func update(_ name: String, labels: [String: String], counter: Bool, _ change: (inout Series) -> Void) {
        let key = Self.key(name, labels)
        series.withLock { all in
            var entry = all[key] ?? Series(handle: makeHandle(name, labels: labels, counter: counter), value: 0)
            change(&entry)
            all[key] = entry
        }
    }

    private func makeHandle(_ name: String, labels: [String: String], counter: Bool) -> Handle {
        let dimensions = labels.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        return counter
            ? .counter(FloatingPointCounter(label: name, dimensions: dimensions, factory: factory))
            : .gauge(Gauge(label: name, dimensions: dimensions, factory: factory))
    }

    private static func key(_ name: String, _ labels: [String: String]) -> SeriesKey {
        SeriesKey(name: name, labels: labels.map { "\($0.key)=\($0.value)" }.sorted())
    }
}
