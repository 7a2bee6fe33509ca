import Synchronization

/// Counters and gauges of a long-running worker, rendered in Prometheus' text format.
public final class MetricsRegistry: Sendable {
    private struct Series: Sendable {
        var help: String
        var type: String
        var values: [String: Double]  // labels text -> value
    }

    private let state = Mutex<[String: Series]>([:])
    private let startedAt = ContinuousClock.now
    private let lastBeat = Mutex<ContinuousClock.Instant>(ContinuousClock.now)

    public init() {}

    public func add(_ name: String, _ amount: Double = 1, labels: [String: String] = [:], help: String) {
        update(name, type: "counter", help: help, labels: labels) { $0 += amount }
    }

    public func set(_ name: String, _ value: Double, labels: [String: String] = [:], help: String) {
        update(name, type: "gauge", help: help, labels: labels) { $0 = value }
    }

    private func update(_ name: String, type: String, help: String, labels: [String: String], _ change: (inout Double) -> Void) {
        let key = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(Self.escape($0.value))\"" }.joined(separator: ",")
        state.withLock { series in
            var entry = series[name] ?? Series(help: help, type: type, values: [:])
            var value = entry.values[key] ?? 0
            change(&value)
            entry.values[key] = value
            series[name] = entry
        }
    }

    /// The worker's loop is alive: called once per iteration.
    public func heartbeat() { lastBeat.withLock { $0 = ContinuousClock.now } }

    /// Seconds since the last heartbeat.
    public var secondsSinceHeartbeat: Double {
        let elapsed = ContinuousClock.now - lastBeat.withLock { $0 }
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    public func value(_ name: String, labels: [String: String] = [:]) -> Double? {
        let key = labels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\(Self.escape($0.value))\"" }.joined(separator: ",")
        return state.withLock { $0[name]?.values[key] }
    }

    public func prometheusText() -> String {
        var lines: [String] = []
        let uptime = ContinuousClock.now - startedAt
        lines.append("# HELP reprise_uptime_seconds Seconds since the process started.")
        lines.append("# TYPE reprise_uptime_seconds gauge")
        lines.append("reprise_uptime_seconds \(Double(uptime.components.seconds))")
        state.withLock { series in
            for (name, entry) in series.sorted(by: { $0.key < $1.key }) {
                lines.append("# HELP \(name) \(entry.help)")
                lines.append("# TYPE \(name) \(entry.type)")
                for (labels, value) in entry.values.sorted(by: { $0.key < $1.key }) {
                    lines.append(labels.isEmpty ? "\(name) \(value)" : "\(name){\(labels)} \(value)")
                }
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func escape(_ text: String) -> String {
        text.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"").replacing("\n", with: "\\n")
    }
}
