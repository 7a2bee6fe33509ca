import RepriseSupport

/// An error from the MySQL/MariaDB wrapper, with the server's error number and SQLSTATE.
///
/// Messages pass through the connection's `SecretRedactor`; parameter values are never stored.
/// It answers `isConnectionLoss` and `isTransient` itself (`ConnectionLossReporting`).
public struct MySQLError: Error, Sendable, CustomStringConvertible, ConnectionLossReporting {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Sendable {
            case invalidURL, connectionFailed, connectionTimedOut, connectionLost, connectionClosed, cancelled, server
            case parameterMismatch, invalidValue, notInTransaction, bulkLoadRejected
        }
        let base: Base
        public static let invalidURL = Code(base: .invalidURL)
        /// The server refused the connection or could not be reached (including bad credentials).
        public static let connectionFailed = Code(base: .connectionFailed)
        /// The server did not answer within the connect timeout.
        public static let connectionTimedOut = Code(base: .connectionTimedOut)
        /// The connection dropped while in use (killed, server gone). The session is gone with
        /// its transaction, named locks and session settings; every later statement fails the
        /// same way until the owner calls `reopen()` (which says what was lost).
        public static let connectionLost = Code(base: .connectionLost)
        /// The connection was closed with `close()`.
        public static let connectionClosed = Code(base: .connectionClosed)
        /// The task was cancelled: the statement was not sent, or `KILL QUERY` interrupted it.
        public static let cancelled = Code(base: .cancelled)
        /// The server rejected a statement; `errorNumber` and `sqlState` say why.
        public static let server = Code(base: .server)
        /// The number of `?` placeholders and of parameters differ.
        public static let parameterMismatch = Code(base: .parameterMismatch)
        /// A value cannot be sent (a non-finite double).
        public static let invalidValue = Code(base: .invalidValue)
        public static let notInTransaction = Code(base: .notInTransaction)
        /// A bulk load read fewer rows than it was given, skipped some, or raised warnings
        /// (duplicate keys, values that do not fit): `LOAD DATA LOCAL` reports those as warnings.
        public static let bulkLoadRejected = Code(base: .bulkLoadRejected)
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The MySQL error number (1062 duplicate key, 1146 no such table, 2003 cannot connect, ...).
    public var errorNumber: UInt32?
    public var sqlState: String?
    public var message: String
    /// The SQL text with placeholders (never the values).
    public var query: String?
    /// The server, as a redacted URL.
    public var server: String?

    public init(code: Code, message: String, errorNumber: UInt32? = nil, sqlState: String? = nil, query: String? = nil, server: String? = nil) {
        self.code = code
        self.errorNumber = errorNumber
        self.sqlState = sqlState
        self.message = message
        self.query = query
        self.server = server
    }

    public static let duplicateEntry: UInt32 = 1062
    public static let noSuchTable: UInt32 = 1146
    public static let tableExists: UInt32 = 1050
    public static let lockWaitTimeout: UInt32 = 1205
    public static let deadlock: UInt32 = 1213
    public static let accessDenied: UInt32 = 1045
    /// ER_QUERY_INTERRUPTED: `KILL QUERY` ended the statement.
    public static let queryInterrupted: UInt32 = 1317

    public var isConnectionLoss: Bool { code == .connectionLost }

    /// A lost or refused connection (a restarting server), a deadlock, a lock wait timeout.
    public var isTransient: Bool {
        [.connectionLost, .connectionFailed, .connectionTimedOut].contains(code)
            || errorNumber == Self.deadlock || errorNumber == Self.lockWaitTimeout
    }

    public var description: String {
        var text = "MySQL \(code)"
        if let errorNumber { text += " [\(errorNumber)\(sqlState.map { "/\($0)" } ?? "")]" }
        if let server { text += " (\(server))" }
        text += ": \(message)"
        if let query { text += " — query: \(query.count > 300 ? String(query.prefix(300)) + "…" : query)" }
        return text
    }
}

/// The failure of a transaction, keeping apart which step failed. When only the body failed and
/// the rollback succeeded, `withTransaction` rethrows the body's own error instead.
public struct MySQLTransactionError: Error, Sendable, CustomStringConvertible, ConnectionLossReporting {
    public var beginError: MySQLError?
    public var bodyError: (any Error)?
    public var rollbackError: MySQLError?
    public var commitError: MySQLError?

    public var isConnectionLoss: Bool {
        [beginError, rollbackError, commitError].contains { $0?.isConnectionLoss ?? false } || ConnectionLoss.isConnectionLoss(bodyError)
    }

    /// The transaction may be redone when its begin, commit or body failed transiently.
    public var isTransient: Bool {
        [beginError, commitError].contains { $0?.isTransient ?? false } || ConnectionLoss.isTransient(bodyError)
    }

    public var description: String {
        var parts: [String] = []
        if let beginError { parts.append("START TRANSACTION failed: \(beginError)") }
        if let bodyError { parts.append("transaction body failed: \(bodyError)") }
        if let rollbackError { parts.append("ROLLBACK failed: \(rollbackError)") }
        if let commitError { parts.append("COMMIT failed: \(commitError)") }
        return parts.joined(separator: "; ")
    }
}
