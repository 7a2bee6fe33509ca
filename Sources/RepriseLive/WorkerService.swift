import Logging
import ServiceLifecycle

/// A long-running worker (the relay, the live worker, a partitioned live worker) as a
/// swift-service-lifecycle `Service`.
///
/// Graceful shutdown (SIGTERM/SIGINT reaching the `ServiceGroup`) and task cancellation both set
/// the worker's `StopSignal`: the worker finishes its current chunk, commits it, acknowledges its
/// messages and returns. Nothing is started in `init`; `run()` is the whole lifetime.
///
/// ```swift
/// let live = WorkerService(name: "live", logger: logger) { stop in
///     try await LiveWorker(configuration, projections: selected).run(stop: stop) { $0.log(to: logger) }
/// }
/// try await ServiceGroup(configuration: .init(services: [.init(service: live)], logger: logger)).run()
/// ```
public struct WorkerService: Service {
    public let name: String
    private let logger: Logger
    private let work: @Sendable (StopSignal) async throws -> Void

    public init(name: String, logger: Logger, work: @escaping @Sendable (StopSignal) async throws -> Void) {
        self.name = name
        self.logger = logger
        self.work = work
    }

    public func run() async throws {
        let stop = StopSignal()
        let logger = self.logger
        let name = self.name
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await work(stop)
            } onGracefulShutdown: {
                logger.info("\(name).stopping", metadata: ["reason": "graceful shutdown", "then": "finish the current chunk, commit, acknowledge"])
                stop.stop()
            }
        } onCancel: {
            stop.stop()
        }
        logger.info("\(name).returned")
    }
}
