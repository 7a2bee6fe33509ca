import RepriseSupport

/// Failures that pass when the server comes back: a lost or refused connection, a server
/// shutting down, a deadlock. Work that failed this way is redone from its last checkpoint.
///
/// Each wrapper's error answers for itself (`ConnectionLossReporting`); an `EngineError`
/// answers for the error it wraps.
public enum TransientFailure {
    public static func isTransient(_ error: any Error) -> Bool {
        if let engine = error as? EngineError, let underlying = engine.underlying { return isTransient(underlying) }
        return ConnectionLoss.isTransient(error)
    }

    /// Whether the session of a connection ended with `error`: it must be reopened explicitly
    /// (its locks and settings are gone) before it is used again.
    public static func isConnectionLoss(_ error: any Error) -> Bool {
        if let engine = error as? EngineError, let underlying = engine.underlying { return isConnectionLoss(underlying) }
        return ConnectionLoss.isConnectionLoss(error)
    }

    /// The wait before retry `attempt` (1-based): 250 ms doubling, at most 4 s.
    public static func backoff(attempt: Int) -> Duration {
        .milliseconds(min(250 << min(attempt - 1, 6), 4_000))
    }
}
