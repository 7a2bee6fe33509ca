import Foundation
import RepriseSupport
import Testing

/// An actor on a `BlockingExecutor` of a pool the test owns (the shared pool is used by the
/// tests running beside this one).
private actor OnItsOwnThread {
    private let executor: BlockingExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    init(pool: BlockingExecutor.ThreadPool) {
        executor = BlockingExecutor(label: "test.blocking-executor", pool: pool)
    }

    func threadID() -> ObjectIdentifier { ObjectIdentifier(Thread.current) }
}

@Suite struct BlockingExecutorTests {
    /// A thread whose executor ended parks for the next executor instead of ending: a thread
    /// ending runs the C libraries' thread-exit destructors, which raced their exit handlers when
    /// the process ended meanwhile (docs/architecture.md).
    @Test func anExecutorsThreadParksAndServesTheNextExecutor() async throws {
        let pool = BlockingExecutor.ThreadPool()
        var first: OnItsOwnThread? = OnItsOwnThread(pool: pool)
        let thread = try #require(await first?.threadID())
        #expect(pool.parkedCount == 0, "in use while its executor lives")
        first = nil
        // The thread runs what is left of the executor's queue, then parks.
        for _ in 0..<6_000 where pool.parkedCount == 0 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(pool.parkedCount == 1)
        let second = OnItsOwnThread(pool: pool)
        #expect(await second.threadID() == thread, "the next executor runs on the parked thread")
        #expect(pool.parkedCount == 0)
    }
}
