import ArgumentParser
import CoreMetrics
import Glibc
import RepriseEngine
import RepriseSupport

/// The whole `reprise` command line, as a library: the `reprise` executable is one call to
/// `Reprise.main()`, and a team's own executable adds its Swift projections beside the files of
/// the projections folder (docs/library.md):
///
/// ```swift
/// import RepriseCommandLine
///
/// @main enum Main {
///     static func main() async { await Reprise.main(projections: [StockPerWarehouse()]) }
/// }
/// ```
///
/// Every command that takes projection names (`rebuild`, `live`, `migrate`, `rollback`,
/// `status`, jobs) finds a registered projection by its `definition.name` as if it were a file
/// of the projections folder; a file and a Swift projection of the same name are refused.
public enum Reprise {
    /// Parses the process's arguments, runs the command and exits with its code.
    ///
    /// `metricsFactories`: the team's own swift-metrics backends. The command line bootstraps
    /// swift-metrics itself (with the Prometheus registry `/metrics` serves), so a team does not
    /// call `MetricsSystem.bootstrap` (a second bootstrap stops the process); the workers' metrics
    /// reach these backends too, beside Prometheus.
    public static func main(projections: [any Projection] = [], metricsFactories: [any MetricsFactory] = []) async {
        await main(projections: projections, hooks: CommandLineHooks(), metricsFactories: metricsFactories)
    }

    /// The same, with hooks only this package's executables install (fault injection in tests).
    package static func main(projections: [any Projection], hooks: CommandLineHooks, metricsFactories: [any MetricsFactory] = []) async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        // Passwords in URL flags stay out of `ps`: the parser works on the copy above.
        ProcessTitle.hidePasswords()
        MemoryRelease.configureAllocator()
        CommandLineContext.install(projections: projections, hooks: hooks, metricsFactories: metricsFactories)
        let code = await RepriseCommand.exitCode(running: arguments)
        // Ended without the C libraries' exit handlers, which a process at its end does not need.
        // They raced threads ending: a `reprise init` of the demo crashed once (SIGSEGV in
        // pthread_rwlock_unlock, its work done), and `reprise status` ending by `exit` aborted in
        // 2 of 200 runs ("double free"). Executor threads now park instead of ending
        // (`BlockingExecutor.ThreadPool`: none of 400), which is what a process that must run the
        // handlers relies on (the test runner); this one skips them all the same. Buffered output
        // is flushed first; the system releases the rest.
        fflush(nil)
        _exit(code)
    }
}

extension RepriseCommand {
    /// Parses `arguments`, runs the command, and returns the exit code, having printed what the
    /// argument parser prints (help and versions on standard output, errors on standard error).
    static func exitCode(running arguments: [String]) async -> Int32 {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return ExitCode.success.rawValue
        } catch {
            let code = exitCode(for: error), message = fullMessage(for: error)
            if !message.isEmpty {
                if code == .success { Terminal.output(message) } else { Terminal.error(message) }
            }
            return code.rawValue
        }
    }
}

/// The `reprise` command line.
struct RepriseCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reprise",
        abstract: "Projection rebuild and replay engine: events in PostgreSQL, read models in MySQL, live updates through RabbitMQ.",
        discussion: """
            Connections come from flags, else from the environment:
              REPRISE_POSTGRES_URL  postgresql://user:password@host:port/db (event store)
              REPRISE_MYSQL_URL     mysql://user:password@host:port/db      (read models)
              REPRISE_AMQP_URL      amqp://user:password@host:port/vhost    (RabbitMQ)
            For the local servers of this repository: eval "$(scripts/services env)".

            Exit codes: 0 success, 1 failure (the message says what and where), 64 bad usage, \
            3 a server could not be reached or refused the login.
            """,
        subcommands: [InitCommand.self, DemoCommand.self, RebuildCommand.self, RelayCommand.self, LiveCommand.self, ParkedCommand.self, StatusCommand.self, DashboardCommand.self, MigrateCommand.self, RollbackCommand.self, RunCommand.self, CheckCommand.self, TraceCommand.self, RepairCommand.self, ReplayCommand.self]
    )
}

/// Exit codes shared by every subcommand.
enum RepriseExitCode {
    static let failure: Int32 = 1
    static let unreachable: Int32 = 3
    /// Something was left for later (`init` gave up DDL that would have blocked writers): run it again.
    static let deferred: Int32 = 75
}
