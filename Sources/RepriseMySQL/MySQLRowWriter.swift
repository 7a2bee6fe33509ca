import CMariaDB

/// Writes rows straight into the text MySQL receives: the buffer of a bulk load
/// (`loadRows(into:columns:rows:render:)`, LOAD DATA's escaped text) or a multi-row statement
/// (`executeBatch(prefix:rows:render:)`, SQL literals). The caller's render closure appends one
/// value per column, in column order; the writer puts the separators and escapes every value
/// exactly as a `MySQLValue` parameter of the same value is escaped, so a caller's rows need no
/// `[MySQLValue]` of their own on the way to the server.
public struct MySQLRowWriter {
    enum Format {
        /// LOAD DATA's default text: tab between fields, `\N` for NULL, backslash escapes.
        case loadData
        /// SQL literals between commas; strings that need it are escaped by the client library
        /// with this handle's charset and `NO_BACKSLASH_ESCAPES` setting (without a handle, which
        /// only values other than strings are written with, as a hex literal).
        case literal(UnsafeMutablePointer<MYSQL>?)
    }

    let format: Format
    /// What the text is for, at the head of error messages ("bulk load into `t`"), or nil.
    let context: String?
    /// The statement shown in errors (batches), or nil.
    let query: String?
    let server: String
    /// The rendered text.
    var bytes: [UInt8] = []
    /// Fields appended to the current row.
    var fieldsInRow = 0
    /// Between two fields: a tab (LOAD DATA) or a comma (literals).
    private let separator: UInt8

    init(format: Format, context: String?, query: String?, server: String) {
        self.format = format
        self.context = context
        self.query = query
        self.server = server
        if case .loadData = format { separator = UInt8(ascii: "\t") } else { separator = UInt8(ascii: ",") }
    }

    // MARK: - Fields

    public mutating func appendNull() {
        beginField()
        switch format {
        case .loadData:
            bytes.append(UInt8(ascii: "\\"))
            bytes.append(UInt8(ascii: "N"))
        case .literal:
            bytes.append(contentsOf: "NULL".utf8)
        }
    }

    public mutating func append(_ number: Int64) {
        beginField()
        Self.appendDigits(number, to: &bytes)
    }

    public mutating func append(_ flag: Bool) {
        beginField()
        bytes.append(flag ? UInt8(ascii: "1") : UInt8(ascii: "0"))
    }

    /// Refuses what MySQL cannot store (infinities, NaN).
    public mutating func append(_ number: Double) throws(MySQLError) {
        guard number.isFinite else { throw invalid("MySQL cannot store \(number)") }
        beginField()
        bytes.append(contentsOf: number.description.utf8)
    }

    /// A decimal number in text form ("12.50"); refused unless it is one.
    public mutating func appendDecimal(_ text: String) throws(MySQLError) {
        guard MySQLConnection.isDecimalLiteral(text) else { throw invalid("'\(text.prefix(40))' is not a decimal number") }
        beginField()
        bytes.append(contentsOf: text.utf8)
    }

    public mutating func append(_ text: String) {
        beginField()
        if let done: Void = text.utf8.withContiguousStorageIfAvailable({ appendText($0) }) { return done }
        Array(text.utf8).withUnsafeBufferPointer { appendText($0) }
    }

    /// A UTC timestamp in ISO 8601 form ("2026-01-05T10:00:00.5Z") as DATETIME text
    /// ("2026-01-05 10:00:00.5"): every `T` becomes a space and every `Z` is dropped, then the text
    /// is escaped like any other. The same bytes as `append` of the converted string, without
    /// building it.
    public mutating func appendDatetime(iso text: String) {
        beginField()
        if let done: Void = text.utf8.withContiguousStorageIfAvailable({ appendDatetime($0) }) { return done }
        Array(text.utf8).withUnsafeBufferPointer { appendDatetime($0) }
    }

    private mutating func appendDatetime(_ iso: UnsafeBufferPointer<UInt8>) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(iso.count, 1)) { converted in
            var length = 0
            for byte in iso where byte != UInt8(ascii: "Z") {
                converted[length] = byte == UInt8(ascii: "T") ? UInt8(ascii: " ") : byte
                length += 1
            }
            appendText(UnsafeBufferPointer(rebasing: converted[..<length]))
        }
    }

    /// Binary data (a BLOB's bytes): escaped in a bulk load, a hex literal in a statement.
    public mutating func append(bytes data: [UInt8]) {
        beginField()
        switch format {
        case .loadData:
            data.withUnsafeBufferPointer { appendLoadDataEscaped($0) }
        case .literal:
            appendHexLiteral(data)
        }
    }

    public mutating func append(_ value: MySQLValue) throws(MySQLError) {
        switch value {
        case .null: appendNull()
        case .int(let number): append(number)
        case .bool(let flag): append(flag)
        case .double(let number): try append(number)
        case .decimal(let text): try appendDecimal(text)
        case .string(let text): append(text)
        case .bytes(let data): append(bytes: data)
        }
    }

    // MARK: - Rows (the wrapper's side)

    mutating func beginRow() {
        fieldsInRow = 0
        if case .literal = format { bytes.append(UInt8(ascii: "(")) }
    }

    mutating func endRow() {
        switch format {
        case .loadData: bytes.append(UInt8(ascii: "\n"))
        case .literal: bytes.append(UInt8(ascii: ")"))
        }
    }

    private mutating func beginField() {
        if fieldsInRow > 0 { bytes.append(separator) }
        fieldsInRow += 1
    }

    private func invalid(_ message: String) -> MySQLError {
        MySQLError(code: .invalidValue, message: context.map { "\($0): \(message)" } ?? message, query: query, server: server)
    }

    // MARK: - Escaping

    private mutating func appendText(_ text: UnsafeBufferPointer<UInt8>) {
        switch format {
        case .loadData:
            appendLoadDataEscaped(text)
        case .literal(let handle):
            appendQuoted(text, handle: handle)
        }
    }

    /// LOAD DATA's escapes for backslash, tab, newline, carriage return and NUL; runs of other
    /// bytes are copied as they are, in one piece.
    private mutating func appendLoadDataEscaped(_ text: UnsafeBufferPointer<UInt8>) {
        var runStart = 0
        for index in 0..<text.count {
            let escape: UInt8
            switch text[index] {
            case UInt8(ascii: "\\"): escape = UInt8(ascii: "\\")
            case UInt8(ascii: "\t"): escape = UInt8(ascii: "t")
            case UInt8(ascii: "\n"): escape = UInt8(ascii: "n")
            case UInt8(ascii: "\r"): escape = UInt8(ascii: "r")
            case 0: escape = UInt8(ascii: "0")
            default: continue
            }
            if runStart < index { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: text[runStart..<index])) }
            bytes.append(UInt8(ascii: "\\"))
            bytes.append(escape)
            runStart = index + 1
        }
        if runStart < text.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: text[runStart...])) }
    }

    /// `'text'`. The client library changes only NUL, LF, CR, backslash, both quotes and Ctrl-Z
    /// (and the first byte of an invalid multi-byte sequence, which valid UTF-8 in utf8mb4 never
    /// has): text without those is its own escaped form. Text with them is escaped by
    /// `mysql_real_escape_string` (which follows the session's `NO_BACKSLASH_ESCAPES`) straight
    /// into the statement.
    private mutating func appendQuoted(_ text: UnsafeBufferPointer<UInt8>, handle: UnsafeMutablePointer<MYSQL>?) {
        let needsEscaping = text.contains { $0 == 0 || $0 == 0x0A || $0 == 0x0D || $0 == 0x5C || $0 == 0x27 || $0 == 0x22 || $0 == 0x1A }
        bytes.append(UInt8(ascii: "'"))
        guard needsEscaping, let source = text.baseAddress else {
            bytes.append(contentsOf: text)
            bytes.append(UInt8(ascii: "'"))
            return
        }
        let start = bytes.count, room = text.count * 2 + 1
        bytes.append(contentsOf: repeatElement(0, count: room))
        let written: UInt = bytes.withUnsafeMutableBufferPointer { output in
            guard let base = output.baseAddress, let handle else { return UInt.max }
            return source.withMemoryRebound(to: CChar.self, capacity: text.count) { from in
                (base + start).withMemoryRebound(to: CChar.self, capacity: room) { to in
                    mysql_real_escape_string(handle, to, from, UInt(text.count))
                }
            }
        }
        guard written != UInt.max, Int(written) < room else {
            // (ulong)-1: the library refused (or no handle). A hex literal with a charset introducer needs no escaping.
            bytes.removeLast(room + 1)
            bytes.append(contentsOf: "_utf8mb4 ".utf8)
            appendHexLiteral(text)
            return
        }
        bytes.removeLast(room - Int(written))
        bytes.append(UInt8(ascii: "'"))
    }

    private mutating func appendHexLiteral(_ data: some Collection<UInt8>) {
        bytes.append(UInt8(ascii: "X"))
        bytes.append(UInt8(ascii: "'"))
        bytes.reserveCapacity(bytes.count + data.count * 2 + 1)
        for byte in data {
            bytes.append(Self.hexDigits[Int(byte >> 4)])
            bytes.append(Self.hexDigits[Int(byte & 0x0F)])
        }
        bytes.append(UInt8(ascii: "'"))
    }

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    /// The decimal digits of `number`, as `String(number)` writes them, without building a string.
    static func appendDigits(_ number: Int64, to output: inout [UInt8]) {
        if number >= 0 && number < 10 {
            output.append(UInt8(ascii: "0") + UInt8(number))
            return
        }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var magnitude = number.magnitude
            var start = digits.count
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if number < 0 { output.append(UInt8(ascii: "-")) }
            output.append(contentsOf: UnsafeBufferPointer(rebasing: digits[start...]))
        }
    }
}
