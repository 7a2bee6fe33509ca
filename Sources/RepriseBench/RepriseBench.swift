import ArgumentParser
import CJemalloc
import RepriseCommandLine

/// `reprise-bench`: the benchmark commands, apart from the production `reprise` binary
/// (benchmarks/run, benchmarks/live). On jemalloc, like `reprise` (CJemalloc), so that the
/// naive projector and the engine are measured on the same allocator.
@main
struct RepriseBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reprise-bench",
        abstract: "Reprise benchmarks: the hand-written per-event baseline, the live latency benchmark, new rows by upsert vs bulk load.",
        subcommands: [BenchNaiveCommand.self, BenchLiveCommand.self, BenchLoadCommand.self])
}
