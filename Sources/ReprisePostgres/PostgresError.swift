import RepriseSupport

/// A five-character SQLSTATE code, matchable by class in `catch` and `switch`:
///
/// ```swift
/// catch let error as PostgresError where error.sqlState ~= .integrityConstraintViolationClass { ... }
/// ```
public struct SQLState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The two-character class ("23" of "23505").
    public var errorClass: String { String(rawValue.prefix(2)) }
    public var description: String { rawValue }

    public static let uniqueViolation = SQLState(rawValue: "23505")
    public static let serializationFailure = SQLState(rawValue: "40001")
    public static let undefinedTable = SQLState(rawValue: "42P01")
    public static let syntaxError = SQLState(rawValue: "42601")
    public static let queryCanceled = SQLState(rawValue: "57014")
    public static let adminShutdown = SQLState(rawValue: "57P01")
    public static let invalidPassword = SQLState(rawValue: "28P01")
    /// Class patterns: a two-character state matches every code of its class.
    public static let integrityConstraintViolationClass = SQLState(rawValue: "23")
    public static let connectionExceptionClass = SQLState(rawValue: "08")

    /// `pattern ~= code`: equal codes, or a two-character class pattern and a code of that class.
    public static func ~= (pattern: SQLState, code: SQLState?) -> Bool {
        guard let code else { return false }
        return pattern ~= code
    }

    /// Non-optional overload: more specific than Equatable's `~=`, so a class pattern still matches.
    public static func ~= (pattern: SQLState, code: SQLState) -> Bool {
        if pattern.rawValue.count == 2 { return code.errorClass == pattern.rawValue }
        return pattern == code
    }
}

/// An error from the PostgreSQL wrapper.
///
/// `code` says what failed (connecting, a query, the connection being lost, ...); server errors
/// carry their SQLSTATE and fields. The password of the connection URL never appears here:
/// every message passes through the connection's `SecretRedactor`. Query parameters are never
/// stored, only the SQL text (which holds placeholders, not values). It answers
/// `isConnectionLoss` and `isTransient` itself (`ConnectionLossReporting`).
public struct PostgresError: Error, Sendable, CustomStringConvertible, ConnectionLossReporting {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: String, Sendable {
            case invalidURL, connectionFailed, connectionTimedOut, connectionLost, connectionClosed, server, protocolViolation
            case notInTransaction, resultDecoding, cancelled
        }
        let base: Base
        public static let invalidURL = Code(base: .invalidURL)
        /// The server refused or could not be reached (authentication, DNS, refused port).
        public static let connectionFailed = Code(base: .connectionFailed)
        /// The server did not answer within the connect timeout.
        public static let connectionTimedOut = Code(base: .connectionTimedOut)
        /// The connection dropped while in use (terminated, server gone): the session is gone
        /// with its transaction, advisory locks and settings. Nothing reconnects by itself.
        public static let connectionLost = Code(base: .connectionLost)
        /// The connection was closed with `close()`.
        public static let connectionClosed = Code(base: .connectionClosed)
        /// The server rejected a statement; `sqlState` and `serverMessage` say why.
        public static let server = Code(base: .server)
        public static let protocolViolation = Code(base: .protocolViolation)
        /// A cursor was declared outside a transaction.
        public static let notInTransaction = Code(base: .notInTransaction)
        /// A value could not be read as the type asked for.
        public static let resultDecoding = Code(base: .resultDecoding)
        /// The task was cancelled: the statement was not sent, or `PQcancel` interrupted it.
        public static let cancelled = Code(base: .cancelled)
        public var description: String { base.rawValue }
    }

    public var code: Code
    /// The SQLSTATE of a server error.
    public var sqlState: SQLState?
    /// The server's (or libpq's) message, redacted.
    public var message: String
    public var detail: String?
    public var hint: String?
    /// The SQL text that failed, when a statement failed (no parameter values).
    public var query: String?
    /// The server, as a redacted URL.
    public var server: String?

    public init(code: Code, message: String, sqlState: SQLState? = nil, detail: String? = nil, hint: String? = nil,
                query: String? = nil, server: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.detail = detail
        self.hint = hint
        self.query = query
        self.server = server
    }

    /// The session ended: lost by the client, or ended by the server (08: connection exception;
    /// 57P01/57P02: administrator or crash shutdown).
    public var isConnectionLoss: Bool {
        code == .connectionLost || sqlState ~= .connectionExceptionClass || ["57P01", "57P02"].contains(sqlState?.rawValue ?? "")
    }

    /// A lost or refused connection, a server starting or shutting down (57P03: cannot connect now).
    public var isTransient: Bool {
        isConnectionLoss || [.connectionFailed, .connectionTimedOut].contains(code) || sqlState?.rawValue == "57P03"
    }

    public var description: String {
        var text = "PostgreSQL \(code)"
        if let sqlState { text += " [SQLSTATE \(sqlState)]" }
        if let server { text += " (\(server))" }
        text += ": \(message)"
        if let detail { text += " — detail: \(detail)" }
        if let hint { text += " — hint: \(hint)" }
        if let query { text += " — query: \(query.count > 300 ? String(query.prefix(300)) + "…" : query)" }
        return text
    }
}

/// The failure of a transaction, keeping apart which step failed. When only the body failed
/// and the rollback succeeded, `withTransaction` rethrows the body's own error instead.
public struct PostgresTransactionError: Error, Sendable, CustomStringConvertible, ConnectionLossReporting {
    public var beginError: PostgresError?
    public var bodyError: (any Error)?
    public var rollbackError: PostgresError?
    public var commitError: PostgresError?

    public var isConnectionLoss: Bool {
        [beginError, rollbackError, commitError].contains { $0?.isConnectionLoss ?? false } || ConnectionLoss.isConnectionLoss(bodyError)
    }

    /// The transaction may be redone when its begin, commit or body failed transiently.
    public var isTransient: Bool {
        [beginError, commitError].contains { $0?.isTransient ?? false } || ConnectionLoss.isTransient(bodyError)
    }

    public var description: String {
        var parts: [String] = []
        if let beginError { parts.append("BEGIN failed: \(beginError)") }
        if let bodyError { parts.append("transaction body failed: \(bodyError)") }
        if let rollbackError { parts.append("ROLLBACK failed: \(rollbackError)") }
        if let commitError { parts.append("COMMIT failed: \(commitError)") }
        return parts.joined(separator: "; ")
    }
}
