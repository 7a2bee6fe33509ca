import Foundation

/// Comparisons of values: numbers compare numerically across kinds, strings by Unicode scalar
/// order (their UTF-8 bytes), bools only with `=` and `!=`; null on either side gives null.
@usableFromInline
enum ValueComparison {
    @usableFromInline
    static func compare(_ op: BinaryOperator, _ lhs: ProjectionValue, _ rhs: ProjectionValue) throws(ExpressionError) -> ProjectionValue {
        if case .null = lhs { return .null }
        if case .null = rhs { return .null }
        if case .bool(let x) = lhs, case .bool(let y) = rhs {
            switch op {
            case .equal: return .bool(x == y)
            case .notEqual: return .bool(x != y)
            default: throw ExpressionError("cannot compare bool and bool with \(op.rawValue) (only = and !=)")
            }
        }
        let order = try ordering(lhs, rhs, operation: op.rawValue)
        switch op {
        case .equal: return .bool(order == 0)
        case .notEqual: return .bool(order != 0)
        case .less: return .bool(order < 0)
        case .lessOrEqual: return .bool(order <= 0)
        case .greater: return .bool(order > 0)
        default: return .bool(order >= 0)
        }
    }

    /// -1, 0 or 1 for two non-null numbers or two strings; `operation` names the caller in errors.
    static func ordering(_ lhs: ProjectionValue, _ rhs: ProjectionValue, operation: String) throws(ExpressionError) -> Int {
        switch (lhs, rhs) {
        case (.int(let x), .int(let y)):
            return x < y ? -1 : (x == y ? 0 : 1)
        case (.string(let x), .string(let y)):
            if x.utf8.elementsEqual(y.utf8) { return 0 }
            return x.utf8.lexicographicallyPrecedes(y.utf8) ? -1 : 1
        case (.double, _), (_, .double):
            guard let x = lhs.doubleValue, let y = rhs.doubleValue else { break }
            return x < y ? -1 : (x == y ? 0 : 1)
        default:
            guard let x = lhs.decimalValue, let y = rhs.decimalValue else { break }
            return x < y ? -1 : (x == y ? 0 : 1)
        }
        throw ExpressionError("cannot compare \(lhs.kindName) and \(rhs.kindName) with \(operation)")
    }
}
