import CMariaDB
import RepriseSupport
import Synchronization

/// Sends `KILL QUERY <id>` for the session's running statement from a second, short-lived
/// connection: the MySQL counterpart of libpq's `PQcancel`, used by the connection's
/// `StatementInterrupter` when a task is cancelled.
final class MySQLKillQuery: Sendable {
    private let connectionID = Mutex<UInt64?>(nil)
    private let url: ConnectionURL
    private let options: MySQLConnectOptions

    init(url: ConnectionURL, options: MySQLConnectOptions) {
        self.url = url
        self.options = options
    }

    /// The server's id of the session statements run on (nil: closed).
    func connected(to id: UInt64?) {
        connectionID.withLock { $0 = id }
    }

    func send() {
        guard let target = connectionID.withLock({ $0 }) else { return }
        let redactor = SecretRedactor(secrets: [url.password])
        guard let killer = try? MySQLConnection.openHandle(url: url, options: options, redactor: redactor, server: url.redacted) else { return }
        defer { mysql_close(killer) }
        let text = "KILL QUERY \(target)"
        _ = text.withCString { mysql_real_query(killer, $0, UInt(text.utf8.count)) }
    }
}

/// What `MySQLConnection.reopen()` replaced: the old session and what went with it.
public struct MySQLReopened: Sendable, CustomStringConvertible {
    /// The server's id of the old session (0 when it was closed).
    public var previousConnectionID: UInt64
    /// Whether the old session had dropped (false: it was closed, or reopened while alive).
    public var wasLost: Bool
    /// Named locks (`GET_LOCK`) the old session held: released by the server, not taken again.
    public var lostNamedLocks: [String]
    /// `SET` statements the caller had run on the old session (placeholders, no values): not
    /// run again. The wrapper's own settings (strict `sql_mode`, UTC `time_zone`) are.
    public var lostSessionSettings: [String]
    /// A transaction was open: the server rolled it back.
    public var rolledBackTransaction: Bool
    public var server: String
    /// The old session was still on the server (the client had stopped waiting for it, a read
    /// timeout): it was killed, and the new session used once the server had ended it.
    public var endedOnServer = false

    /// True when the new session is equivalent to the old one for its owner.
    public var lostNothing: Bool { lostNamedLocks.isEmpty && lostSessionSettings.isEmpty && !rolledBackTransaction }

    public var description: String {
        let ended = endedOnServer ? " (it was still running on the server: killed)" : ""
        let text = "reopened MySQL session \(previousConnectionID) (\(server))\(wasLost ? " after it was lost" : "")\(ended)"
        var lost: [String] = []
        if rolledBackTransaction { lost.append("its open transaction (rolled back)") }
        if !lostNamedLocks.isEmpty { lost.append("named locks \(lostNamedLocks.joined(separator: ", "))") }
        if !lostSessionSettings.isEmpty { lost.append("session settings \(lostSessionSettings.joined(separator: "; "))") }
        return text + (lost.isEmpty ? ": nothing held was lost" : "; lost " + lost.joined(separator: ", "))
    }
}
