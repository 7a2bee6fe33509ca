import Dispatch

/// A serial executor backed by its own dispatch queue.
///
/// The C client libraries block (network round trips, `PQgetResult`, `mysql_real_query`,
/// `amqp_simple_wait_frame`). Each connection actor runs on one of these, so blocking calls
/// occupy a queue thread and never a thread of Swift's cooperative pool.
///
/// ```swift
/// actor Connection {
///     private let executor = BlockingExecutor(label: "reprise.postgres")
///     nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
/// }
/// ```
public final class BlockingExecutor: SerialExecutor, @unchecked Sendable {
    // @unchecked: the only stored property is an immutable, thread-safe DispatchQueue.
    private let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: label)
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedSerialExecutor()) }
    }

    /// Lets the runtime confirm a synchronous closure isolated to the connection runs on its
    /// queue (closures handed through generic helpers such as `withTaskCancellationHandler`).
    public func checkIsolated() {
        dispatchPrecondition(condition: .onQueue(queue))
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }
}
