import RepriseSupport
import Synchronization

/// Where a rebuild's wall time goes: waiting for PostgreSQL batches, decoding payloads, running
/// handlers, reading rows from MySQL, writing and committing. Summed over the run.
public final class EngineTimings: Sendable {
    public enum Phase: String, Sendable, CaseIterable {
        case read = "read (PostgreSQL cursor)"
        case decode = "decode (JSON fields)"
        case handle = "handlers"
        case prefetch = "row reads (MySQL)"
        case write = "writes + commit (MySQL)"
        /// The secondary indexes of new builds' tables, built after the bulk phase.
        case indexBuild = "index build (MySQL)"
    }

    private let totals = Mutex<[Phase: Duration]>([:])

    public init() {}

    func measure<T>(_ phase: Phase, _ body: () throws -> T) rethrows -> T {
        let start = ContinuousClock.now
        defer { add(phase, ContinuousClock.now - start) }
        return try body()
    }

    func measure<T>(_ phase: Phase, isolation: isolated (any Actor)? = #isolation, _ body: () async throws -> T) async rethrows -> T {
        let start = ContinuousClock.now
        defer { add(phase, ContinuousClock.now - start) }
        return try await body()
    }

    func add(_ phase: Phase, _ duration: Duration) {
        totals.withLock { $0[phase, default: .zero] += duration }
    }

    /// Seconds per phase.
    public var seconds: [Phase: Double] {
        totals.withLock { totals in
            totals.mapValues(\.seconds)
        }
    }
}
