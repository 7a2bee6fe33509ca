import Foundation
import Synchronization

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
    fileprivate final class JobQueue: @unchecked Sendable {
        let condition = NSCondition()
        var jobs: [UnownedJob] = []
        var closed = false
        let label: String
        /// Set once, before a thread takes the queue: the executor its jobs run on.
        var executor: UnownedSerialExecutor?

        init(label: String) { self.label = label }
    }

    private let queue: JobQueue
    private let thread: Thread

    public convenience init(label: String) {
        self.init(label: label, pool: .shared)
    }

    /// An executor whose thread comes from `pool` (tests use a pool of their own).
    package init(label: String, pool: ThreadPool) {
        let queue = JobQueue(label: label)
        self.queue = queue
        let parked = pool.takeParked()
        let worker = parked ?? ThreadPool.Worker(pool: pool)
        thread = worker.thread
        queue.executor = UnownedSerialExecutor(ordinary: self)
        worker.run(queue)
        if parked == nil { worker.thread.start() }
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
        // A job keeps its actor, and so this executor, alive: no job is waiting now. The thread
        // runs what is left and then parks for the next executor.
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

    /// The executors' threads. A thread whose executor ended parks here for the next one
    /// instead of ending: a thread that ends runs the C libraries' thread-exit destructors
    /// (OpenSSL's, through libpq), and when that happened while the process was exiting, they
    /// freed what OpenSSL's exit handler freed too. Measured with `reprise status` ending by
    /// `exit` (2026-12-02): 2 of 200 runs aborted ("double free or corruption") with threads
    /// ending; with parked threads, none of 400. Parked threads hold no connection and wait on
    /// a condition, so the process ends around them.
    package final class ThreadPool: Sendable {
        package static let shared = ThreadPool()
        /// Threads kept parked; beyond them a thread ends (a process with more connections at once).
        static let parkedAtMost = 256

        private let parked = Mutex<[Worker]>([])

        package init() {}

        /// Threads parked now, waiting for an executor.
        package var parkedCount: Int { parked.withLock { $0.count } }

        /// One thread, running one executor's queue after another.
        fileprivate final class Worker: @unchecked Sendable {
            // @unchecked: `next` is guarded by `condition`.
            private let condition = NSCondition()
            private var next: JobQueue?
            private let box: Box
            private let pool: ThreadPool

            /// The thread, made after its worker: it runs the worker's loop for as long as the process lives.
            private final class Box: @unchecked Sendable {
                // @unchecked: set once, before the thread starts.
                var worker: Worker?
            }

            let thread: Thread

            init(pool: ThreadPool) {
                let box = Box()
                self.box = box
                self.pool = pool
                // A thread that ends lets go of its worker.
                thread = Thread {
                    box.worker?.loop()
                    box.worker = nil
                }
                box.worker = self
            }

            /// Gives the thread its next queue.
            fileprivate func run(_ queue: JobQueue) {
                condition.lock()
                next = queue
                condition.signal()
                condition.unlock()
            }

            private func waitForQueue() -> JobQueue {
                condition.lock()
                defer { condition.unlock() }
                while true {
                    if let queue = next {
                        next = nil
                        return queue
                    }
                    condition.wait()
                }
            }

            private func loop() {
                repeat {
                    let queue = waitForQueue()
                    Thread.current.name = queue.label
                    while let batch = BlockingExecutor.nextJobs(queue), let executor = queue.executor {
                        for job in batch { job.runSynchronously(on: executor) }
                    }
                } while pool.park(self)
            }
        }

        /// A parked worker, if any.
        fileprivate func takeParked() -> Worker? {
            parked.withLock { $0.popLast() }
        }

        /// Parks `worker` for the next executor; false when enough are parked (the thread ends).
        fileprivate func park(_ worker: Worker) -> Bool {
            parked.withLock { workers in
                guard workers.count < Self.parkedAtMost else { return false }
                workers.append(worker)
                return true
            }
        }
    }
}
