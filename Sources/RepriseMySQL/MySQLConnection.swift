import CMariaDB
import RepriseSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One connection to MySQL or MariaDB through the C client library.
///
/// An actor on its own `BlockingExecutor`, so blocking client calls stay off the cooperative
/// pool. Statements take `?` placeholders and `MySQLValue` parameters.
///
/// Nothing reconnects behind the caller's back: a dropped connection is an error
/// (`.connectionLost`) for the statement that saw it and for every later one, until the owner
/// calls `reopen()`, which says what the old session lost (its named locks, the session
/// settings it was given). A silent reconnect would run the next statement without the locks
/// that made it safe, or in autocommit after half a transaction.
///
/// Task cancellation reaches the server: a statement running when its task is cancelled is
/// ended with `KILL QUERY` from a second connection, and a cancelled task sends no new
/// statement (`.cancelled`). Cleanup statements (`COMMIT`, `ROLLBACK`, `RELEASE_LOCK`) still run
/// in a cancelled task, so `with…` helpers can release what they hold.
///
/// ```swift
/// let db = try await MySQLConnection.connect(url: "mysql://app:pw@127.0.0.1:3306/reads")
/// try await db.execute("INSERT INTO t (id, name) VALUES (?, ?)", [1, "a"])
/// ```
public actor MySQLConnection {
    private let executor: BlockingExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private var handle: UnsafeMutablePointer<MYSQL>?
    private let url: ConnectionURL
    private let options: MySQLConnectOptions
    /// The longest single `GET_LOCK` wait: half the read timeout (the client library gives up
    /// on a silent server after about three read timeouts), at least one second.
    var lockWaitSliceSeconds: Int { max(1, (options.readTimeout ?? options.connectTimeout) / 2) }
    private let redactor: SecretRedactor
    private var transactionOpen = false
    /// Set when the session dropped: every statement fails until `reopen()`.
    private var lost = false
    /// The local TCP port of this session's socket (nil for a Unix socket), for `reopen()`.
    private var clientPort: UInt16?
    /// Named locks this session holds (taken with `getLock`): a lost session loses them.
    private var heldLocks: Set<String> = []
    /// `SET` statements the caller ran on this session (the wrapper's own settings are reapplied).
    private var sessionSettings: [String] = []
    /// Sends `KILL QUERY` for a statement whose task was cancelled.
    private let killQuery: MySQLKillQuery
    private let interrupter: StatementInterrupter
    /// Names the in-memory "files" of bulk loads, so the local-infile callbacks serve only the current one.
    var nextLoadNumber = 0
    /// How many times this connection was reopened with `reopen()` (for tests and metrics).
    public private(set) var reopenCount = 0
    /// The URL with the password hidden, for messages.
    public nonisolated let server: String

    private static let libraryInitialized: Bool = reprise_mysql_library_init() == 0

    private init(url: ConnectionURL, options: MySQLConnectOptions) {
        self.url = url
        self.options = options
        self.redactor = SecretRedactor(secrets: [url.password])
        self.server = url.redacted
        self.executor = BlockingExecutor(label: "reprise.mysql")
        let killQuery = MySQLKillQuery(url: url, options: options)
        self.killQuery = killQuery
        self.interrupter = StatementInterrupter(label: "reprise.mysql.kill-query") { killQuery.send() }
    }

    isolated deinit {
        if let handle { mysql_close(handle) }
    }

    /// Connects with a `mysql://user:password@host:port/database` URL.
    ///
    /// URL query options: `ssl-mode` (`disabled`, `required`, `verify-ca`, `verify-identity`),
    /// `ssl-ca`, `ssl-cert`, `ssl-key`, `connect-timeout`, `read-timeout`, `write-timeout` (seconds).
    /// `readTimeoutSeconds`: for connections whose statements may run long (an index build on a
    /// big table); the URL's `read-timeout` still wins. Without either, a read waits at most the
    /// connect timeout, so a silent server is noticed quickly.
    public static func connect(url text: String, connectTimeoutSeconds: Int = 10, readTimeoutSeconds: Int? = nil) async throws(MySQLError) -> MySQLConnection {
        let url: ConnectionURL
        do {
            url = try ConnectionURL(text)
        } catch {
            throw MySQLError(code: .invalidURL, message: error.reason, server: error.redactedURL)
        }
        guard url.scheme == "mysql" || url.scheme == "mariadb" else {
            throw MySQLError(code: .invalidURL, message: "scheme must be mysql://, not \(url.scheme)://", server: url.redacted)
        }
        var options = try MySQLConnectOptions(url: url, defaultConnectTimeout: connectTimeoutSeconds)
        if options.readTimeout == nil { options.readTimeout = readTimeoutSeconds }
        let connection = MySQLConnection(url: url, options: options)
        try await connection.open()
        return connection
    }

    private func open() throws(MySQLError) {
        let mysql = try Self.openHandle(url: url, options: options, redactor: redactor, server: server)
        handle = mysql
        lost = false
        transactionOpen = false
        heldLocks = []
        sessionSettings = []
        killQuery.connected(to: UInt64(mysql_thread_id(mysql)))
        // Read now: the client library lets go of a socket whose read timed out.
        clientPort = Self.clientPort(mysql)
        try runRaw("SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION')", sql: "SET SESSION sql_mode")
        try runRaw("SET SESSION time_zone = '+00:00'", sql: "SET SESSION time_zone")
    }

    /// Opens a client handle with the connection's options (also used by the interrupter's
    /// second connection).
    static func openHandle(url: ConnectionURL, options: MySQLConnectOptions, redactor: SecretRedactor, server: String) throws(MySQLError) -> UnsafeMutablePointer<MYSQL> {
        guard Self.libraryInitialized else {
            throw MySQLError(code: .connectionFailed, message: "the MySQL client library failed to initialize", server: server)
        }
        guard let mysql = mysql_init(nil) else {
            throw MySQLError(code: .connectionFailed, message: "mysql_init failed (out of memory)", server: server)
        }
        _ = reprise_mysql_set_uint_option(mysql, MYSQL_OPT_CONNECT_TIMEOUT, UInt32(options.connectTimeout))
        // The handshake is a read: bound it too, so a silent server cannot hang a connect.
        _ = reprise_mysql_set_uint_option(mysql, MYSQL_OPT_READ_TIMEOUT, UInt32(options.readTimeout ?? options.connectTimeout))
        if let write = options.writeTimeout { _ = reprise_mysql_set_uint_option(mysql, MYSQL_OPT_WRITE_TIMEOUT, UInt32(write)) }
        _ = reprise_mysql_set_string_option(mysql, MYSQL_SET_CHARSET_NAME, "utf8mb4")
        _ = reprise_mysql_set_bool_option(mysql, MYSQL_OPT_RECONNECT, false)  // a lost session is the caller's to reopen
        // LOCAL INFILE must be announced at the handshake for `loadRows`. The option takes an
        // unsigned int; the callbacks installed here refuse every request until a load supplies
        // its buffer, so the server can never read a file of this machine.
        _ = reprise_mysql_set_uint_option(mysql, MYSQL_OPT_LOCAL_INFILE, 1)
        LocalInfileCallbacks.install(on: mysql, source: nil)
        if options.sslMode != .disabled {
            if let ca = options.sslCA { _ = reprise_mysql_set_string_option(mysql, MYSQL_OPT_SSL_CA, ca) }
            if let cert = options.sslCert { _ = reprise_mysql_set_string_option(mysql, MYSQL_OPT_SSL_CERT, cert) }
            if let key = options.sslKey { _ = reprise_mysql_set_string_option(mysql, MYSQL_OPT_SSL_KEY, key) }
            _ = reprise_mysql_set_bool_option(mysql, MYSQL_OPT_SSL_ENFORCE, true)
            _ = reprise_mysql_set_bool_option(
                mysql, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, options.sslMode == .verifyCA || options.sslMode == .verifyIdentity)
        }
        let host = url.host.isEmpty ? "127.0.0.1" : url.host
        let connected = mysql_real_connect(
            mysql, host, url.user, url.password, url.path.isEmpty ? nil : url.path,
            UInt32(url.port ?? 3306), nil, 0)
        guard connected != nil else {
            let number = mysql_errno(mysql)
            let message = redactor.redact(String(cString: mysql_error(mysql)))
            mysql_close(mysql)
            // 2013 "lost connection ... reading initial communication packet" is how a silent server shows.
            let timedOut = number == 2013 || message.contains("timeout")
            throw MySQLError(code: timedOut ? .connectionTimedOut : .connectionFailed, message: message, errorNumber: number, server: server)
        }
        return mysql
    }

    /// Closes the connection. Idempotent.
    public func close() {
        if let handle { mysql_close(handle) }
        handle = nil
        lost = false
        killQuery.connected(to: nil)
    }

    /// Opens a new session in place of a lost (or closed) one and says what the old one lost:
    /// the named locks it held and the `SET` statements the caller had run (the wrapper's own
    /// settings, strict `sql_mode` and UTC `time_zone`, are applied again). The caller takes
    /// back what it needs; nothing else is restored.
    @discardableResult
    public func reopen() throws(MySQLError) -> MySQLReopened {
        var reopened = MySQLReopened(
            previousConnectionID: connectionID, wasLost: lost, lostNamedLocks: heldLocks.sorted(), lostSessionSettings: sessionSettings,
            rolledBackTransaction: transactionOpen, server: server)
        let previousClientPort = clientPort
        if let handle { mysql_close(handle) }
        handle = nil
        try open()
        reopenCount += 1
        if reopened.wasLost, let previousClientPort {
            reopened.endedOnServer = endSessionLeftOnServer(reopened.previousConnectionID, client: "%:\(previousClientPort)")
        }
        return reopened
    }

    /// A session the client gave up on (its read timed out) may still be running its statement
    /// on the server, holding its transaction's row locks and its named locks until that
    /// statement ends, and a chunk redone on the new session waits behind its own lost attempt
    /// (seen on a loaded CI machine: a partitioned rebuild redid one chunk ten times, each
    /// attempt given up on after the read timeout). So the old session is killed, and the new one is
    /// used once the server has ended it (at most the connect timeout). Returns whether it was
    /// still there.
    ///
    /// The session is matched by its id and its client port (`killSession`; seen with the id
    /// alone: a rebuild's reopened lock session killed its own new writer session).
    private func endSessionLeftOnServer(_ id: UInt64, client: String) -> Bool {
        guard killSession(id, from: client) else { return false }
        let deadline = ContinuousClock.now + .seconds(options.connectTimeout)
        let stillThere = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = \(id)"
        // The killed thread rolls its transaction back before it ends, and only then lets go of its locks.
        while ContinuousClock.now < deadline, (try? runRaw(stillThere, sql: "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?"))?.int(0, 0) != 0 {
            usleep(20_000)
        }
        return true
    }

    /// Kills session `id` if the server still lists it from `client`, its client's host:port as
    /// `information_schema.PROCESSLIST.HOST` shows it (a `LIKE` pattern: `%:port` matches any
    /// host). A restarted server numbers its sessions from 1 again, so by then an id alone may
    /// name another session. Returns whether a session was killed.
    @discardableResult
    public func killSession(_ id: UInt64, from client: String) -> Bool {
        guard
            (try? runRaw(
                try render("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND HOST LIKE ?", [.int(Int64(id)), .string(client)]),
                sql: "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND HOST LIKE ?"))?.int(0, 0) == 1
        else { return false }
        return (try? runRaw("KILL CONNECTION \(id)", sql: "KILL CONNECTION ?")) != nil
    }

    /// The local TCP port of a handle's socket (nil for a Unix socket): with the session id, it
    /// names the session in the server's process list.
    private static func clientPort(_ handle: UnsafeMutablePointer<MYSQL>) -> UInt16? {
        let socket = mysql_get_socket(handle)
        guard socket >= 0 else { return nil }
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &address) { storage in
            storage.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) == 0 }
        }
        guard named else { return nil }
        switch Int32(address.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) } }
        case AF_INET6:
            return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) } }
        default:
            return nil
        }
    }

    /// Whether the session dropped and waits for `reopen()`.
    public var isLost: Bool { lost }

    /// The server's id for this connection (for `KILL`).
    public var connectionID: UInt64 {
        handle.map { UInt64(mysql_thread_id($0)) } ?? 0
    }

    public var isInTransaction: Bool { transactionOpen }

    /// Runs a statement and returns its rows (empty for statements without a result set).
    /// Cancelling the task ends the statement on the server (`KILL QUERY`).
    @discardableResult
    public func query(_ sql: String, _ parameters: [MySQLValue] = []) async throws(MySQLError) -> MySQLResult {
        let text = try render(sql, parameters)
        let result = try await interruptible(sql) { () throws(MySQLError) in try runRaw(text, sql: sql) }
        if Self.isSessionSetting(sql) { sessionSettings.append(sql) }
        return result
    }

    /// Runs a statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [MySQLValue] = []) async throws(MySQLError) -> Int {
        try await query(sql, parameters).affectedRows
    }

    /// Runs `body` (one blocking statement) so that cancelling the task interrupts it: a
    /// cancelled task sends nothing, and a statement running when the task is cancelled is
    /// ended with `KILL QUERY` from a second connection. A statement that failed after its task
    /// was cancelled reports `.cancelled`; one that completed returns its result.
    @discardableResult
    func interruptible<T>(_ sql: String?, _ body: () throws(MySQLError) -> T) async throws(MySQLError) -> T {
        guard !Task.isCancelled else {
            throw MySQLError(code: .cancelled, message: "the task was cancelled; the statement was not sent", query: sql, server: server)
        }
        let outcome = await interrupter.run(body)
        if case .failure(let error) = outcome, Task.isCancelled, !lost {
            throw MySQLError(
                code: .cancelled, message: "the task was cancelled; the statement was interrupted by KILL QUERY (\(error.message))", query: sql,
                server: server)
        }
        return try outcome.get()
    }

    /// A value as an SQL literal, escaped by the client library, for the few places that cannot
    /// take parameters (column defaults in `CREATE TABLE`).
    public func sqlLiteral(_ value: MySQLValue) throws(MySQLError) -> String {
        var output: [UInt8] = []
        try appendLiteral(value, to: &output, sql: nil)
        return String(decoding: output, as: UTF8.self)
    }

    // MARK: - Transactions (primitives; see withTransaction)

    public func begin(isolationLevel: MySQLIsolationLevel? = nil) async throws(MySQLError) {
        if let isolationLevel {
            let text = "SET TRANSACTION ISOLATION LEVEL \(isolationLevel.rawValue)"
            try await interruptible(text) { () throws(MySQLError) in try runRaw(text, sql: nil) }
        }
        try await interruptible("START TRANSACTION") { () throws(MySQLError) in try runRaw("START TRANSACTION", sql: nil) }
        transactionOpen = true
    }

    /// Not interruptible: a COMMIT cut short would leave the caller unsure whether it happened.
    public func commit() throws(MySQLError) {
        guard transactionOpen else {
            throw MySQLError(code: .notInTransaction, message: "COMMIT without an open transaction", server: server)
        }
        defer { transactionOpen = false }
        try runRaw("COMMIT", sql: nil)
    }

    /// Runs in a cancelled task too (cleanup). A lost session already rolled back.
    public func rollback() throws(MySQLError) {
        defer { transactionOpen = false }
        guard handle != nil, !lost else { return }
        try runRaw("ROLLBACK", sql: nil)
    }

    // MARK: - Internals

    /// Runs one statement with `source` as the only "file" the server may read (see `loadRows`)
    /// and returns the statement's counts from `mysql_info`.
    func withLocalInfileSource(
        _ source: LocalInfileSource, _ statement: () throws(MySQLError) -> MySQLResult
    ) throws(MySQLError) -> (records: Int, deleted: Int, skipped: Int, warnings: Int) {
        let handle = try liveHandle()
        LocalInfileCallbacks.install(on: handle, source: source)
        defer {
            withExtendedLifetime(source) {}
            if let current = self.handle { LocalInfileCallbacks.install(on: current, source: nil) }
        }
        let result = try statement()
        let info = mysql_info(handle).map { String(cString: $0) }
        return Self.parseLoadInfo(info) ?? (result.affectedRows, 0, 0, Int(mysql_warning_count(handle)))
    }

    /// Renders placeholders as escaped literals.
    func render(_ sql: String, _ parameters: [MySQLValue]) throws(MySQLError) -> String {
        let offsets = PlaceholderScanner.placeholderOffsets(in: sql)
        guard offsets.count == parameters.count else {
            throw MySQLError(
                code: .parameterMismatch,
                message: "the statement has \(offsets.count) placeholders but \(parameters.count) parameters were given", query: sql,
                server: server)
        }
        if parameters.isEmpty { return sql }
        var output: [UInt8] = []
        output.reserveCapacity(sql.utf8.count + parameters.count * 16)
        var start = 0
        let bytes = Array(sql.utf8)
        for (offset, value) in zip(offsets, parameters) {
            output.append(contentsOf: bytes[start..<offset])
            try appendLiteral(value, to: &output, sql: sql)
            start = offset + 1
        }
        output.append(contentsOf: bytes[start...])
        return String(decoding: output, as: UTF8.self)
    }

    /// Appends `value` as a SQL literal (as a batch's rows are written: `MySQLRowWriter`).
    func appendLiteral(_ value: MySQLValue, to output: inout [UInt8], sql: String?) throws(MySQLError) {
        // The handle escapes strings; other values need no live connection to be written.
        let handle: UnsafeMutablePointer<MYSQL>?
        if case .string = value { handle = try liveHandle() } else { handle = nil }
        var writer = MySQLRowWriter(format: .literal(handle), context: nil, query: sql, server: server)
        swap(&output, &writer.bytes)
        defer { swap(&output, &writer.bytes) }
        try writer.append(value)
    }

    static func isDecimalLiteral(_ text: String) -> Bool {
        var sawDigit = false, sawPoint = false
        for (index, byte) in text.utf8.enumerated() {
            switch byte {
            case UInt8(ascii: "-") where index == 0: continue
            case UInt8(ascii: "0")...UInt8(ascii: "9"): sawDigit = true
            case UInt8(ascii: ".") where !sawPoint: sawPoint = true
            default: return false
            }
        }
        return sawDigit
    }

    func liveHandle() throws(MySQLError) -> UnsafeMutablePointer<MYSQL> {
        if lost {
            throw MySQLError(
                code: .connectionLost,
                message: "the connection was lost\(transactionOpen ? " inside a transaction" : ""); call reopen() (its named locks and session settings are gone)",
                server: server)
        }
        guard let handle else {
            throw MySQLError(code: .connectionClosed, message: "the connection is closed", server: server)
        }
        return handle
    }

    /// Sends already-rendered SQL. `sql` is the placeholder form used in error messages.
    /// Never retried: a statement that failed with the session is the caller's to redo.
    @discardableResult
    func runRaw(_ text: String, sql: String?) throws(MySQLError) -> MySQLResult {
        let handle = try liveHandle()
        let status = text.withCString { pointer in
            mysql_real_query(handle, pointer, UInt(text.utf8.count))
        }
        return try finishQuery(handle, status: status, shown: sql ?? text)
    }

    /// `runRaw` of statement text rendered as bytes (a batch), sent without a copy as a string.
    func runRaw(bytes: [UInt8], sql: String) throws(MySQLError) -> MySQLResult {
        let handle = try liveHandle()
        let status = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { text in mysql_real_query(handle, text.baseAddress, UInt(text.count)) }
        }
        return try finishQuery(handle, status: status, shown: sql)
    }

    private func finishQuery(_ handle: UnsafeMutablePointer<MYSQL>, status: Int32, shown: String) throws(MySQLError) -> MySQLResult {
        if status != 0 {
            let number = mysql_errno(handle)
            let state = String(cString: mysql_sqlstate(handle))
            let message = redactor.redact(String(cString: mysql_error(handle)))
            if Self.isConnectionLoss(number) {
                lost = true
                // The transaction stays "open" (and lost) until its owner calls rollback or commit.
                var lostWith: [String] = []
                if transactionOpen { lostWith.append("the open transaction was rolled back by the server") }
                if !heldLocks.isEmpty { lostWith.append("named locks \(heldLocks.sorted().joined(separator: ", ")) were released") }
                throw MySQLError(
                    code: .connectionLost,
                    message: lostWith.isEmpty ? message : "\(message) (\(lostWith.joined(separator: "; ")))",
                    errorNumber: number, sqlState: state, query: shown, server: server)
            }
            throw MySQLError(code: .server, message: message, errorNumber: number, sqlState: state, query: shown, server: server)
        }
        return try collectResult(handle, sql: shown)
    }

    private func collectResult(_ handle: UnsafeMutablePointer<MYSQL>, sql: String) throws(MySQLError) -> MySQLResult {
        let affected = mysql_affected_rows(handle)
        let insertID = mysql_insert_id(handle)
        guard let result = mysql_store_result(handle) else {
            if mysql_field_count(handle) != 0 {
                let number = mysql_errno(handle)
                let message = redactor.redact(String(cString: mysql_error(handle)))
                if Self.isConnectionLoss(number) { lost = true }
                throw MySQLError(
                    code: Self.isConnectionLoss(number) ? .connectionLost : .server, message: message, errorNumber: number, query: sql,
                    server: server)
            }
            // (my_ulonglong)-1 means "not applicable".
            return MySQLResult(columnNames: [], rows: [], affectedRows: affected == UInt64.max ? 0 : Int(affected), lastInsertID: insertID)
        }
        defer { mysql_free_result(result) }
        let columnCount = Int(mysql_num_fields(result))
        var names: [String] = []
        if let fields = mysql_fetch_fields(result) {
            for index in 0..<columnCount {
                names.append(fields[index].name.map { String(cString: $0) } ?? "")
            }
        }
        var rows: [[String?]] = []
        rows.reserveCapacity(Int(mysql_num_rows(result)))
        while let row = mysql_fetch_row(result) {
            guard let lengths = mysql_fetch_lengths(result) else { break }
            var values: [String?] = []
            values.reserveCapacity(columnCount)
            for index in 0..<columnCount {
                if let cell = row[index] {
                    let buffer = UnsafeRawBufferPointer(start: cell, count: Int(lengths[index]))
                    values.append(String(decoding: buffer, as: UTF8.self))
                } else {
                    values.append(nil)
                }
            }
            rows.append(values)
        }
        return MySQLResult(columnNames: names, rows: rows, affectedRows: rows.count, lastInsertID: insertID)
    }

    static func isConnectionLoss(_ number: UInt32) -> Bool {
        // CR_SERVER_GONE_ERROR, CR_SERVER_LOST, CR_SERVER_LOST_EXTENDED, ER_CONNECTION_KILLED, ER_CLIENT_INTERACTION_TIMEOUT
        [2006, 2013, 2055, 1927, 4031].contains(number)
    }

    /// A `SET` of session state (not `SET TRANSACTION`, which lasts one transaction).
    static func isSessionSetting(_ sql: String) -> Bool {
        let head = sql.drop(while: \.isWhitespace).prefix(16).uppercased()
        return head.hasPrefix("SET ") && !head.hasPrefix("SET TRANSACTION")
    }

    // Named locks are tracked so that a lost session can say which ones it lost.
    func noteLock(_ name: String, held: Bool) {
        if held { heldLocks.insert(name) } else { heldLocks.remove(name) }
    }
}

/// Isolation levels for MySQL transactions.
public enum MySQLIsolationLevel: String, Sendable {
    case readCommitted = "READ COMMITTED"
    case repeatableRead = "REPEATABLE READ"
    case serializable = "SERIALIZABLE"
}

/// Options read from the query part of a `mysql://` URL.
struct MySQLConnectOptions: Sendable {
    enum SSLMode: String, Sendable { case disabled, preferred, required, verifyCA = "verify-ca", verifyIdentity = "verify-identity" }
    var sslMode: SSLMode = .disabled
    var sslCA: String?
    var sslCert: String?
    var sslKey: String?
    var connectTimeout: Int
    var readTimeout: Int?
    var writeTimeout: Int?

    init(url: ConnectionURL, defaultConnectTimeout: Int) throws(MySQLError) {
        connectTimeout = defaultConnectTimeout
        for (name, value) in url.queryItems {
            switch name.replacingDashes() {
            case "ssl_mode", "sslmode":
                guard let mode = SSLMode(rawValue: value.lowercased().replacingUnderscores()) else {
                    throw MySQLError(code: .invalidURL, message: "unknown ssl-mode '\(value)' (disabled, required, verify-ca, verify-identity)", server: url.redacted)
                }
                sslMode = mode
            case "ssl_ca": sslCA = value; if sslMode == .disabled { sslMode = .verifyCA }
            case "ssl_cert": sslCert = value
            case "ssl_key": sslKey = value
            case "connect_timeout": connectTimeout = try Self.seconds(value, name, url)
            case "read_timeout": readTimeout = try Self.seconds(value, name, url)
            case "write_timeout": writeTimeout = try Self.seconds(value, name, url)
            default:
                throw MySQLError(code: .invalidURL, message: "unknown URL option '\(name)'", server: url.redacted)
            }
        }
        if sslMode == .preferred { sslMode = .required }
    }

    private static func seconds(_ value: String, _ name: String, _ url: ConnectionURL) throws(MySQLError) -> Int {
        guard let number = Int(value), number > 0 else {
            throw MySQLError(code: .invalidURL, message: "\(name) must be a positive number of seconds", server: url.redacted)
        }
        return number
    }
}

extension String {
    fileprivate func replacingDashes() -> String { String(map { $0 == "-" ? "_" : $0 }) }
    fileprivate func replacingUnderscores() -> String { String(map { $0 == "_" ? "-" : $0 }) }
}
