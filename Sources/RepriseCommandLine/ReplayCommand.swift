import ArgumentParser
import Foundation
import RepriseLive
import Synchronization

struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Publish a range of history from the event store to an exchange, for a new subscriber to backfill.",
        discussion: """
            Reads the events (Reprise's own store) in position order and publishes them to the topic \
            exchange --exchange the way the relay does (routing key: the event type; message id: the \
            event id; envelope in headers), in batches with publisher confirms, at most --rate events \
            per second. The position reached is saved after each confirmed batch in PostgreSQL \
            (<store-schema>.reprise_replays, keyed by exchange): running the same command again after \
            a crash resumes there without gaps (the batch in flight may arrive twice: deduplicate by \
            message id). The outbox and its published marks are never touched. The live exchange \
            (--live-exchange, the relay's) is refused unless --allow-live-exchange: live workers would \
            see the history as new messages (they deduplicate, but it costs them a catch-up each).
            """)

    @Option(help: "The exchange to publish to (a topic exchange; declared if missing).")
    var exchange: String

    @Option(help: ArgumentHelp("First global position to publish.", valueName: "position"))
    var from: Int64 = 1

    @Option(help: ArgumentHelp("Last global position to publish (default: the head when the replay starts).", valueName: "position"))
    var to: Int64?

    @Option(help: ArgumentHelp("Only these event types (comma-separated).", valueName: "types"))
    var types: String?

    @Option(help: "Events per confirmed batch.")
    var batchSize = 500

    @Option(help: ArgumentHelp("At most this many events per second (default: no limit).", valueName: "events"))
    var rate: Double?

    @Option(help: "The exchange the relay publishes to, refused as a target unless --allow-live-exchange.")
    var liveExchange = "reprise.events"

    @Flag(help: "Allow publishing history to the live exchange.")
    var allowLiveExchange = false

    @Flag(help: "Start over, even if a replay to this exchange was recorded (finished or not).")
    var restart = false

    @Flag(help: "No progress output.")
    var quiet = false

    @OptionGroup var postgres: PostgresOptions
    @OptionGroup var amqp: AMQPOptions

    func validate() throws {
        if exchange == liveExchange && !allowLiveExchange {
            throw ValidationError("\(exchange) is the live exchange (the relay publishes there and live workers consume it); choose another exchange, or pass --allow-live-exchange")
        }
        if let to, to < from { throw ValidationError("--to \(to) is before --from \(from)") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        if let rate, rate <= 0 { throw ValidationError("--rate must be positive") }
    }

    func run() async throws {
        try await reportingFailures {
            var configuration = HistoryReplay.Configuration(postgresURL: try postgres.resolvedURL(), amqpURL: try amqp.resolvedURL(), exchange: exchange)
            configuration.storeSchema = try postgres.eventStoreSchema()
            configuration.from = from
            configuration.to = to
            configuration.types = types.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } } ?? []
            configuration.batchSize = batchSize
            configuration.rate = rate
            configuration.restart = restart
            if let afterConfirm = CommandLineContext.hooks.replayAfterConfirm { configuration.afterConfirm = afterConfirm }
            let display = ReplayProgressDisplay(exchange: exchange, quiet: quiet)
            let replay = HistoryReplay(configuration)
            let done: HistoryReplay.Progress
            do {
                // SIGTERM/SIGINT: the rate's wait or the statement in progress is cancelled and the
                // connections closed; every confirmed batch whose position was saved stays done.
                done = try await Signals.cancelling { try await replay.run { display.update($0) } }
            } catch let interrupted as Interrupted {
                if !quiet && Terminal.standardErrorIsTerminal { Terminal.endStatus() }
                throw interrupted.reported(
                    rerun: "run the same command again to resume after the last batch saved (a batch confirmed but not yet saved is published again)")
            }
            if !quiet && Terminal.standardErrorIsTerminal { Terminal.endStatus() }
            Terminal.output("replayed \(done.published) events to \(exchange) (positions \(from)...\(done.lastPosition)\(done.resumed ? ", resumed" : ""))")
        }
    }
}

/// The replay's progress line, counted from where this run starts so the rate and ETA are this run's.
private final class ReplayProgressDisplay: Sendable {
    private let state = Mutex<(line: ProgressLine, start: Int64)?>(nil)
    private let exchange: String
    private let quiet: Bool

    init(exchange: String, quiet: Bool) {
        self.exchange = exchange
        self.quiet = quiet
    }

    func update(_ progress: HistoryReplay.Progress) {
        guard !progress.finished else { return }
        state.withLock { state in
            if state == nil {
                let label = "replay to \(exchange)" + (progress.resumed ? " (resumed after \(progress.published) events, at position \(progress.lastPosition))" : "")
                state = (ProgressLine(label: label, total: Int(progress.total - progress.published), quiet: quiet), progress.published)
            }
            if let start = state?.start { state?.line.update(done: Int(progress.published - start)) }
        }
    }
}
