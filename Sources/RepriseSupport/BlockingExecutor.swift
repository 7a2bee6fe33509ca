import Foundation

/// A serial executor with a thread of its own.
///
/// The C client libraries block (network round trips, `PQgetResult`, `mysql_real_query`,
/// `amqp_simple_wait_frame`). Each connection actor runs on one of these, so blocking calls
/// occupy the connection's own thread, never a thread of Swift's cooperative pool, and never a
/// thread of a shared pool either: libdispatch caps its threads (255 on Linux), and a process
/// with that many connections blocked at once (a parallel test run while a server restarts)
/// stalled every other connection behind them, long enough for RabbitMQ to drop one for
/// missed heartbeats.
///
/// ```swift
/// actor Connection {
///     private let executor = BlockingExecutor(label: "reprise.postgres")
///     nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
/// }
/// ```
public final class BlockingExecutor: SerialExecutor, @unchecked Sendable {
    // @unchecked: `jobs` holds the jobs waiting for the thread, guarded by its condition.
    private final class JobQueue: @unchecked Sendable {
        let condition = NSCondition()
        var jobs: [UnownedJob] = []
        var closed = false
        /// Set once, before the thread starts: the executor its jobs run on.
        var executor: UnownedSerialExecutor?
    }

    private let queue = JobQueue()
    private let thread: Thread

    public init(label: String) {
        let queue = queue
        // The thread holds the queue, not the executor: the executor's deinit closes the queue,
        // and the thread ends once the jobs before that are run.
        thread = Thread {
            while let batch = Self.nextJobs(queue), let executor = queue.executor {
                for job in batch { job.runSynchronously(on: executor) }
            }
        }
        thread.name = label
        queue.executor = UnownedSerialExecutor(ordinary: self)
        thread.start()
    }

    /// Waits for jobs; nil once the queue is closed and drained.
    private static func nextJobs(_ queue: JobQueue) -> [UnownedJob]? {
        queue.condition.lock()
        defer { queue.condition.unlock() }
        while queue.jobs.isEmpty && !queue.closed { queue.condition.wait() }
        if queue.jobs.isEmpty { return nil }
        defer { queue.jobs.removeAll(keepingCapacity: true) }
        return queue.jobs
    }

    deinit {
        // A job keeps its actor, and so this executor, alive: no job is waiting now.
        queue.condition.lock()
        queue.closed = true
        queue.condition.signal()
        queue.condition.unlock()
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.condition.lock()
        queue.jobs.append(job)
        queue.condition.signal()
        queue.condition.unlock()
    }

    /// Lets the runtime confirm a synchronous closure isolated to the connection runs on its
    /// thread (closures handed through generic helpers such as `withTaskCancellationHandler`).
    public func checkIsolated() {
        precondition(Thread.current === thread, "not on the connection's thread")
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }
}
