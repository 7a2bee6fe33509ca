import Synchronization

/// A request to stop, set by SIGTERM/SIGINT (or a test), checked by long-running workers between
/// units of work: the current chunk finishes, commits and is acknowledged first.
public final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)

    public init() {}

    public var isStopped: Bool { stopped.load(ordering: .acquiring) }

    public func stop() { stopped.store(true, ordering: .releasing) }

    /// Sleeps up to `duration`, returning early when stopped or when the task is cancelled.
    public func sleep(_ duration: Duration) async {
        let deadline = ContinuousClock.now + duration
        while !isStopped && !Task.isCancelled && ContinuousClock.now < deadline {
            try? await Task.sleep(for: min(.milliseconds(50), deadline - ContinuousClock.now))
        }
    }
}
