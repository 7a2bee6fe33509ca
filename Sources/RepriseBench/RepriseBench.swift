import ArgumentParser
import RepriseCommandLine

/// `reprise-bench`: the benchmark commands, apart from the production `reprise` binary
/// (benchmarks/run, benchmarks/live).
@main
struct RepriseBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reprise-bench",
        abstract: "Reprise benchmarks: the hand-written per-event baseline and the live latency benchmark.",
        subcommands: [BenchNaiveCommand.self, BenchLiveCommand.self])
}
