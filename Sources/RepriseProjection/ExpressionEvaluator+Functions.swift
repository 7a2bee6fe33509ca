import Foundation

/// The built-in functions. Arguments are evaluated lazily where the function allows
/// (`coalesce` stops at the first non-null, `if` evaluates one branch).
extension ExpressionEvaluator {
    /// `argument(i)` evaluates the i-th of `count` arguments, only when the function needs it.
    @usableFromInline
    static func call(_ function: Function, count: Int,
                     _ argument: (Int) throws(ExpressionError) -> ProjectionValue) throws(ExpressionError) -> ProjectionValue {
        switch function {
        case .coalesce:
            for index in 0..<count {
                let value = try argument(index)
                if value != .null { return value }
            }
            return .null
        case .if:
            guard count == 3 else { throw arityError(function, count) }
            // Null chooses the else branch, like `when`.
            let chosen = try isTrue(try argument(0))
            return try argument(chosen ? 1 : 2)
        case .concat:
            var text = ""
            for index in 0..<count {
                let value = try argument(index)
                switch value {
                case .null: continue
                case .string(let part): text += part
                default: text += value.description
                }
            }
            return .string(text)
        case .greatest, .least:
            var best: ProjectionValue = .null
            for index in 0..<count {
                let value = try argument(index)
                if value == .null { continue }
                if best == .null {
                    best = value
                    continue
                }
                let order = try ValueComparison.ordering(value, best, operation: function.rawValue)
                if function == .greatest ? order > 0 : order < 0 { best = value }
            }
            return best
        case .date, .lower, .upper, .abs, .number:
            guard count == 1 else { throw arityError(function, count) }
            let value = try argument(0)
            return try unary(function, value)
        }
    }

    private static func unary(_ function: Function, _ value: ProjectionValue) throws(ExpressionError) -> ProjectionValue {
        if value == .null { return .null }
        switch function {
        case .abs:
            return try ValueArithmetic.absolute(value)
        case .number:
            switch value {
            case .int, .decimal, .double: return value
            case .string(let text):
                if let integer = Int64(text) { return .int(integer) }
                // Plain decimal notation only: digits, one point, an optional sign.
                if text.range(of: #"^[+-]?[0-9]+\.[0-9]+$"#, options: .regularExpression) != nil, let decimal = Decimal(string: text) {
                    return .decimal(decimal)
                }
                throw ExpressionError("number expects numeric text, got '\(text.prefix(40))'")
            default:
                throw ExpressionError("number expects a number or numeric text, got \(value.kindName)")
            }
        case .date:
            guard case .string(let text) = value, let day = datePart(of: text) else {
                let shown = value.isString ? "'\(value.description.prefix(40))'" : value.kindName
                throw ExpressionError("date expects a string starting with YYYY-MM-DD, got \(shown)")
            }
            return .string(day)
        default:
            guard case .string(let text) = value else {
                throw ExpressionError("\(function.rawValue) expects a string, got \(value.kindName)")
            }
            return .string(function == .lower ? text.lowercased() : text.uppercased())
        }
    }

    /// `YYYY-MM-DD` when the text starts with a plausible date (month 01-12, day 01-31).
    static func datePart(of text: String) -> String? {
        func plausible(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
            guard bytes.count >= 10 else { return false }
            var month = 0
            var day = 0
            for count in 0..<10 {
                let byte = bytes[count]
                if count == 4 || count == 7 {
                    guard byte == UInt8(ascii: "-") else { return false }
                } else {
                    guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return false }
                    let digit = Int(byte - UInt8(ascii: "0"))
                    if count == 5 || count == 6 { month = month * 10 + digit }
                    if count == 8 || count == 9 { day = day * 10 + digit }
                }
            }
            return (1...12).contains(month) && (1...31).contains(day)
        }
        // Checked and cut in one pass over the bytes. Byte-wise, so a combining mark after the
        // day cannot join the tenth character; ten ASCII bytes make a small string (no allocation).
        func part(_ bytes: UnsafeBufferPointer<UInt8>) -> String? {
            guard plausible(bytes) else { return nil }
            return bytes.count == 10 ? text : String(decoding: UnsafeBufferPointer(rebasing: bytes[..<10]), as: UTF8.self)
        }
        if let day = text.utf8.withContiguousStorageIfAvailable(part) { return day }
        return Array(text.utf8).withUnsafeBufferPointer(part)
    }

    private static func arityError(_ function: Function, _ count: Int) -> ExpressionError {
        ExpressionError("\(function.rawValue) got \(count) arguments")
    }
}
