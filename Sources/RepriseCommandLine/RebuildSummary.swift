import RepriseSupport
import Foundation
import RepriseEngine
import Synchronization

/// The live progress bar of a rebuild: phase, events done/total, rate and ETA.
final class RebuildProgressDisplay: Sendable {
    private let state: Mutex<ProgressLine?>
    private let quiet: Bool

    init(quiet: Bool) {
        self.quiet = quiet
        state = Mutex(nil)
    }

    func update(_ progress: RebuildProgress) {
        guard !quiet || progress.phase.concernsAnotherWorker else { return }
        let label: String
        switch progress.phase {
        case .reading: label = "rebuild \(progress.projections.joined(separator: ","))"
        case .catchingUp(let round): label = "catch-up \(round)"
        case .tookOver(let partition, let owner, let seconds):
            Terminal.error("partition \(partition): its owner \(owner) committed nothing for \(seconds) s; lease expired, taking it over")
            return
        case .fencedOff(let partition, let owner, let seconds, let chunk):
            Terminal.error(
                "partition \(partition): its owner \(owner) committed nothing for \(seconds) s; lease expired, its sessions ended before chunk \(chunk) is written again (a transaction it left open may hold what the chunk waited for)"
            )
            return
        case .buildingIndexes(let table, let indexes):
            // One ALTER TABLE per table, with no progress of its own: say what runs meanwhile.
            state.withLock { line in line?.finish(); line = nil }
            Terminal.error("building indexes of \(table): \(indexes.joined(separator: ", "))")
            return
        case .checking, .swapping, .done:
            state.withLock { line in line?.finish(); line = nil }
            if progress.phase == .swapping { Terminal.error("swapping tables of \(progress.projections.joined(separator: ", "))") }
            return
        }
        guard progress.eventsTotal > 0 else { return }  // an empty catch-up round needs no bar
        state.withLock { line in
            if line == nil || line?.label != label || line?.total != Int(progress.eventsTotal) {
                line?.finish()
                line = ProgressLine(label: label, total: Int(progress.eventsTotal))
            }
            line?.update(done: Int(progress.eventsDone))
        }
    }

    func finish() {
        state.withLock { line in line?.finish(); line = nil }
    }
}

enum RebuildSummary {
    static func lines(_ results: [RebuildResult], seconds: Double, timings: EngineTimings? = nil) -> [String] {
        var lines: [String] = []
        let events = results.map(\.eventsApplied).max() ?? 0
        for result in results {
            let tables = result.tableRows.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            var line = "\(result.projection) v\(result.version): build \(result.buildID)\(result.resumed ? " (resumed)" : ""), "
            line += "\(result.eventsApplied) events applied, \(result.rowsWritten) row writes (\(result.rowsLoaded) bulk-loaded, \(result.rowsMerged) merged), \(result.rowReadQueries) row-read queries "
                + "(\(result.lookupQueries) for lookups), \(result.catchUpRounds) catch-up rounds; rows: \(tables)"
            if !result.partitionsApplied.isEmpty || result.tableRows.isEmpty {
                line += "; partitions applied by this worker: " + (result.partitionsApplied.isEmpty ? "none" : result.partitionsApplied.map(String.init).joined(separator: ","))
            }
            if result.tableRows.isEmpty && !result.swapped {
                line += "; another worker finishes the build"
            } else {
                line += result.swapped ? "; swapped in" + (result.previousBuildID.map { " (previous build \($0) kept for rollback)" } ?? "") : "; not swapped (--no-swap)"
            }
            lines.append(line)
        }
        lines.append("done in \(ProgressLine.duration(seconds)) (\(String(format: "%.1f", seconds)) s), \(Int(Double(events) / max(seconds, 0.001))) events/s"
            + (MemoryRelease.peakResidentBytes().map { ", peak memory \($0 >> 20) MiB" } ?? ""))
        if let timings {
            let spent = timings.seconds
            lines.append("time: " + EngineTimings.Phase.allCases.map { "\($0.rawValue) \(String(format: "%.1f", spent[$0] ?? 0)) s" }.joined(separator: ", "))
        }
        return lines
    }

    static func json(_ results: [RebuildResult], seconds: Double, timings: EngineTimings? = nil) -> String {
        let quote = JSONText.quoted
        let items = results.map { result in
            let tables = result.tableRows.sorted { $0.key < $1.key }.map { "\(quote($0.key)):\($0.value)" }.joined(separator: ",")
            return "{\"projection\":\(quote(result.projection)),\"version\":\(result.version),\"build\":\(result.buildID),"
                + "\"resumed\":\(result.resumed),\"events_applied\":\(result.eventsApplied),\"row_writes\":\(result.rowsWritten),\"rows_loaded\":\(result.rowsLoaded),\"rows_merged\":\(result.rowsMerged),"
                + "\"row_read_queries\":\(result.rowReadQueries),\"lookup_queries\":\(result.lookupQueries),\"row_read_keys\":\(result.rowReadKeys),\"row_read_keys_ahead\":\(result.rowReadKeysAhead),\"written_key_filter_bytes\":\(result.writtenKeyFilterBytes),"
                + "\"catch_up_rounds\":\(result.catchUpRounds),\"swapped\":\(result.swapped),"
                + "\"previous_build\":\(result.previousBuildID.map(String.init) ?? "null"),\"tables\":{\(tables)},"
                + "\"partitions_applied\":[\(result.partitionsApplied.map(String.init).joined(separator: ","))]}"
        }
        let spent = timings?.seconds ?? [:]
        let phases = [("read", EngineTimings.Phase.read), ("decode", .decode), ("handlers", .handle), ("row_reads", .prefetch), ("writes", .write),
                      ("index_build", .indexBuild)]
            .map { "\"\($0.0)\":\(String(format: "%.3f", spent[$0.1] ?? 0))" }.joined(separator: ",")
        // The process's high-water mark: what a memory limit (a container's) must allow.
        let peak = MemoryRelease.peakResidentBytes().map { String($0 >> 20) } ?? "null"
        let allocator = allocatorJSON()
        return "{\"seconds\":\(String(format: "%.3f", seconds)),\"peak_rss_mib\":\(peak),\"allocator\":\(allocator),\"time\":{\(phases)},\"projections\":[\(items.joined(separator: ","))]}"
    }
}

extension RebuildSummary {
    /// Which malloc served the process, and jemalloc's settings: the memory figures depend on
    /// them (docs/throughput-allocator.md).
    static func allocatorJSON() -> String {
        guard let settings = MemoryRelease.jemallocSettings else { return "{\"name\":\"\(MemoryRelease.allocator.rawValue)\"}" }
        return "{\"name\":\"jemalloc\",\"background_threads\":\(settings.backgroundThreads),"
            + "\"dirty_decay_ms\":\(settings.dirtyDecayMilliseconds),\"first_arena_dirty_decay_ms\":\(settings.firstArenaDirtyDecayMilliseconds)}"
    }
}

extension RebuildProgress.Phase {
    /// Said even with --quiet: someone may be looking for that worker.
    var concernsAnotherWorker: Bool {
        switch self {
        case .tookOver, .fencedOff: true
        default: false
        }
    }
}
