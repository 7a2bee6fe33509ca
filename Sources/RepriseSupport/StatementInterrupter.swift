import Dispatch
import Synchronization

/// Carries task cancellation into a C client library: while a blocking statement runs, a
/// cancelled task makes `interrupt` run (libpq's `PQcancel`, MySQL's `KILL QUERY` from a second
/// connection), on the interrupter's own queue, so the cancelling thread never blocks.
///
/// Statements are numbered: a cancellation that arrives after its statement ended sends nothing,
/// so it cannot interrupt a later statement of the same connection.
///
/// ```swift
/// let outcome = await interrupter.run { () throws(MySQLError) in try blockingQuery() }
/// ```
public final class StatementInterrupter: Sendable {
    private struct State {
        var serial: UInt64 = 0
        var running: UInt64?
    }

    private let state = Mutex(State())
    private let queue: DispatchQueue
    private let interrupt: @Sendable () -> Void

    /// `interrupt` ends whatever statement the connection runs now; it may block (it runs on
    /// the interrupter's queue).
    public init(label: String, interrupt: @escaping @Sendable () -> Void) {
        self.queue = DispatchQueue(label: label)
        self.interrupt = interrupt
    }

    /// Runs `body` (one blocking call on the caller's isolation, the connection's executor);
    /// cancelling the task meanwhile interrupts it.
    public func run<T, E: Error>(isolation: isolated (any Actor)? = #isolation, _ body: () throws(E) -> T) async -> Result<T, E> {
        let statement = state.withLock { state in
            state.serial += 1
            state.running = state.serial
            return state.serial
        }
        let outcome: Result<T, E> = await withTaskCancellationHandler {
            // Capturing `isolation` keeps this closure on the connection's executor: a closure
            // that does not would run its blocking call on the cooperative pool.
            _ = isolation
            do throws(E) { return .success(try body()) } catch { return .failure(error) }
        } onCancel: {
            self.interrupt(statement)
        }
        state.withLock { state in
            if state.running == statement { state.running = nil }
        }
        return outcome
    }

    private func interrupt(_ statement: UInt64) {
        queue.async { [self] in
            guard state.withLock({ $0.running == statement }) else { return }
            interrupt()
        }
    }
}
