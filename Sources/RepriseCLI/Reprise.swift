import ArgumentParser
import RepriseSupport

@main
enum RepriseMain {
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        // Passwords in URL flags stay out of `ps`: the parser works on the copy above.
        ProcessTitle.hidePasswords()
        await Reprise.main(arguments)
    }
}

/// The `reprise` command line.
struct Reprise: AsyncParsableCommand {
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
        subcommands: [InitCommand.self, DemoCommand.self, RebuildCommand.self, RelayCommand.self, LiveCommand.self, ParkedCommand.self, StatusCommand.self, DashboardCommand.self, MigrateCommand.self, RollbackCommand.self, RunCommand.self, CheckCommand.self, BenchNaiveCommand.self, BenchLiveCommand.self]
    )
}

/// Exit codes shared by every subcommand.
enum RepriseExitCode {
    static let failure: Int32 = 1
    static let unreachable: Int32 = 3
}
