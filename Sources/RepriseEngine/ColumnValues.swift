import Foundation
import RepriseMySQL
import RepriseProjection

/// Conversions between projection values and MySQL column values.
///
/// Every value a handler stores is first made *canonical* for its column: exactly what MySQL
/// would store and give back. Rows kept in memory between chunks then behave exactly like rows
/// read back from MySQL, so a rebuild gives the same result whatever its chunk size or cache.
enum ColumnValues {
    struct ConversionError: Error {
        let message: String
    }

    /// The value as the column stores it (`ConversionError` when it does not fit).
    static func canonical(_ value: ProjectionValue, for column: ColumnDefinition) throws(ConversionError) -> ProjectionValue {
        if case .null = value {
            guard column.nullable else { throw ConversionError(message: "column \(column.name) is NOT NULL but the value is null") }
            return .null
        }
        switch column.type {
        case .int, .bigint:
            let number = try integer(value, column)
            if case .int = column.type, number < Int64(Int32.min) || number > Int64(Int32.max) {
                throw ConversionError(message: "\(number) does not fit INT column \(column.name)")
            }
            return .int(number)
        case .decimal(let precision, let scale):
            var decimal = try decimalValue(value, column)
            var rounded = Decimal()
            NSDecimalRound(&rounded, &decimal, scale, .plain)  // MySQL rounds half away from zero
            let digitsBeforePoint = precision - scale
            let limit = pow(Decimal(10), digitsBeforePoint)
            guard rounded < limit && rounded > -limit else {
                throw ConversionError(message: "\(rounded) does not fit \(column.type.sql) column \(column.name)")
            }
            return .decimal(rounded)
        case .double:
            switch value {
            case .int(let number): return .double(Double(number))
            case .double: return value
            case .decimal(let decimal): return .double(NSDecimalNumber(decimal: decimal).doubleValue)
            case .string(let text):
                guard let number = Double(text) else { throw ConversionError(message: "'\(text.prefix(40))' is not a number for column \(column.name)") }
                return .double(number)
            case .bool(let flag): return .double(flag ? 1 : 0)
            case .null: return .null
            }
        case .varchar(let length):
            let text = string(value)
            // Characters never outnumber UTF-8 bytes: counting them is needed only past the byte count.
            guard text.utf8.count <= length || text.count <= length else {
                throw ConversionError(message: "text of \(text.count) characters does not fit \(column.type.sql) column \(column.name)")
            }
            return .string(text)
        case .text, .json:
            return .string(string(value))
        case .bool:
            switch value {
            case .bool: return value
            case .int(let number): return .bool(number != 0)
            case .string(let text) where text == "true" || text == "false": return .bool(text == "true")
            default: throw ConversionError(message: "\(value) is not a boolean for column \(column.name)")
            }
        case .date:
            // Already YYYY-MM-DD: checked in place (`isoDate` would also return a copy of the text).
            if case .string(let text) = value, text.utf8.count == 10, bytesOf(text, { startsWithDate($0) }) { return value }
            guard case .string(let text) = value, let date = isoDate(text) else {
                throw ConversionError(message: "\(value) is not a date (YYYY-MM-DD…) for column \(column.name)")
            }
            return .string(date)
        case .datetime:
            if case .string(let text) = value, isCanonicalTimestamp(text) { return value }
            guard case .string(let text) = value, let timestamp = isoTimestamp(text) else {
                throw ConversionError(message: "\(value) is not a UTC timestamp (YYYY-MM-DDTHH:MM:SS[.ffffff][Z]) for column \(column.name)")
            }
            return .string(timestamp)
        }
    }

    /// A canonical value as a statement parameter.
    static func mysqlValue(_ value: ProjectionValue, for column: ColumnDefinition) -> MySQLValue {
        switch (value, column.type) {
        case (.null, _): return .null
        case (.int(let number), _): return .int(number)
        case (.decimal(let decimal), _): return .decimal(plain(decimal))
        case (.double(let number), _): return .double(number)
        case (.bool(let flag), _): return .bool(flag)
        case (.string(let text), .datetime): return .string(mysqlDatetime(text))
        case (.string(let text), _): return .string(text)
        }
    }

    /// A column value read back from MySQL's text protocol.
    static func fromMySQL(_ text: String?, for column: ColumnDefinition) -> ProjectionValue {
        guard let text else { return .null }
        switch column.type {
        case .int, .bigint: return Int64(text).map { .int($0) } ?? .string(text)
        case .decimal: return Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")).map { .decimal($0) } ?? .string(text)
        case .double: return Double(text).map { .double($0) } ?? .string(text)
        case .bool: return .bool(text != "0")
        case .datetime: return .string(isoTimestamp(text) ?? text)
        case .date, .varchar, .text, .json: return .string(text)
        }
    }

    // MARK: - Helpers

    private static func integer(_ value: ProjectionValue, _ column: ColumnDefinition) throws(ConversionError) -> Int64 {
        switch value {
        case .int(let number): return number
        case .bool(let flag): return flag ? 1 : 0
        case .decimal(let decimal):
            var source = decimal, whole = Decimal()
            NSDecimalRound(&whole, &source, 0, .plain)
            guard decimal == whole, let number = Int64(exactly: NSDecimalNumber(decimal: decimal).doubleValue) else {
                throw ConversionError(message: "\(decimal) is not a whole number for column \(column.name)")
            }
            return number
        case .double(let number):
            guard number.rounded() == number, let exact = Int64(exactly: number) else {
                throw ConversionError(message: "\(number) is not a whole number for column \(column.name)")
            }
            return exact
        case .string(let text):
            guard let number = Int64(text) else { throw ConversionError(message: "'\(text.prefix(40))' is not a whole number for column \(column.name)") }
            return number
        case .null:
            return 0
        }
    }

    private static func decimalValue(_ value: ProjectionValue, _ column: ColumnDefinition) throws(ConversionError) -> Decimal {
        switch value {
        case .int(let number): return Decimal(number)
        case .decimal(let decimal): return decimal
        case .double(let number):
            guard number.isFinite, let decimal = Decimal(string: "\(number)", locale: Locale(identifier: "en_US_POSIX")) else {
                throw ConversionError(message: "\(number) is not a decimal for column \(column.name)")
            }
            return decimal
        case .string(let text):
            guard let decimal = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")), !text.isEmpty,
                text.allSatisfy({ $0.isNumber || $0 == "." || $0 == "-" })
            else { throw ConversionError(message: "'\(text.prefix(40))' is not a decimal for column \(column.name)") }
            return decimal
        case .bool(let flag): return flag ? 1 : 0
        case .null: return 0
        }
    }

    private static func string(_ value: ProjectionValue) -> String {
        switch value {
        case .string(let text): text
        case .decimal(let decimal): plain(decimal)
        default: value.description
        }
    }

    /// A decimal without exponent ("1234.50").
    static func plain(_ decimal: Decimal) -> String {
        var copy = decimal
        return NSDecimalString(&copy, Locale(identifier: "en_US_POSIX"))
    }

    /// "2026-01-05…" -> "2026-01-05".
    static func isoDate(_ text: String) -> String? {
        guard bytesOf(text, { startsWithDate($0) }) else { return nil }
        return text.utf8.count == 10 ? text : String(decoding: text.utf8.prefix(10), as: UTF8.self)
    }

    /// `body` over the text's UTF-8 bytes, without copying them when the string is native.
    static func bytesOf<R>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let result = text.utf8.withContiguousStorageIfAvailable(body) { return result }
        return Array(text.utf8).withUnsafeBufferPointer(body)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }

    /// `YYYY-MM-DD` at the start (digits and dashes only, as `isoDate` checks).
    private static func startsWithDate(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count >= 10 else { return false }
        for index in 0..<10 {
            let fits = index == 4 || index == 7 ? bytes[index] == UInt8(ascii: "-") : isDigit(bytes[index])
            if !fits { return false }
        }
        return true
    }

    /// Whether `text` is already what `isoTimestamp` makes of it: `YYYY-MM-DDTHH:MM:SSZ` or with
    /// 1-6 fraction digits, the last not 0. Checked without building anything.
    static func isCanonicalTimestamp(_ text: String) -> Bool {
        bytesOf(text) { bytes in
            let count = bytes.count
            guard count == 20 || (count >= 22 && count <= 27), startsWithDate(bytes), bytes[10] == UInt8(ascii: "T"),
                isDigit(bytes[11]), isDigit(bytes[12]), bytes[13] == UInt8(ascii: ":"), isDigit(bytes[14]), isDigit(bytes[15]),
                bytes[16] == UInt8(ascii: ":"), isDigit(bytes[17]), isDigit(bytes[18]), bytes[count - 1] == UInt8(ascii: "Z")
            else { return false }
            if count == 20 { return true }
            guard bytes[19] == UInt8(ascii: "."), bytes[count - 2] != UInt8(ascii: "0") else { return false }
            for index in 20..<(count - 1) where !isDigit(bytes[index]) { return false }
            return true
        }
    }

    /// Normalizes "2026-01-05T10:00:00Z", "2026-01-05 10:00:00.000000", "…+00:00" to
    /// "2026-01-05T10:00:00Z" or "2026-01-05T10:00:00.123456Z" (microseconds, trailing zeros dropped).
    /// Nil for other offsets than UTC or malformed text.
    static func isoTimestamp(_ text: String) -> String? {
        guard let date = isoDate(text) else { return nil }
        let bytes = Array(text.utf8)
        if bytes.count == 10 { return date + "T00:00:00Z" }
        guard bytes.count >= 19, bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: " "),
            bytes[13] == UInt8(ascii: ":"), bytes[16] == UInt8(ascii: ":")
        else { return nil }
        for index in [11, 12, 14, 15, 17, 18] where !(bytes[index] >= 48 && bytes[index] <= 57) { return nil }
        let time = String(decoding: bytes[11..<19], as: UTF8.self)
        var rest = bytes[19...]
        var fraction: [UInt8] = []
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst()
            while let byte = rest.first, byte >= 48 && byte <= 57 {
                fraction.append(byte)
                rest = rest.dropFirst()
            }
            guard !fraction.isEmpty else { return nil }
            fraction = Array(fraction.prefix(6))
            while fraction.last == UInt8(ascii: "0") { fraction.removeLast() }
        }
        let zone = String(decoding: rest, as: UTF8.self)
        guard zone.isEmpty || zone == "Z" || zone == "+00:00" || zone == "+00" || zone == "+0000" else { return nil }
        return date + "T" + time + (fraction.isEmpty ? "" : "." + String(decoding: fraction, as: UTF8.self)) + "Z"
    }

    /// "2026-01-05T10:00:00.5Z" -> "2026-01-05 10:00:00.5".
    static func mysqlDatetime(_ iso: String) -> String {
        bytesOf(iso) { bytes in
            String(unsafeUninitializedCapacity: bytes.count) { buffer in
                var count = 0
                for byte in bytes where byte != UInt8(ascii: "Z") {
                    buffer[count] = byte == UInt8(ascii: "T") ? UInt8(ascii: " ") : byte
                    count += 1
                }
                return count
            }
        }
    }
}
