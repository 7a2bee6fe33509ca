import ArgumentParser
import RepriseAMQP
import RepriseMySQL
import ReprisePostgres

struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Connect to PostgreSQL, MySQL and RabbitMQ and report what answers.",
        discussion: "Exits with 3 when any server cannot be reached or refuses the login.")

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var mysql: MySQLOptions
    @OptionGroup var amqp: AMQPOptions

    @Option(help: "Seconds to wait for each server.")
    var timeout = 5

    func run() async throws {
        var failed = false
        do {
            let connection = try await PostgresConnection.connect(url: try postgres.resolvedURL(), connectTimeoutSeconds: timeout)
            let version = try await connection.query("SHOW server_version").string(0, 0) ?? "?"
            Terminal.output("postgresql ok  \(connection.server)  (server \(version))")
            await connection.close()
        } catch {
            failed = true
            Terminal.output("postgresql FAILED  \(error)")
        }
        do {
            let connection = try await MySQLConnection.connect(url: try mysql.resolvedURL(), connectTimeoutSeconds: timeout)
            let version = try await connection.query("SELECT VERSION()").string(0, 0) ?? "?"
            Terminal.output("mysql      ok  \(connection.server)  (server \(version))")
            await connection.close()
        } catch {
            failed = true
            Terminal.output("mysql      FAILED  \(error)")
        }
        do {
            let connection = try await AMQPConnection.connect(url: try amqp.resolvedURL(), connectTimeoutSeconds: timeout)
            Terminal.output("rabbitmq   ok  \(connection.server)")
            await connection.close()
        } catch {
            failed = true
            Terminal.output("rabbitmq   FAILED  \(error)")
        }
        if failed { throw ExitCode(RepriseExitCode.unreachable) }
    }
}
