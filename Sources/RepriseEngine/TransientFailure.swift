import RepriseMySQL
import ReprisePostgres

/// Failures that pass when the server comes back: a lost or refused connection, a server
/// shutting down, a deadlock. Work that failed this way is redone from its last checkpoint.
public enum TransientFailure {
    public static func isTransient(_ error: any Error) -> Bool {
        switch error {
        case let mysql as MySQLError:
            return [.connectionLost, .connectionFailed, .connectionTimedOut].contains(mysql.code)
                || mysql.errorNumber == MySQLError.deadlock || mysql.errorNumber == MySQLError.lockWaitTimeout
        case let transaction as MySQLTransactionError:
            return [transaction.beginError, transaction.commitError].contains { $0.map(isTransient) ?? false }
                || transaction.bodyError.map(isTransient) ?? false
        case let postgres as PostgresError:
            if [.connectionFailed, .connectionTimedOut, .connectionClosed].contains(postgres.code) { return true }
            // 08: connection exception; 57P01-03: administrator shutdown, crash shutdown, cannot connect now.
            return postgres.sqlState ~= .connectionExceptionClass || ["57P01", "57P02", "57P03"].contains(postgres.sqlState?.rawValue ?? "")
        case let transaction as PostgresTransactionError:
            return [transaction.beginError, transaction.commitError].contains { $0.map(isTransient) ?? false }
                || transaction.bodyError.map(isTransient) ?? false
        default:
            return false
        }
    }

    /// The wait before retry `attempt` (1-based): 250 ms doubling, at most 4 s.
    public static func backoff(attempt: Int) -> Duration {
        .milliseconds(min(250 << min(attempt - 1, 6), 4_000))
    }
}
