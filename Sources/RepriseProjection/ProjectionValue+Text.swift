import Foundation

/// Text forms of values: what the engine writes to MySQL, what messages show, and how JSON
/// numbers become values.
extension ProjectionValue: CustomStringConvertible {
    /// The text written to MySQL: ints plain, decimals plain without exponent, doubles in
    /// Swift's shortest round-trip form (`0.1`, `1e+20`), bools `true`/`false`, strings as they
    /// are. `null` for `.null`, which the engine writes as SQL NULL instead.
    public var description: String {
        switch self {
        case .null: "null"
        case .bool(let flag): flag ? "true" : "false"
        case .int(let number): String(number)
        case .decimal(let number): number.description
        case .double(let number): number.description
        case .string(let text): text
        }
    }

    /// The kind's name as messages show it: `null`, `bool`, `int`, `decimal`, `double`, `string`.
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "bool"
        case .int: "int"
        case .decimal: "decimal"
        case .double: "double"
        case .string: "string"
        }
    }

    /// A value from the text of a JSON number: `.int` when it is an integer that fits Int64,
    /// else `.decimal` when Decimal holds it, else `.double`; nil when the text is not a JSON number.
    public init?(jsonNumberText text: some StringProtocol) {
        if let integer = Int64(text) {
            // Int64 accepts "+5", which JSON does not.
            guard text.utf8.first != UInt8(ascii: "+") else { return nil }
            self = .int(integer)
            return
        }
        guard Self.isJSONNumber(text.utf8) else { return nil }
        let string = String(text)
        if let decimal = Decimal(string: string, locale: ExpressionParser.posix), !decimal.isNaN {
            self = .decimal(decimal)
        } else if let double = Double(string), double.isFinite {
            self = .double(double)
        } else {
            return nil
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; Decimal(string:) would accept a prefix.
    private static func isJSONNumber(_ bytes: some Collection<UInt8>) -> Bool {
        var iterator = bytes.makeIterator()
        var byte = iterator.next()
        func isDigit(_ value: UInt8?) -> Bool { value.map { $0 >= 0x30 && $0 <= 0x39 } ?? false }
        if byte == UInt8(ascii: "-") { byte = iterator.next() }
        guard isDigit(byte) else { return false }
        if byte == UInt8(ascii: "0") {
            byte = iterator.next()
        } else {
            while isDigit(byte) { byte = iterator.next() }
        }
        if byte == UInt8(ascii: ".") {
            byte = iterator.next()
            guard isDigit(byte) else { return false }
            while isDigit(byte) { byte = iterator.next() }
        }
        if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
            byte = iterator.next()
            if byte == UInt8(ascii: "+") || byte == UInt8(ascii: "-") { byte = iterator.next() }
            guard isDigit(byte) else { return false }
            while isDigit(byte) { byte = iterator.next() }
        }
        return byte == nil
    }
}
