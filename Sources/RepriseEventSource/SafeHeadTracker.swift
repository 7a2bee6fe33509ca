import Synchronization

/// The settle-window safe head: the highest position observed at least `window` ago.
///
/// A source without a transaction id column cannot tell an uncommitted lower position from a gap.
/// Every observation of the table's head is remembered with its time; a reader may read up to an
/// observation once the window has passed since it was made, so a writer that took its position
/// before that observation had the whole window to commit. A reader asking before any observation
/// is old enough waits for the oldest one (once, at start).
public final class SafeHeadTracker: Sendable {
    public let window: Duration
    private struct State {
        var observations: [(at: ContinuousClock.Instant, head: Int64)] = []
        var lastSettled: Int64 = 0
    }
    private let state = Mutex(State())

    public init(window: Duration) {
        self.window = window
    }

    /// Records `head` (observed now) and returns the settled head, waiting if none is settled yet.
    public func settledHead(observed head: Int64) async throws -> Int64 {
        let now = ContinuousClock.now
        if window == .zero { return head }
        let waitUntil: ContinuousClock.Instant? = state.withLock { state in
            state.observations.append((now, head))
            return state.observations.contains(where: { $0.at + window <= now }) ? nil : state.observations[0].at + window
        }
        if let waitUntil { try await Task.sleep(until: waitUntil, clock: .continuous) }
        let settledAt = waitUntil ?? now
        return state.withLock { state in
            guard let index = state.observations.lastIndex(where: { $0.at + window <= settledAt }) else { return state.lastSettled }
            let settled = max(state.lastSettled, state.observations[index].head)
            // Older observations can never be the answer again.
            state.observations.removeFirst(index)
            state.lastSettled = settled
            return settled
        }
    }
}
