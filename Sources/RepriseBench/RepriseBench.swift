import ArgumentParser
import CJemalloc
import RepriseCommandLine
import RepriseSupport

/// `reprise-bench`: the benchmark commands, apart from the production `reprise` binary
/// (benchmarks/run, benchmarks/live). On jemalloc, like `reprise` (CJemalloc), so that the
/// naive projector and the engine are measured on the same allocator.
@main
struct RepriseBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reprise-bench",
        abstract: "Reprise benchmarks: the hand-written per-event baseline, the live latency benchmark, new rows by upsert vs bulk load.",
        subcommands: [BenchNaiveCommand.self, BenchLiveCommand.self, BenchLoadCommand.self])

    /// jemalloc set as `reprise` sets it (`Reprise.main` does it there), before any command runs.
    static func main() async {
        MemoryRelease.configureAllocator()
        await main(nil)
    }
}
