import ArgumentParser
import Synchronization
import RepriseEngine
import RepriseMySQL
import RepriseProjection
import RepriseSupport

#if canImport(Glibc)
import Glibc
#endif

struct RebuildCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebuild",
        abstract: "Rebuild projections from the event store into new tables, then swap them in.",
        discussion: """
            Streams every event the projections handle from PostgreSQL through a server-side cursor, \
            applies the handlers to new (green) MySQL tables in checkpointed chunks, catches up with \
            events committed meanwhile, runs the projection's checks, and swaps all its tables in with \
            one atomic RENAME TABLE. Readers see the old tables until the swap and the new ones after.

            Several projections given together read and decode the store once. An interrupted rebuild \
            (crash, kill -9, lost server) resumes from its last committed chunk when run again with the \
            same projection definition. One rebuild per projection runs at a time.

            SIGTERM or SIGINT cancels the statement in progress on its server, releases the locks and \
            connections, and exits with 143 (130 for SIGINT); run the same command again to resume.

            Exit codes: 0 done, 1 failure, 64 bad usage, 3 server unreachable, 4 another rebuild of the \
            projection is running, 5 a check failed (the live tables were left in place), 143/130 stopped \
            by a signal (resumable).
            """)

    @OptionGroup var selection: ProjectionSelection

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var eventSource: SourceOptions
    @OptionGroup var mysql: MySQLOptions

    @OptionGroup var tuning: BuildTuningOptions

    @Flag(help: "Build the new tables but do not swap them in.")
    var noSwap = false

    @Flag(help: "Abandon an interrupted build of these projections and start again from the first event.")
    var restart = false

    @Option(help: ArgumentHelp(
        "Split the first round into N partitions by each projection's partition_key; run the same command in any number of processes, on any machines, to share the work.",
        valueName: "N"))
    var partitions: Int?

    @Option(help: "This worker's name in the partition manifest (default: host:pid).")
    var worker: String?

    @Option(help: ArgumentHelp(
        "With --partitions: only help a partitioned build other workers started, waiting up to this many seconds for one; exit 0 if none appears.",
        valueName: "seconds"))
    var join: Double?

    @Option(help: ArgumentHelp(
        "With --partitions: a partition whose owner committed nothing for this long is taken from it (its sessions are ended).",
        valueName: "seconds"))
    var leaseSeconds = 120

    @Flag(help: "No progress output.")
    var quiet = false

    @Flag(help: "Print the summary as JSON on standard output (implies --quiet).")
    var json = false

    func validate() throws {
        if let partitions, !(1...1024).contains(partitions) { throw ValidationError("--partitions is between 1 and 1024") }
        if partitions == nil, join != nil || worker != nil { throw ValidationError("--join and --worker are for partitioned workers: give --partitions too") }
        if let join, join < 0 { throw ValidationError("--join is a number of seconds") }
        guard leaseSeconds >= 1 else { throw ValidationError("--lease-seconds must be at least 1") }
        if partitions != nil, restart {
            // Every worker would abandon the build the others are filling.
            throw ValidationError("--restart cannot be given to partitioned workers; to start a partitioned build over, stop its workers and abandon it with one `reprise rebuild <projections> --restart`, or let the workers resume it")
        }
    }

    /// A partition's heartbeat is its chunks' commits, which may come up to `--flush-seconds`
    /// apart (plus the commit): with a lease shorter than about twice that, another worker may
    /// take a partition from a worker that is alive. Not refused: small chunks (`--chunk-size`,
    /// `--flush-mib`) may commit far more often; said, with the remedy.
    static func leaseWarning(leaseSeconds: Int, flushSeconds: Double) -> String? {
        guard Double(leaseSeconds) < 2 * flushSeconds else { return nil }
        func seconds(_ value: Double) -> String { value == value.rounded() ? String(Int(value)) : String(value) }
        return "warning: --lease-seconds \(leaseSeconds) is under twice --flush-seconds (\(seconds(flushSeconds))): a partition's lease is renewed by its chunks' commits, which may come \(seconds(flushSeconds)) s apart, so another worker may take a partition from a worker that is alive; give --flush-seconds \(seconds(Double(leaseSeconds) / 2)) or less, or a longer lease"
    }

    static func defaultWorkerName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, name.count - 1)
        return String(decoding: name.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self) + ":\(getpid())"
    }

    func run() async throws {
        try await reportingFailures {
            let selected = try selection.selected()
            var options = tuning.rebuildOptions
            tuning.warnAboutDeprecatedOptions()
            if partitions != nil, let warning = Self.leaseWarning(leaseSeconds: leaseSeconds, flushSeconds: tuning.flushSeconds) {
                Terminal.error(warning)
            }
            options.joinOnly = join.map { .milliseconds(Int64($0 * 1000)) }
            options.leaseSeconds = leaseSeconds
            options.swap = !noSwap
            options.resume = !restart
            let engine = RebuildEngine(
                postgresURL: try postgres.resolvedURL(), mysqlURL: try mysql.resolvedURL(), source: try eventSource.eventSource(postgres),
                options: options)
            let hooks = CommandLineContext.buildHooks
            let display = RebuildProgressDisplay(quiet: quiet || json)
            let started = ContinuousClock.now
            let results: [RebuildResult]
            let partitions = partitions, worker = worker ?? Self.defaultWorkerName()
            do {
                results = try await runningEngine(display) {
                    try await Signals.cancelling {
                        if let partitions {
                            return try await engine.rebuildPartitioned(selected, partitions: partitions, worker: worker, hooks: hooks) { progress in
                                display.update(progress)
                            }
                        }
                        return try await engine.rebuild(selected, hooks: hooks) { progress in
                            display.update(progress)
                        }
                    }
                }
            } catch let interrupted as Interrupted {
                throw interrupted.reported(rerun: "run the same command again to resume from the last committed chunk")
            } catch let nothing as NothingToJoin {
                // A late --join worker: the build is done or was never started; not a failure.
                if !quiet && !json { Terminal.output("\(nothing)") }
                return
            }
            let elapsed = ContinuousClock.now - started
            let seconds = elapsed.seconds
            if json {
                Terminal.output(RebuildSummary.json(results, seconds: seconds, timings: engine.timings))
            } else if !quiet {
                for line in RebuildSummary.lines(results, seconds: seconds, timings: engine.timings) { Terminal.output(line) }
            }
        }
    }
}

/// Which projections a command runs: names, or `--all`, from the projections folder.
struct ProjectionSelection: ParsableArguments {
    @Argument(help: "Projection names (files in the projections folder).")
    var projections: [String] = []

    @Flag(help: "Every projection in the projections folder.")
    var all = false

    @Option(help: "Folder of projection files.")
    var projectionsDir = "projections"

    func validate() throws {
        guard all != !projections.isEmpty else { throw ValidationError("name the projections, or pass --all (not both)") }
    }

    func selected() throws -> [RunnableProjection] {
        let catalog = try ProjectionCatalog.load(directory: projectionsDir)
        return try all ? catalog.all : projections.map { try catalog.projection(named: $0) }
    }
}

/// The projections a command can run: the files of the projections folder, plus code projections
/// compiled into this binary (`Reprise.main(projections:)`).
struct ProjectionCatalog {
    var all: [RunnableProjection]

    static func load(directory: String) throws -> ProjectionCatalog {
        try load(directory: directory, code: CommandLineContext.codeProjections)
    }

    /// Files and code projections side by side, sorted by name; one name, one projection.
    static func load(directory: String, code: [any Projection]) throws -> ProjectionCatalog {
        // A binary with only Swift projections needs no projections folder.
        let definitions = code.isEmpty || directoryExists(directory) ? try ProjectionFileParser.loadDirectory(directory) : []
        var all = definitions.map { RunnableProjection.file($0) }
        for projection in code {
            let name = projection.definition.name
            if let file = definitions.first(where: { $0.name == name }) {
                throw ValidationError("projection \(name) is defined twice: by the file \(file.sourceFile ?? directory) and by the Swift type \(type(of: projection)); rename one")
            }
            if all.contains(where: { $0.definition.name == name }) {
                throw ValidationError("two Swift projections are named \(name); names must be unique")
            }
            all.append(.code(projection))
        }
        return ProjectionCatalog(all: all.sorted { $0.definition.name < $1.definition.name })
    }

    private static func directoryExists(_ path: String) -> Bool {
        var status = stat()
        return stat(path, &status) == 0 && (status.st_mode & S_IFMT) == S_IFDIR
    }

    func projection(named name: String) throws -> RunnableProjection {
        guard let found = all.first(where: { $0.definition.name == name }) else {
            let known = all.map(\.definition.name).joined(separator: ", ")
            throw ValidationError("no projection named '\(name)' (known: \(known.isEmpty ? "none" : known))")
        }
        return found
    }
}
