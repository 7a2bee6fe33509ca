/// Thrown between chunks when the caller asked to stop (a live worker's SIGTERM): the chunk in
/// flight has committed, nothing else started. Callers catch it; it is never a failure.
public struct StopRequested: Error, Sendable {
    public init() {}
}
