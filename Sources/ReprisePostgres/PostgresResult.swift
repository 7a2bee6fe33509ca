import CLibPQ

/// The rows of one statement (or one cursor batch), in PostgreSQL's text format.
///
/// Owns its `PGresult` and frees it when released, so a cursor's memory is that of the batches
/// still referenced. A result never changes once received, which makes concurrent reads safe.
///
/// ```swift
/// let result = try await connection.query("SELECT id, name FROM t WHERE id = $1", [42])
/// for row in 0..<result.rowCount { print(result.string(row, 1) ?? "NULL") }
/// ```
public final class PostgresResult: @unchecked Sendable {
    // @unchecked: libpq documents a PGresult as read-only after creation and safe to read from any thread.
    private let handle: OpaquePointer
    public let rowCount: Int
    public let columnCount: Int
    /// Column names in order.
    public let columnNames: [String]
    /// Rows affected, for INSERT/UPDATE/DELETE/MOVE/FETCH (PQcmdTuples), else 0.
    public let affectedRows: Int

    init(taking handle: OpaquePointer) {
        self.handle = handle
        rowCount = Int(PQntuples(handle))
        columnCount = Int(PQnfields(handle))
        columnNames = (0..<Int32(PQnfields(handle))).map { index in
            PQfname(handle, index).map { String(cString: $0) } ?? ""
        }
        affectedRows = PQcmdTuples(handle).flatMap { Int(String(cString: $0)) } ?? 0
    }

    deinit { PQclear(handle) }

    /// The index of a column by name.
    public func columnIndex(_ name: String) -> Int? { columnNames.firstIndex(of: name) }

    /// True for NULL, and for a row or column that does not exist.
    public func isNull(_ row: Int, _ column: Int) -> Bool {
        guard row >= 0 && row < rowCount && column >= 0 && column < columnCount else { return true }
        return PQgetisnull(handle, Int32(row), Int32(column)) == 1
    }

    /// The value as text, or nil for NULL.
    public func string(_ row: Int, _ column: Int) -> String? {
        withValueBytes(row, column) { bytes in bytes.map { String(decoding: $0, as: UTF8.self) } }
    }

    public func int64(_ row: Int, _ column: Int) -> Int64? {
        // Read directly, not through `withValueBytes`' closure (twice per event on the decode
        // thread). NULL and empty text both have length 0 and both give nil: no `PQgetisnull`.
        guard row >= 0 && row < rowCount && column >= 0 && column < columnCount else { return nil }
        let r = Int32(row), c = Int32(column)
        let length = Int(PQgetlength(handle, r, c))
        guard length > 0, let pointer = PQgetvalue(handle, r, c) else { return nil }
        return Self.int64(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    /// The integer a non-empty decimal text spells, or nil.
    @inline(__always)
    private static func int64(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        // Up to 18 digits cannot overflow: no overflow checks (positions, versions).
        let first = bytes[0] == UInt8(ascii: "-") ? 1 : 0
        if bytes.count - first <= 18 {
            var value: Int64 = 0
            var index = first
            while index < bytes.count {
                let digit = bytes[index] &- UInt8(ascii: "0")
                guard digit < 10 else { return nil }
                value = value &* 10 &+ Int64(digit)
                index += 1
            }
            return first == 1 ? -value : value
        }
        var value: Int64 = 0
        var negative = false
        for (offset, byte) in bytes.enumerated() {
            if offset == 0 && byte == UInt8(ascii: "-") { negative = true; continue }
            guard byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") else { return nil }
            let (multiplied, overflow1) = value.multipliedReportingOverflow(by: 10)
            let (added, overflow2) = multiplied.addingReportingOverflow(Int64(byte - UInt8(ascii: "0")))
            if overflow1 || overflow2 { return nil }
            value = added
        }
        return negative ? -value : value
    }

    public func int(_ row: Int, _ column: Int) -> Int? { int64(row, column).map { Int($0) } }

    public func double(_ row: Int, _ column: Int) -> Double? { string(row, column).flatMap { Double($0) } }

    public func bool(_ row: Int, _ column: Int) -> Bool? {
        withValueBytes(row, column) { bytes in
            guard let first = bytes?.first else { return nil }
            return first == UInt8(ascii: "t")
        }
    }

    /// Calls `body` with the value's raw bytes (nil for NULL, or for a row or column that does not
    /// exist) without copying them; the buffer is valid only inside `body`. For decoders that parse
    /// JSON straight from the result.
    public func withValueBytes<R>(_ row: Int, _ column: Int, _ body: (UnsafeRawBufferPointer?) throws -> R) rethrows -> R {
        guard row >= 0 && row < rowCount && column >= 0 && column < columnCount else { return try body(nil) }
        let r = Int32(row), c = Int32(column)
        // A NULL has length 0 (libpq's documentation): only an empty value needs the third call
        // (the decode thread reads five values per event).
        let length = Int(PQgetlength(handle, r, c))
        if length == 0, PQgetisnull(handle, r, c) == 1 { return try body(nil) }
        guard let pointer = PQgetvalue(handle, r, c) else { return try body(nil) }
        return try body(UnsafeRawBufferPointer(start: pointer, count: length))
    }
}
