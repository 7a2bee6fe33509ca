import Foundation

/// Whether a literal value (a column default, a constant in `set:`) fits a column type, and the
/// value in the column's own kind: ints for int/bigint, decimals for decimal, doubles for double,
/// strings for text, date and datetime columns.
enum ColumnValueFit {
    struct Failure: Error {
        var reason: String
    }

    static func conform(_ value: ProjectionValue, to type: ColumnType) throws(Failure) -> ProjectionValue {
        if value == .null { return .null }
        switch type {
        case .int, .bigint:
            let limits: ClosedRange<Int64> = type == .int ? Int64(Int32.min)...Int64(Int32.max) : Int64.min...Int64.max
            guard let integer = integerValue(value) else { throw Failure(reason: "expected an integer, got \(shown(value))") }
            guard limits.contains(integer) else { throw Failure(reason: "\(integer) is out of range for \(type.sql)") }
            return .int(integer)
        case .decimal(let precision, let scale):
            guard let decimal = value.decimalValue else { throw Failure(reason: "expected a number, got \(shown(value))") }
            let (integerDigits, fractionDigits) = digits(of: decimal)
            guard fractionDigits <= scale, integerDigits <= precision - scale else {
                throw Failure(reason: "\(decimal) does not fit \(type.sql)")
            }
            return .decimal(decimal)
        case .double:
            guard let double = value.doubleValue else { throw Failure(reason: "expected a number, got \(shown(value))") }
            return .double(double)
        case .bool:
            guard case .bool = value else { throw Failure(reason: "expected true or false, got \(shown(value))") }
            return value
        case .varchar(let length):
            guard case .string(let text) = value else { throw Failure(reason: "expected a 'string', got \(shown(value))") }
            // MySQL counts characters as code points for utf8mb4.
            let count = text.unicodeScalars.count
            guard count <= length else { throw Failure(reason: "text of \(count) characters is longer than \(type.sql)") }
            return value
        case .text:
            guard case .string(let text) = value else { throw Failure(reason: "expected a 'string', got \(shown(value))") }
            guard text.utf8.count <= 65_535 else { throw Failure(reason: "text is longer than 65535 bytes") }
            return value
        case .date:
            guard case .string(let text) = value, ExpressionEvaluator.datePart(of: text) == text else {
                throw Failure(reason: "expected a date 'YYYY-MM-DD', got \(shown(value))")
            }
            return value
        case .datetime:
            guard case .string(let text) = value, isDateTime(text) else {
                throw Failure(reason: "expected a datetime 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DDTHH:MM:SSZ', got \(shown(value))")
            }
            return value
        case .json:
            guard case .string(let text) = value,
                  (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: .fragmentsAllowed)) != nil else {
                throw Failure(reason: "expected a 'string' holding JSON, got \(shown(value))")
            }
            return value
        }
    }

    private static func shown(_ value: ProjectionValue) -> String {
        "\(value.kindName) \(Expression.literalText(value).prefix(40))"
    }

    private static func integerValue(_ value: ProjectionValue) -> Int64? {
        switch value {
        case .int(let integer): return integer
        case .decimal(let decimal):
            // 5.0 is an integer; the round trip through text keeps this exact.
            let text = decimal.description
            return text.contains(".") ? nil : Int64(text)
        default: return nil
        }
    }

    /// Significant digits before and after the point (leading integer zeros do not count).
    static func digits(of decimal: Decimal) -> (integer: Int, fraction: Int) {
        var text = Substring(decimal.description)
        if text.hasPrefix("-") { text = text.dropFirst() }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        let integerPart = parts[0].drop { $0 == "0" }
        let fractionPart = parts.count > 1 ? parts[1] : ""
        return (integerPart.count, fractionPart.count)
    }

    /// `YYYY-MM-DD HH:MM:SS[.ffffff]` (MySQL) or `YYYY-MM-DDTHH:MM:SS[.f+]Z` (ISO-8601 UTC).
    static func isDateTime(_ text: String) -> Bool {
        guard let day = ExpressionEvaluator.datePart(of: text) else { return false }
        var rest = Substring(text.utf8.dropFirst(day.utf8.count))
        let iso = rest.first == "T"
        guard rest.first == "T" || rest.first == " " else { return false }
        rest = rest.dropFirst()
        func number(_ maximum: Int) -> Bool {
            guard rest.count >= 2, let value = Int(rest.prefix(2)), rest.prefix(2).allSatisfy(\.isASCIIDigit),
                  value <= maximum else { return false }
            rest = rest.dropFirst(2)
            return true
        }
        guard number(23), rest.first == ":" else { return false }
        rest = rest.dropFirst()
        guard number(59), rest.first == ":" else { return false }
        rest = rest.dropFirst()
        guard number(59) else { return false }
        if rest.first == "." {
            rest = rest.dropFirst()
            let fraction = rest.prefix { $0.isASCIIDigit }
            guard !fraction.isEmpty, iso || fraction.count <= 6 else { return false }
            rest = rest.dropFirst(fraction.count)
        }
        return iso ? rest == "Z" : rest.isEmpty
    }
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
