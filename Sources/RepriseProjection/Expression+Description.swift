import Foundation

/// Prints an expression back in the syntax `ExpressionParser` reads, with only the parentheses
/// precedence needs. Parsing the text again gives the same tree for every tree the parser makes
/// (hand-built trees with `.double` literals print as decimals).
extension Expression: CustomStringConvertible {
    public var description: String { printed.text }

    /// Binding strength, higher binds tighter; matches the parser's levels.
    private enum Level: Int, Comparable {
        case or = 1, and, not, comparison, additive, multiplicative, unary, primary
        static func < (lhs: Level, rhs: Level) -> Bool { lhs.rawValue < rhs.rawValue }
    }

    private var printed: (text: String, level: Level) {
        switch self {
        case .literal(let value):
            let text = Self.literalText(value)
            return (text, text.hasPrefix("-") ? .unary : .primary)
        case .field(let reference):
            return (reference.description, .primary)
        case .column(let name):
            return (name, .primary)
        case .lookup(let alias, let column):
            return ("\(alias).\(column)", .primary)
        case .call(let function, let arguments):
            return ("\(function.rawValue)(\(arguments.map(\.description).joined(separator: ", ")))", .primary)
        case .unary(.not, let operand):
            let inner = operand.printed
            return ("not " + (inner.level < .not ? "(\(inner.text))" : inner.text), .not)
        case .unary(.negate, let operand):
            let inner = operand.printed
            // `--x` would read as two minus signs either way, but parentheses are clearer.
            let wrap = inner.level < .unary || inner.text.hasPrefix("-")
            return ("-" + (wrap ? "(\(inner.text))" : inner.text), .unary)
        case .binary(let op, let left, let right):
            let level = Self.level(of: op)
            let lhs = left.printed
            let rhs = right.printed
            // Left-associative operators; comparisons do not chain, so both sides need a
            // tighter level there.
            let wrapLeft = level == .comparison ? lhs.level <= level : lhs.level < level
            let leftText = wrapLeft ? "(\(lhs.text))" : lhs.text
            let rightText = rhs.level <= level ? "(\(rhs.text))" : rhs.text
            return ("\(leftText) \(op.rawValue) \(rightText)", level)
        }
    }

    private static func level(of op: BinaryOperator) -> Level {
        switch op {
        case .or: .or
        case .and: .and
        case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual: .comparison
        case .add, .subtract: .additive
        case .multiply, .divide: .multiplicative
        }
    }

    /// A literal in expression syntax: strings quoted, decimals always with a point.
    static func literalText(_ value: ProjectionValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .int(let number): return String(number)
        case .decimal(let number):
            let text = number.description
            return text.contains(".") ? text : text + ".0"
        case .double(let number):
            // Shortest round-trip text, written out without an exponent when Decimal can hold it.
            let text = String(number)
            guard number.isFinite, text.contains("e"),
                  let exact = Decimal(string: text, locale: ExpressionParser.posix) else { return text }
            return literalText(.decimal(exact))
        case .string(let text):
            return "'" + text.replacingOccurrences(of: "'", with: "''") + "'"
        }
    }
}
