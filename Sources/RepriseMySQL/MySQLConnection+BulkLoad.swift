import CMariaDB

/// What `loadRows` does with a row whose key is already in the table.
public enum MySQLBulkLoadDuplicates: Sendable {
    /// The load fails (a skipped row is an error: the caller expected only new rows).
    case fail
    /// The new row replaces the old one (`LOAD DATA … REPLACE`: a delete and an insert).
    case replace
}

/// The outcome of one `loadRows`: the server's own counts from `mysql_info`.
public struct MySQLBulkLoadResult: Sendable, Equatable {
    /// Rows the server read from the buffer.
    public var records: Int
    /// Rows that replaced an existing row (`.replace` only).
    public var replaced: Int

    public init(records: Int, replaced: Int) {
        self.records = records
        self.replaced = replaced
    }
}

extension MySQLConnection {
    /// Loads `rows` into `table` with one `LOAD DATA LOCAL INFILE` whose "file" is an in-memory
    /// buffer served through the client library's local-infile callbacks: no file on disk, no SQL
    /// text per value, no statement size limit.
    ///
    /// Values are written in the server's default text format (tab between fields, newline after
    /// rows, `\N` for NULL, backslash escapes for tab, newline, carriage return, NUL and backslash)
    /// and read as `CHARACTER SET binary`, so bytes arrive unchanged. With `LOCAL` the server turns
    /// duplicate keys and bad values into warnings; this call turns any skipped row or warning back
    /// into an error naming the table (inside a transaction the caller rolls the load back).
    @discardableResult
    public func loadRows(
        into table: String, columns: [String], rows: some Sequence<[MySQLValue]> & Sendable,
        duplicates: MySQLBulkLoadDuplicates = .fail
    ) throws(MySQLError) -> MySQLBulkLoadResult {
        let quotedTable = MySQLIdentifier.quote(table)
        guard !columns.isEmpty else {
            throw MySQLError(code: .parameterMismatch, message: "bulk load into \(quotedTable) names no columns", server: server)
        }
        var buffer: [UInt8] = []
        var rowCount = 0
        for row in rows {
            guard row.count == columns.count else {
                throw MySQLError(
                    code: .parameterMismatch,
                    message: "bulk load into \(quotedTable): row \(rowCount) has \(row.count) values for \(columns.count) columns",
                    server: server)
            }
            for (index, value) in row.enumerated() {
                if index > 0 { buffer.append(UInt8(ascii: "\t")) }
                try Self.appendLoadField(value, to: &buffer, table: quotedTable, server: server)
            }
            buffer.append(UInt8(ascii: "\n"))
            rowCount += 1
        }
        guard rowCount > 0 else { return MySQLBulkLoadResult(records: 0, replaced: 0) }

        nextLoadNumber &+= 1
        let source = LocalInfileSource(name: "reprise-memory-\(nextLoadNumber)", bytes: buffer)
        // Hex literals for the separators: the statement means the same under NO_BACKSLASH_ESCAPES.
        let statement = "LOAD DATA LOCAL INFILE '\(source.name)' \(duplicates == .replace ? "REPLACE " : "")INTO TABLE \(quotedTable)"
            + " CHARACTER SET binary FIELDS TERMINATED BY X'09' ENCLOSED BY '' ESCAPED BY X'5C' LINES TERMINATED BY X'0A'"
            + " (" + columns.map(MySQLIdentifier.quote).joined(separator: ", ") + ")"
        let described = "LOAD DATA LOCAL INFILE (memory, \(rowCount) rows) INTO TABLE \(quotedTable)"

        let info: (records: Int, deleted: Int, skipped: Int, warnings: Int)
        do {
            info = try withLocalInfileSource(source) { () throws(MySQLError) in
                try runRaw(statement, sql: described)
            }
        } catch var error {
            if let refusal = source.refusal { error.message += " (\(refusal))" }
            error.message = "bulk load into \(quotedTable) failed: \(error.message)"
            throw error
        }
        if info.skipped > 0 || info.warnings > 0 || info.records != rowCount {
            let details = (try? runRaw("SHOW WARNINGS LIMIT 3", sql: nil).rows.compactMap { $0.count > 2 ? $0[2] : nil }) ?? []
            throw MySQLError(
                code: .bulkLoadRejected,
                message: "bulk load into \(quotedTable): \(info.records) of \(rowCount) rows read, \(info.skipped) skipped, "
                    + "\(info.warnings) warnings" + (details.isEmpty ? "" : ": " + details.joined(separator: "; ")),
                query: described, server: server)
        }
        return MySQLBulkLoadResult(records: info.records, replaced: info.deleted)
    }

    /// `loadRows` that cancelling the task ends: nothing is sent once cancelled, and a load
    /// running is ended with `KILL QUERY` (as `query` and `executeBatch` are).
    @discardableResult
    public func loadRowsInterruptibly(
        into table: String, columns: [String], rows: some Sequence<[MySQLValue]> & Sendable,
        duplicates: MySQLBulkLoadDuplicates = .fail
    ) async throws(MySQLError) -> MySQLBulkLoadResult {
        try await interruptible("LOAD DATA LOCAL INFILE INTO TABLE \(MySQLIdentifier.quote(table))") { () throws(MySQLError) in
            try loadRows(into: table, columns: columns, rows: rows, duplicates: duplicates)
        }
    }

    /// One value in LOAD DATA's default escaped text format.
    static func appendLoadField(_ value: MySQLValue, to output: inout [UInt8], table: String, server: String) throws(MySQLError) {
        switch value {
        case .null:
            output.append(UInt8(ascii: "\\"))
            output.append(UInt8(ascii: "N"))
        case .int, .bool, .double, .decimal:
            do {
                try appendNumber(value, to: &output, query: nil, server: server)
            } catch var error {
                error.message = "bulk load into \(table): \(error.message)"
                throw error
            }
        case .string(let text):
            appendEscaped(text.utf8, to: &output)
        case .bytes(let data):
            appendEscaped(data, to: &output)
        }
    }

    private static func appendEscaped(_ bytes: some Sequence<UInt8>, to output: inout [UInt8]) {
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\\"): output.append(UInt8(ascii: "\\")); output.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "\t"): output.append(UInt8(ascii: "\\")); output.append(UInt8(ascii: "t"))
            case UInt8(ascii: "\n"): output.append(UInt8(ascii: "\\")); output.append(UInt8(ascii: "n"))
            case UInt8(ascii: "\r"): output.append(UInt8(ascii: "\\")); output.append(UInt8(ascii: "r"))
            case 0: output.append(UInt8(ascii: "\\")); output.append(UInt8(ascii: "0"))
            default: output.append(byte)
            }
        }
    }

    /// "Records: 3  Deleted: 0  Skipped: 0  Warnings: 0" from `mysql_info`.
    static func parseLoadInfo(_ text: String?) -> (records: Int, deleted: Int, skipped: Int, warnings: Int)? {
        guard let text else { return nil }
        var numbers: [String: Int] = [:]
        let words = text.split(whereSeparator: { $0 == " " || $0 == ":" })
        var index = 0
        while index + 1 < words.count {
            if let number = Int(words[index + 1]) { numbers[String(words[index])] = number }
            index += 2
        }
        guard let records = numbers["Records"] else { return nil }
        return (records, numbers["Deleted"] ?? 0, numbers["Skipped"] ?? 0, numbers["Warnings"] ?? 0)
    }
}

/// The buffer one `LOAD DATA LOCAL INFILE` reads. Touched only by the client library's callbacks,
/// which run inside `mysql_real_query` on the connection's executor while `loadRows` keeps it alive.
final class LocalInfileSource: @unchecked Sendable {
    let name: String
    let bytes: [UInt8]
    var offset = 0
    /// Why the callbacks refused the server's request, for the error message.
    var refusal: String?

    init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }
}

/// The local-infile callbacks. `userdata` is a `LocalInfileSource` while a load runs and nil
/// otherwise: the library's default handler (which opens any file the server names) is never
/// installed, so a server can only ever read the buffer of the load this client started.
enum LocalInfileCallbacks {
    static let initialize: @convention(c) (UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) ->
        Int32 = { state, filename, userdata in
            state?.pointee = userdata
            guard let userdata else { return 1 }
            let source = Unmanaged<LocalInfileSource>.fromOpaque(userdata).takeUnretainedValue()
            guard let filename, String(cString: filename) == source.name else {
                source.refusal = "the server asked for a file other than the buffer being loaded"
                return 1
            }
            source.offset = 0
            return 0
        }

    static let read: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<CChar>?, UInt32) -> Int32 = { state, target, capacity in
        guard let state, let target else { return -1 }
        let source = Unmanaged<LocalInfileSource>.fromOpaque(state).takeUnretainedValue()
        let count = min(Int(capacity), source.bytes.count - source.offset, Int(Int32.max))
        guard count > 0 else { return 0 }  // end of the buffer
        source.bytes.withUnsafeBufferPointer { bytes in
            guard let base = bytes.baseAddress else { return }
            UnsafeMutableRawPointer(target).copyMemory(from: base + source.offset, byteCount: count)
        }
        source.offset += count
        return Int32(count)
    }

    static let end: @convention(c) (UnsafeMutableRawPointer?) -> Void = { _ in }

    static let error: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<CChar>?, UInt32) -> Int32 = { state, target, capacity in
        let message = state == nil ? "LOCAL INFILE is only served from memory, for a load this client started" : "LOCAL INFILE refused"
        if let target, capacity > 0 {
            let bytes = Array(message.utf8.prefix(Int(capacity) - 1))
            for (index, byte) in bytes.enumerated() { target[index] = CChar(bitPattern: byte) }
            target[bytes.count] = 0
        }
        return 2000  // CR_UNKNOWN_ERROR
    }

    /// Installs the callbacks with `source` (or none: every request refused).
    static func install(on handle: UnsafeMutablePointer<MYSQL>, source: LocalInfileSource?) {
        let userdata = source.map { Unmanaged.passUnretained($0).toOpaque() }
        mysql_set_local_infile_handler(handle, initialize, read, end, error, userdata)
    }
}
