/// An error of a connection wrapper that says itself what it means for the session, so callers
/// decide about retries without switching on concrete error types or server codes.
///
/// The three wrappers (PostgreSQL, MySQL, AMQP) name the same failure the same way: a session
/// that ended while in use is `isConnectionLoss` (its code is `.connectionLost` in every
/// wrapper); nothing reconnects behind the caller's back, so whoever retries reopens explicitly.
///
/// ```swift
/// catch let error as any ConnectionLossReporting where error.isTransient {
///     if error.isConnectionLoss { try await connection.reopen() }
///     // redo the unit of work
/// }
/// ```
public protocol ConnectionLossReporting: Error {
    /// The session ended (dropped, killed, server gone): its open transaction was rolled back and
    /// its session state (named or advisory locks, session settings) is lost. The connection
    /// must be reopened explicitly before it is used again.
    var isConnectionLoss: Bool { get }
    /// Redoing the unit of work may succeed once the server is back: a connection loss, a server
    /// that refused or did not answer, a server shutting down, a deadlock or lock wait timeout.
    var isTransient: Bool { get }
}

extension ConnectionLossReporting {
    public var isTransient: Bool { isConnectionLoss }
}

/// Transaction errors that keep begin, body, rollback and commit failures apart answer for the
/// step that failed.
public enum ConnectionLoss {
    /// Whether `error` (any wrapper's error, or one that wraps it) is a lost session.
    public static func isConnectionLoss(_ error: (any Error)?) -> Bool {
        (error as? any ConnectionLossReporting)?.isConnectionLoss ?? false
    }

    /// Whether redoing the work that failed with `error` may succeed.
    public static func isTransient(_ error: (any Error)?) -> Bool {
        (error as? any ConnectionLossReporting)?.isTransient ?? false
    }
}
