import ArgumentParser
import Logging
import RepriseEngine
import ReprisePostgres
import RepriseLogging
import RepriseSupport

#if canImport(Glibc)
import Glibc
#endif

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a job file from jobs/ (rebuild, live, relay or migrate).",
        discussion: """
            A job names what to run, on which projections, with which settings, and the environment \
            variables that hold the connection URLs (never the URLs themselves). One run of a job at a \
            time: a run that finds the previous one still going (a PostgreSQL advisory lock named after \
            the job) exits at once with code 6, so a scheduler can start jobs on a timer safely. \
            Exit codes: those of the command the job runs, and 6 when the previous run is still running.
            """)

    @Argument(help: "The job file, e.g. jobs/nightly-rebuild.yml.")
    var job: String

    @Flag(help: "Print the command the job stands for (passwords hidden) and exit.")
    var dryRun = false

    func run() async throws {
        let file: JobFile
        let arguments: [String]
        do {
            file = try JobFile.load(path: job)
            arguments = try file.arguments { name in getenv(name).map { String(cString: $0) } }
        } catch let problem as JobFile.Problem {
            throw ValidationError(problem.description)
        }
        // A setting the command refuses (a word where a number belongs) is the job file's mistake:
        // say so before any connection, in the parser's words.
        var command: any ParsableCommand
        do {
            command = try RepriseCommand.parseAsRoot(arguments)
        } catch {
            throw ValidationError(ConnectionURL.redact("\(job): a setting is not valid for `reprise \(file.kind.rawValue)`: \(RepriseCommand.message(for: error))"))
        }
        if dryRun {
            Terminal.output((["reprise"] + arguments.map(ConnectionURL.redact)).joined(separator: " "))
            return
        }
        try await reportingFailures {
            guard let postgresIndex = arguments.firstIndex(of: "--postgres-url"), postgresIndex + 1 < arguments.count else {
                throw ValidationError("job \(file.name) has no PostgreSQL URL for its lock")
            }
            let lockConnection = try await PostgresConnection.connect(url: arguments[postgresIndex + 1])
            let key = LockNames.job(file.name)
            guard try await lockConnection.tryAdvisoryLock(key) else {
                await lockConnection.close()
                Terminal.error("job \(file.name) is still running (another process holds its lock); this run does nothing")
                throw ExitCode(6)
            }
            // The job's own command may choose another --log-format or --log-level when it starts.
            RepriseLog.bootstrap()
            RepriseLog.addSecrets(fromURLs: arguments)
            let logger = Logger(label: "reprise.run")
            logger.info("job.started", metadata: ["job": "\(file.name)", "run": "\(file.kind.rawValue)"])
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            logger.info("job.finished", metadata: ["job": "\(file.name)"])
            _ = try? await lockConnection.advisoryUnlock(key)
            await lockConnection.close()
        }
    }
}
