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
/// A dropped connection is reopened before the next statement, and a statement that failed
/// because the server was gone is retried once when that is safe: outside a transaction, and
/// only when it cannot have run (error 2006) or is read-only. Inside a transaction a lost
/// connection is an error (`.connectionLost`): the server rolled the transaction back and the
/// caller must redo its unit of work.
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
    private let redactor: SecretRedactor
    private var transactionOpen = false
    private var needsReconnect = false
    /// Names the in-memory "files" of bulk loads, so the local-infile callbacks serve only the current one.
    var nextLoadNumber = 0
    /// How many times this connection was reopened after a drop (for tests and metrics).
    public private(set) var reconnectCount = 0
    /// The URL with the password hidden, for messages.
    public nonisolated let server: String

    private static let libraryInitialized: Bool = reprise_mysql_library_init() == 0

    private init(url: ConnectionURL, options: MySQLConnectOptions) {
        self.url = url
        self.options = options
        self.redactor = SecretRedactor(secrets: [url.password])
        self.server = url.redacted
        self.executor = BlockingExecutor(label: "reprise.mysql")
    }

    isolated deinit {
        if let handle { mysql_close(handle) }
    }

    /// Connects with a `mysql://user:password@host:port/database` URL.
    ///
    /// URL query options: `ssl-mode` (`disabled`, `required`, `verify-ca`, `verify-identity`),
    /// `ssl-ca`, `ssl-cert`, `ssl-key`, `connect-timeout`, `read-timeout`, `write-timeout` (seconds).
    public static func connect(url text: String, connectTimeoutSeconds: Int = 10) async throws(MySQLError) -> MySQLConnection {
        let url: ConnectionURL
        do {
            url = try ConnectionURL(text)
        } catch {
            throw MySQLError(code: .invalidURL, message: error.reason, server: error.redactedURL)
        }
        guard url.scheme == "mysql" || url.scheme == "mariadb" else {
            throw MySQLError(code: .invalidURL, message: "scheme must be mysql://, not \(url.scheme)://", server: url.redacted)
        }
        let options = try MySQLConnectOptions(url: url, defaultConnectTimeout: connectTimeoutSeconds)
        let connection = MySQLConnection(url: url, options: options)
        try await connection.open()
        return connection
    }

    private func open() throws(MySQLError) {
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
        _ = reprise_mysql_set_bool_option(mysql, MYSQL_OPT_RECONNECT, false)  // we reconnect ourselves, safely
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
        // After the handshake, statements may run as long as they need unless a read timeout was asked for.
        handle = mysql
        needsReconnect = false
        try runRaw("SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION')", sql: "SET SESSION sql_mode", allowRetry: false)
        _ = try runRaw("SET SESSION time_zone = '+00:00'", sql: "SET SESSION time_zone", allowRetry: false)
    }

    /// Closes the connection. Idempotent.
    public func close() {
        if let handle { mysql_close(handle) }
        handle = nil
    }

    /// The server's id for this connection (for `KILL`).
    public var connectionID: UInt64 {
        handle.map { UInt64(mysql_thread_id($0)) } ?? 0
    }

    public var isInTransaction: Bool { transactionOpen }

    /// Runs a statement and returns its rows (empty for statements without a result set).
    @discardableResult
    public func query(_ sql: String, _ parameters: [MySQLValue] = []) throws(MySQLError) -> MySQLResult {
        let text = try render(sql, parameters)
        return try runRaw(text, sql: sql, allowRetry: true)
    }

    /// Runs a statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [MySQLValue] = []) throws(MySQLError) -> Int {
        try query(sql, parameters).affectedRows
    }

    /// A value as an SQL literal, escaped by the client library, for the few places that cannot
    /// take parameters (column defaults in `CREATE TABLE`).
    public func sqlLiteral(_ value: MySQLValue) throws(MySQLError) -> String {
        var output: [UInt8] = []
        try appendLiteral(value, to: &output, sql: nil)
        return String(decoding: output, as: UTF8.self)
    }

    // MARK: - Transactions (primitives; see withTransaction)

    public func begin(isolationLevel: MySQLIsolationLevel? = nil) throws(MySQLError) {
        if let isolationLevel {
            try runRaw("SET TRANSACTION ISOLATION LEVEL \(isolationLevel.rawValue)", sql: nil, allowRetry: true)
        }
        try runRaw("START TRANSACTION", sql: nil, allowRetry: true)
        transactionOpen = true
    }

    public func commit() throws(MySQLError) {
        guard transactionOpen else {
            throw MySQLError(code: .notInTransaction, message: "COMMIT without an open transaction", server: server)
        }
        defer { transactionOpen = false }
        try runRaw("COMMIT", sql: nil, allowRetry: false)
    }

    public func rollback() throws(MySQLError) {
        defer { transactionOpen = false }
        guard handle != nil, !needsReconnect else { return }  // a lost connection already rolled back
        try runRaw("ROLLBACK", sql: nil, allowRetry: false)
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

    /// Appends `value` as a SQL literal. Used for single statements and multi-row batches.
    func appendLiteral(_ value: MySQLValue, to output: inout [UInt8], sql: String?) throws(MySQLError) {
        switch value {
        case .null:
            output.append(contentsOf: "NULL".utf8)
        case .int, .bool, .double, .decimal:
            try Self.appendNumber(value, to: &output, query: sql, server: server)
        case .bytes(let data):
            output.append(contentsOf: "X'".utf8)
            let digits = Array("0123456789ABCDEF".utf8)
            for byte in data {
                output.append(digits[Int(byte >> 4)])
                output.append(digits[Int(byte & 0x0F)])
            }
            output.append(UInt8(ascii: "'"))
        case .string(let text):
            try appendEscapedString(text, to: &output)
        }
    }

    /// A number as SQL (and LOAD DATA) writes it; refuses what MySQL cannot store. Other values are not numbers: nothing is appended.
    static func appendNumber(_ value: MySQLValue, to output: inout [UInt8], query: String?, server: String) throws(MySQLError) {
        switch value {
        case .int(let number):
            output.append(contentsOf: String(number).utf8)
        case .bool(let flag):
            output.append(flag ? UInt8(ascii: "1") : UInt8(ascii: "0"))
        case .double(let number):
            guard number.isFinite else {
                throw MySQLError(code: .invalidValue, message: "MySQL cannot store \(number)", query: query, server: server)
            }
            output.append(contentsOf: "\(number)".utf8)
        case .decimal(let text):
            guard isDecimalLiteral(text) else {
                throw MySQLError(code: .invalidValue, message: "'\(text.prefix(40))' is not a decimal number", query: query, server: server)
            }
            output.append(contentsOf: text.utf8)
        case .null, .string, .bytes:
            break
        }
    }

    private func appendEscapedString(_ text: String, to output: inout [UInt8]) throws(MySQLError) {
        let handle = try liveHandle()
        let length = text.utf8.count
        // utf8CString keeps interior NUL bytes; the explicit length makes the library escape them.
        let escaped: [UInt8]? = text.utf8CString.withUnsafeBufferPointer { source in
            var target = [CChar](repeating: 0, count: length * 2 + 1)
            let written = target.withUnsafeMutableBufferPointer { buffer in
                mysql_real_escape_string(handle, buffer.baseAddress, source.baseAddress, UInt(length))
            }
            guard written != UInt.max else { return nil }  // (ulong)-1: the library refused
            return target.prefix(Int(written)).map { UInt8(bitPattern: $0) }
        }
        if let escaped {
            output.append(UInt8(ascii: "'"))
            output.append(contentsOf: escaped)
            output.append(UInt8(ascii: "'"))
        } else {
            // A hex literal with a charset introducer needs no escaping at all.
            output.append(contentsOf: "_utf8mb4 ".utf8)
            try appendLiteral(.bytes(Array(text.utf8)), to: &output, sql: nil)
        }
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

    private func liveHandle() throws(MySQLError) -> UnsafeMutablePointer<MYSQL> {
        if needsReconnect || handle == nil {
            guard !transactionOpen else {
                throw MySQLError(code: .connectionLost, message: "the connection was lost inside a transaction", server: server)
            }
            try reconnect()
        }
        guard let handle else {
            throw MySQLError(code: .connectionLost, message: "the connection is closed", server: server)
        }
        return handle
    }

    private func reconnect() throws(MySQLError) {
        if let handle { mysql_close(handle) }
        handle = nil
        try open()
        reconnectCount += 1
    }

    /// Sends already-rendered SQL. `sql` is the placeholder form used in error messages.
    @discardableResult
    func runRaw(_ text: String, sql: String?, allowRetry: Bool) throws(MySQLError) -> MySQLResult {
        let shown = sql ?? text
        let handle = try liveHandle()
        let status = text.withCString { pointer in
            mysql_real_query(handle, pointer, UInt(text.utf8.count))
        }
        if status != 0 {
            let number = mysql_errno(handle)
            let state = String(cString: mysql_sqlstate(handle))
            let message = redactor.redact(String(cString: mysql_error(handle)))
            if Self.isConnectionLoss(number) {
                needsReconnect = true
                let inTransaction = transactionOpen
                // 2006: the statement never reached the server. Read-only statements are always safe to repeat.
                if allowRetry && !inTransaction && (number == 2006 || Self.isReadOnly(text)) {
                    return try runRaw(text, sql: sql, allowRetry: false)
                }
                // The transaction stays "open" (and lost) until its owner calls rollback or commit:
                // another task sharing this connection must not reconnect and write in autocommit.
                throw MySQLError(
                    code: .connectionLost,
                    message: inTransaction ? "\(message) (the open transaction was rolled back by the server)" : message,
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
                if Self.isConnectionLoss(number) { needsReconnect = true }
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

    static func isReadOnly(_ sql: String) -> Bool {
        let head = sql.drop(while: { $0.isWhitespace || $0 == "(" }).prefix(6).uppercased()
        return head.hasPrefix("SELECT") || head.hasPrefix("SHOW")
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
