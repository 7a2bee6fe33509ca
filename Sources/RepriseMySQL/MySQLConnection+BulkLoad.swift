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
    /// Loads `rows` into `table` with one `LOAD DATA LOCAL INFILE` whose "file" is served from
    /// memory through the client library's local-infile callbacks: no file on disk, no SQL text
    /// per value, no statement size limit.
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
        try loadRows(into: table, columns: columns, rows: rows, duplicates: duplicates, render: Self.renderValues)
    }

    /// `loadRows` of the caller's own rows: `render` appends each row's values, one per column in
    /// the order of `columns`, straight into the load's text (no `[MySQLValue]` per row).
    ///
    /// The text is rendered as the server reads it, a slice of about 64 KiB at a time (the
    /// library's read size), so the load holds no buffer of all its rows. The first slice is
    /// rendered before the statement is sent: a row refused there (a value MySQL cannot store, a
    /// row of the wrong width) sends nothing. A row refused later ends the load with that error
    /// after the rows before it reached the server: inside a transaction the caller rolls them back.
    @discardableResult
    public func loadRows<Rows: Sequence & Sendable>(
        into table: String, columns: [String], rows: Rows, duplicates: MySQLBulkLoadDuplicates = .fail,
        render: @escaping @Sendable (Rows.Element, inout MySQLRowWriter) throws(MySQLError) -> Void
    ) throws(MySQLError) -> MySQLBulkLoadResult {
        let quotedTable = MySQLIdentifier.quote(table)
        guard !columns.isEmpty else {
            throw MySQLError(code: .parameterMismatch, message: "bulk load into \(quotedTable) names no columns", server: server)
        }
        let context = "bulk load into \(quotedTable)", server = server, columnCount = columns.count
        var iterator = rows.makeIterator()
        nextLoadNumber &+= 1
        let source = LocalInfileSource(
            name: "reprise-memory-\(nextLoadNumber)",
            writer: MySQLRowWriter(format: .loadData, context: context, query: nil, server: server)
        ) { (writer: inout MySQLRowWriter, number: Int) throws(MySQLError) -> Bool in
            guard let row = iterator.next() else { return false }
            writer.beginRow()
            try render(row, &writer)
            guard writer.fieldsInRow == columnCount else {
                throw MySQLError(
                    code: .parameterMismatch, message: "\(context): row \(number) has \(writer.fieldsInRow) values for \(columnCount) columns",
                    server: server)
            }
            writer.endRow()
            return true
        }
        try source.render(atLeast: LocalInfileSource.sliceBytes)
        guard source.rowCount > 0 else { return MySQLBulkLoadResult(records: 0, replaced: 0) }

        // Hex literals for the separators: the statement means the same under NO_BACKSLASH_ESCAPES.
        let statement = "LOAD DATA LOCAL INFILE '\(source.name)' \(duplicates == .replace ? "REPLACE " : "")INTO TABLE \(quotedTable)"
            + " CHARACTER SET binary FIELDS TERMINATED BY X'09' ENCLOSED BY '' ESCAPED BY X'5C' LINES TERMINATED BY X'0A'"
            + " (" + columns.map(MySQLIdentifier.quote).joined(separator: ", ") + ")"
        let described = "LOAD DATA LOCAL INFILE (memory) INTO TABLE \(quotedTable)"

        let info: (records: Int, deleted: Int, skipped: Int, warnings: Int)
        do {
            info = try withLocalInfileSource(source) { () throws(MySQLError) in
                try runRaw(statement, sql: described)
            }
        } catch var error {
            // A row refused while the server read the text: its own error, not the library's.
            if let failure = source.failure { throw failure }
            if let refusal = source.refusal { error.message += " (\(refusal))" }
            error.message = "\(context) failed: \(error.message)"
            throw error
        }
        if let failure = source.failure { throw failure }
        let rowCount = source.rowCount
        if info.skipped > 0 || info.warnings > 0 || info.records != rowCount {
            let details = (try? runRaw("SHOW WARNINGS LIMIT 3", sql: nil).rows.compactMap { $0.count > 2 ? $0[2] : nil }) ?? []
            throw MySQLError(
                code: .bulkLoadRejected,
                message: "\(context): \(info.records) of \(rowCount) rows read, \(info.skipped) skipped, "
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
        try await loadRowsInterruptibly(into: table, columns: columns, rows: rows, duplicates: duplicates, render: Self.renderValues)
    }

    /// `loadRows(…render:)` that cancelling the task ends.
    @discardableResult
    public func loadRowsInterruptibly<Rows: Sequence & Sendable>(
        into table: String, columns: [String], rows: Rows, duplicates: MySQLBulkLoadDuplicates = .fail,
        render: @escaping @Sendable (Rows.Element, inout MySQLRowWriter) throws(MySQLError) -> Void
    ) async throws(MySQLError) -> MySQLBulkLoadResult {
        try await interruptible("LOAD DATA LOCAL INFILE INTO TABLE \(MySQLIdentifier.quote(table))") { () throws(MySQLError) in
            try loadRows(into: table, columns: columns, rows: rows, duplicates: duplicates, render: render)
        }
    }

    /// The render closure of rows given as `[MySQLValue]`.
    static func renderValues(_ row: [MySQLValue], _ writer: inout MySQLRowWriter) throws(MySQLError) {
        for value in row { try writer.append(value) }
    }

    /// The LOAD DATA text of `rows`, byte for byte as `loadRows` sends it, without a server (for
    /// tests of a caller's renderer).
    package static func loadDataText<Rows: Sequence>(
        rows: Rows, render: (Rows.Element, inout MySQLRowWriter) throws(MySQLError) -> Void
    ) throws(MySQLError) -> [UInt8] {
        var writer = MySQLRowWriter(format: .loadData, context: nil, query: nil, server: "")
        for row in rows {
            writer.beginRow()
            try render(row, &writer)
            writer.endRow()
        }
        return writer.bytes
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

/// The text one `LOAD DATA LOCAL INFILE` reads, rendered a slice at a time as the library asks
/// for it. Touched only on the connection's executor: by `loadRows`, and by the client library's
/// callbacks, which run inside `mysql_real_query` while `loadRows` keeps the source alive.
final class LocalInfileSource: @unchecked Sendable {
    /// About what the library asks for per read (64 KiB): the most text rendered ahead of the
    /// server, besides one row.
    static let sliceBytes = 64 << 10

    let name: String
    /// Rendered text; `offset` is where the server's reading stands in it.
    private var writer: MySQLRowWriter
    private var offset = 0
    /// Renders the next row (numbered from 0) into the writer; false once the rows are done.
    private let renderRow: (inout MySQLRowWriter, Int) throws(MySQLError) -> Bool
    private var rowsLeft = true
    private(set) var rowCount = 0
    /// A row refused while the server was reading: the load's error.
    var failure: MySQLError?
    /// Why the callbacks refused the server's request, for the error message.
    var refusal: String?

    init(name: String, writer: MySQLRowWriter, renderRow: @escaping (inout MySQLRowWriter, Int) throws(MySQLError) -> Bool) {
        self.name = name
        self.writer = writer
        self.renderRow = renderRow
        self.writer.bytes.reserveCapacity(Self.sliceBytes + 4096)
    }

    /// Renders rows until `count` bytes wait to be read or the rows are done.
    func render(atLeast count: Int) throws(MySQLError) {
        while rowsLeft && writer.bytes.count - offset < count {
            if try renderRow(&writer, rowCount) {
                rowCount += 1
            } else {
                rowsLeft = false
            }
        }
    }

    /// Copies up to `capacity` bytes of text to `target`, rendering more first when all was read;
    /// 0 at the end, -1 when a row was refused (`failure`).
    func read(into target: UnsafeMutableRawPointer, capacity: Int) -> Int {
        if offset == writer.bytes.count {
            writer.bytes.removeAll(keepingCapacity: true)
            offset = 0
            do {
                try render(atLeast: max(1, min(capacity, Self.sliceBytes)))
            } catch {
                failure = error
                rowsLeft = false
                return -1
            }
        }
        let count = min(capacity, writer.bytes.count - offset)
        guard count > 0 else { return 0 }  // end of the text
        writer.bytes.withUnsafeBufferPointer { bytes in
            guard let base = bytes.baseAddress else { return }
            target.copyMemory(from: base + offset, byteCount: count)
        }
        offset += count
        return count
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
            return 0
        }

    static let read: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<CChar>?, UInt32) -> Int32 = { state, target, capacity in
        guard let state, let target else { return -1 }
        let source = Unmanaged<LocalInfileSource>.fromOpaque(state).takeUnretainedValue()
        return Int32(source.read(into: UnsafeMutableRawPointer(target), capacity: min(Int(capacity), Int(Int32.max))))
    }

    static let end: @convention(c) (UnsafeMutableRawPointer?) -> Void = { _ in }

    static let error: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutablePointer<CChar>?, UInt32) -> Int32 = { state, target, capacity in
        let message = state.map { Unmanaged<LocalInfileSource>.fromOpaque($0).takeUnretainedValue().failure?.message ?? "LOCAL INFILE refused" }
            ?? "LOCAL INFILE is only served from memory, for a load this client started"
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
