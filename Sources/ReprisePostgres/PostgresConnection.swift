import CLibPQ
import RepriseSupport
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One connection to PostgreSQL through libpq.
///
/// An actor on its own `BlockingExecutor`: libpq's blocking calls run on a dedicated queue,
/// never on the cooperative thread pool. Values are always sent as parameters.
///
/// ```swift
/// let db = try await PostgresConnection.connect(url: "postgresql://app:pw@127.0.0.1:5432/events")
/// let rows = try await db.query("SELECT position FROM events WHERE stream_id = $1", ["order-1"])
/// await db.close()
/// ```
public actor PostgresConnection {
    private let executor: BlockingExecutor
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    private var handle: OpaquePointer?
    private let url: ConnectionURL
    private let redactor: SecretRedactor
    private var cursorCounter = 0
    /// Cancels the running statement (`PQcancel`) when its task is cancelled.
    private let cancelRequest = PostgresCancelRequest()
    private let interrupter: StatementInterrupter
    /// The URL with the password hidden, for messages.
    public nonisolated let server: String

    private init(url: ConnectionURL) {
        self.url = url
        self.redactor = SecretRedactor(secrets: [url.password])
        self.server = url.redacted
        self.executor = BlockingExecutor(label: "reprise.postgres")
        let cancelRequest = cancelRequest
        self.interrupter = StatementInterrupter(label: "reprise.postgres.cancel") { cancelRequest.send() }
    }

    isolated deinit {
        if let handle { PQfinish(handle) }
    }

    /// Connects with a `postgresql://` (or `postgres://`) URL. Query parameters of the URL are
    /// passed to libpq as connection keywords (`sslmode`, `sslrootcert`, `application_name`, ...).
    /// `connectTimeout` applies when the URL sets no `connect_timeout`.
    public static func connect(url text: String, connectTimeoutSeconds: Int = 10) async throws(PostgresError) -> PostgresConnection {
        let url: ConnectionURL
        do {
            url = try ConnectionURL(text)
        } catch {
            throw PostgresError(code: .invalidURL, message: error.reason, server: error.redactedURL)
        }
        guard url.scheme == "postgresql" || url.scheme == "postgres" else {
            throw PostgresError(code: .invalidURL, message: "scheme must be postgresql://, not \(url.scheme)://", server: url.redacted)
        }
        let connection = PostgresConnection(url: url)
        try await connection.open(connectTimeoutSeconds: connectTimeoutSeconds)
        return connection
    }

    private func open(connectTimeoutSeconds: Int) throws(PostgresError) {
        var keywords: [(String, String)] = []
        keywords.append(("host", url.host.isEmpty ? "127.0.0.1" : url.host))
        if let port = url.port { keywords.append(("port", String(port))) }
        if let user = url.user { keywords.append(("user", user)) }
        if let password = url.password { keywords.append(("password", password)) }
        if !url.path.isEmpty { keywords.append(("dbname", url.path)) }
        if url.queryValue("connect_timeout") == nil { keywords.append(("connect_timeout", String(connectTimeoutSeconds))) }
        if url.queryValue("application_name") == nil { keywords.append(("application_name", "reprise")) }
        for item in url.queryItems { keywords.append((item.name, item.value)) }

        let connection = CStringArray(keywords.map(\.0)).withPointers { names in
            CStringArray(keywords.map(\.1)).withPointers { values in
                PQconnectdbParams(names, values, 0)
            }
        }
        guard let connection else {
            throw PostgresError(code: .connectionFailed, message: "libpq could not allocate a connection", server: server)
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = redactor.redact(Self.trimmed(PQerrorMessage(connection)))
            PQfinish(connection)
            let timedOut = message.contains("timeout expired")
            throw PostgresError(code: timedOut ? .connectionTimedOut : .connectionFailed, message: message, server: server)
        }
        handle = connection
        cancelRequest.connected(to: connection)
        // libpq prints notices ("relation already exists, skipping") to stderr by default;
        // they are not errors, and a library must not write to the process's terminal.
        PQsetNoticeProcessor(connection, { _, _ in }, nil)
    }

    /// Closes the connection. Idempotent.
    public func close() {
        cancelRequest.connected(to: nil)
        if let handle { PQfinish(handle) }
        handle = nil
    }

    public var isOpen: Bool { handle.map { PQstatus($0) == CONNECTION_OK } ?? false }

    /// The backend process id (for `pg_terminate_backend`, `pg_cancel_backend`).
    public var backendPID: Int32 { handle.map { PQbackendPID($0) } ?? 0 }

    /// Whether a transaction block is open on this connection.
    public var isInTransaction: Bool {
        guard let handle else { return false }
        let status = PQtransactionStatus(handle)
        return status == PQTRANS_INTRANS || status == PQTRANS_INERROR
    }

    /// Runs one statement and returns its rows. Cancelling the task cancels the statement on
    /// the server (`PQcancel`); a cancelled task sends none (`.cancelled`).
    @discardableResult
    public func query(_ sql: String, _ parameters: [PostgresValue] = []) async throws(PostgresError) -> PostgresResult {
        try await interruptible(sql) { () throws(PostgresError) in try run(sql, parameters) }
    }

    /// Runs one statement and returns the number of rows it affected.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [PostgresValue] = []) async throws(PostgresError) -> Int {
        try await query(sql, parameters).affectedRows
    }

    /// Runs several `;`-separated statements with no parameters (schema scripts).
    public func executeScript(_ sql: String) async throws(PostgresError) {
        try await interruptible(sql) { () throws(PostgresError) in
            let handle = try liveHandle(for: sql)
            _ = try checked(PQexec(handle, sql), sql: sql)
        }
    }

    /// Runs one statement that cancellation must not cut short: cleanup (`ROLLBACK`, unlocks)
    /// that a cancelled task still has to do, and `COMMIT`.
    @discardableResult
    func run(_ sql: String, _ parameters: [PostgresValue] = []) throws(PostgresError) -> PostgresResult {
        let handle = try liveHandle(for: sql)
        let raw: OpaquePointer? = ParameterBuffer(parameters).withArrays { types, values, lengths, formats in
            PQexecParams(handle, sql, Int32(parameters.count), types, values, lengths, formats, 0)
        }
        return try checked(raw, sql: sql)
    }

    /// Runs `body` (one blocking statement) so that cancelling the task cancels it on the
    /// server; a statement that failed after its task was cancelled reports `.cancelled`, one
    /// that completed returns its result.
    @discardableResult
    func interruptible<T>(_ sql: String, _ body: () throws(PostgresError) -> T) async throws(PostgresError) -> T {
        guard !Task.isCancelled else {
            throw PostgresError(code: .cancelled, message: "the task was cancelled; the statement was not sent", query: sql, server: server)
        }
        let outcome = await interrupter.run(body)
        if case .failure(let error) = outcome, Task.isCancelled, isOpen {
            throw PostgresError(
                code: .cancelled, message: "the task was cancelled; the statement was cancelled by PQcancel (\(error.message))", query: sql,
                server: server)
        }
        return try outcome.get()
    }

    // MARK: - Internals shared by the extensions

    func liveHandle(for sql: String?) throws(PostgresError) -> OpaquePointer {
        guard let handle else {
            throw PostgresError(code: .connectionClosed, message: "the connection is closed", query: sql, server: server)
        }
        return handle
    }

    func nextCursorName() -> String {
        cursorCounter += 1
        return "reprise_cursor_\(cursorCounter)"
    }

    /// Turns a PGresult into a `PostgresResult` or a `PostgresError`, reading every error
    /// field before the result is freed.
    func checked(_ raw: OpaquePointer?, sql: String?) throws(PostgresError) -> PostgresResult {
        guard let raw else {
            throw connectionError(sql: sql)
        }
        let result = PostgresResult(taking: raw)
        switch PQresultStatus(raw) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return result
        default:
            func field(_ code: UInt8) -> String? {
                PQresultErrorField(raw, Int32(code)).map { redactor.redact(String(cString: $0)) }
            }
            let state = field(UInt8(ascii: "C")).map(SQLState.init(rawValue:))
            let primary = field(UInt8(ascii: "M")) ?? redactor.redact(Self.trimmed(PQresultErrorMessage(raw)))
            if state == nil, let handle, PQstatus(handle) != CONNECTION_OK {
                throw connectionError(sql: sql)
            }
            throw PostgresError(
                code: .server, message: primary, sqlState: state,
                detail: field(UInt8(ascii: "D")), hint: field(UInt8(ascii: "H")), query: sql, server: server)
        }
    }

    func connectionError(sql: String?) -> PostgresError {
        let message = handle.map { redactor.redact(Self.trimmed(PQerrorMessage($0))) } ?? "the connection is closed"
        return PostgresError(code: handle == nil ? .connectionClosed : .connectionLost, message: message.isEmpty ? "connection lost" : message, query: sql, server: server)
    }

    static func trimmed(_ pointer: UnsafePointer<CChar>?) -> String {
        guard let pointer else { return "" }
        var text = String(cString: pointer)
        while let last = text.last, last.isWhitespace { text.removeLast() }
        return text
    }
}

/// NUL-terminated copies of Swift strings, alive for the duration of a closure.
struct CStringArray {
    private let strings: [String]
    init(_ strings: [String]) { self.strings = strings }

    func withPointers<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>?) -> R) -> R {
        var storage: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
        defer { storage.forEach { free($0) } }
        storage.append(nil)  // libpq's keyword arrays end with NULL
        let constant = storage.map { UnsafePointer($0) }
        return constant.withUnsafeBufferPointer { buffer in body(buffer.baseAddress) }
    }
}

/// The four parallel arrays `PQexecParams` takes, built from Swift values.
struct ParameterBuffer {
    private let values: [PostgresValue]
    init(_ values: [PostgresValue]) { self.values = values }

    func withArrays<R>(
        _ body: (UnsafePointer<Oid>?, UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R
    ) -> R {
        if values.isEmpty { return body(nil, nil, nil, nil) }
        // One contiguous byte buffer holds every value; pointers are offsets into it.
        var bytes: [UInt8] = []
        var offsets: [Int?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        var types: [Oid] = []
        for value in values {
            switch value {
            case .null:
                offsets.append(nil); lengths.append(0); formats.append(0); types.append(0)
            case .bytes(let data):
                offsets.append(bytes.count); bytes.append(contentsOf: data); bytes.append(0)
                lengths.append(Int32(data.count)); formats.append(1); types.append(17)  // bytea
            default:
                let text = value.textForm ?? ""
                offsets.append(bytes.count); bytes.append(contentsOf: text.utf8); bytes.append(0)
                lengths.append(Int32(text.utf8.count)); formats.append(0); types.append(0)
            }
        }
        return bytes.withUnsafeBufferPointer { buffer in
            let base = buffer.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
            let pointers: [UnsafePointer<CChar>?] = offsets.map { offset in offset.flatMap { base?.advanced(by: $0) } }
            return pointers.withUnsafeBufferPointer { valuePointers in
                lengths.withUnsafeBufferPointer { lengthPointer in
                    formats.withUnsafeBufferPointer { formatPointer in
                        types.withUnsafeBufferPointer { typePointer in
                            body(typePointer.baseAddress, valuePointers.baseAddress, lengthPointer.baseAddress, formatPointer.baseAddress)
                        }
                    }
                }
            }
        }
    }
}

/// libpq's cancel request for one connection: `PQcancel` opens a second connection to the
/// server and asks it to cancel the statement the session runs. Thread-safe by design
/// (`PQgetCancel`'s object is independent of the connection), so the interrupter calls it from
/// its own queue while the connection's thread is blocked in the statement.
final class PostgresCancelRequest: Sendable {
    private struct Handle: @unchecked Sendable {
        // @unchecked: a PGcancel is only used under the mutex.
        var pointer: OpaquePointer?
    }

    private let cancel = Mutex(Handle())

    func connected(to connection: OpaquePointer?) {
        cancel.withLock { handle in
            if let old = handle.pointer { PQfreeCancel(old) }
            handle.pointer = connection.flatMap { PQgetCancel($0) }
        }
    }

    func send() {
        cancel.withLock { handle in
            guard let pointer = handle.pointer else { return }
            var message = [CChar](repeating: 0, count: 256)
            _ = PQcancel(pointer, &message, Int32(message.count))
        }
    }

    deinit {
        cancel.withLock { handle in
            if let pointer = handle.pointer { PQfreeCancel(pointer) }
        }
    }
}
