import Foundation

/// `+ - * /`, unary minus and `abs` on values. Int stays int (overflow is an error), int with
/// decimal is decimal, anything with double is double; int / int is decimal so `7 / 2` is 3.5.
@usableFromInline
enum ValueArithmetic {
    @usableFromInline
    static func apply(_ op: BinaryOperator, _ lhs: ProjectionValue, _ rhs: ProjectionValue) throws(ExpressionError) -> ProjectionValue {
        switch (lhs, rhs) {
        case (.null, _), (_, .null):
            return .null
        case (.int(let x), .int(let y)):
            return try integer(op, x, y)
        case (.double, _), (_, .double):
            guard let x = lhs.doubleValue, let y = rhs.doubleValue else { throw mismatch(op, lhs, rhs) }
            return try double(op, x, y)
        default:
            guard let x = lhs.decimalValue, let y = rhs.decimalValue else { throw mismatch(op, lhs, rhs) }
            return try decimal(op, x, y)
        }
    }

    @usableFromInline
    static func negate(_ value: ProjectionValue) throws(ExpressionError) -> ProjectionValue {
        switch value {
        case .null: return .null
        case .int(let x):
            let (result, overflow) = Int64(0).subtractingReportingOverflow(x)
            if overflow { throw ExpressionError("integer overflow in unary -") }
            return .int(result)
        case .decimal(let x): return .decimal(-x)
        case .double(let x): return .double(-x)
        default: throw ExpressionError("cannot negate \(value.kindName)")
        }
    }

    static func absolute(_ value: ProjectionValue) throws(ExpressionError) -> ProjectionValue {
        switch value {
        case .null: return .null
        case .int(let x):
            guard x != .min else { throw ExpressionError("integer overflow in abs") }
            return .int(Swift.abs(x))
        case .decimal(let x): return .decimal(x < 0 ? -x : x)
        case .double(let x): return .double(Swift.abs(x))
        default: throw ExpressionError("abs expects a number, got \(value.kindName)")
        }
    }

    private static func integer(_ op: BinaryOperator, _ x: Int64, _ y: Int64) throws(ExpressionError) -> ProjectionValue {
        let (result, overflow): (Int64, Bool)
        switch op {
        case .add: (result, overflow) = x.addingReportingOverflow(y)
        case .subtract: (result, overflow) = x.subtractingReportingOverflow(y)
        case .multiply: (result, overflow) = x.multipliedReportingOverflow(by: y)
        default: return try decimal(op, Decimal(x), Decimal(y))
        }
        if overflow { throw ExpressionError("integer overflow in \(x) \(op.rawValue) \(y)") }
        return .int(result)
    }

    private static func decimal(_ op: BinaryOperator, _ x: Decimal, _ y: Decimal) throws(ExpressionError) -> ProjectionValue {
        let result: Decimal
        switch op {
        case .add: result = x + y
        case .subtract: result = x - y
        case .multiply: result = x * y
        default:
            if y.isZero { throw ExpressionError("division by zero") }
            result = x / y
        }
        // Foundation signals overflow with NaN.
        if result.isNaN { throw ExpressionError("decimal overflow in \(op.rawValue)") }
        return .decimal(result)
    }

    private static func double(_ op: BinaryOperator, _ x: Double, _ y: Double) throws(ExpressionError) -> ProjectionValue {
        let result: Double
        switch op {
        case .add: result = x + y
        case .subtract: result = x - y
        case .multiply: result = x * y
        default:
            if y == 0 { throw ExpressionError("division by zero") }
            result = x / y
        }
        // MySQL cannot store infinities or NaN.
        if !result.isFinite { throw ExpressionError("result of \(op.rawValue) is not a finite number") }
        return .double(result)
    }

    private static func mismatch(_ op: BinaryOperator, _ lhs: ProjectionValue, _ rhs: ProjectionValue) -> ExpressionError {
        let (a, b) = (lhs.kindName, rhs.kindName)
        switch op {
        case .add:
            let hint = lhs.isString && rhs.isString ? " (use concat to join strings)" : ""
            return ExpressionError("cannot add \(a) and \(b)\(hint)")
        case .subtract: return ExpressionError("cannot subtract \(b) from \(a)")
        case .multiply: return ExpressionError("cannot multiply \(a) and \(b)")
        default: return ExpressionError("cannot divide \(a) by \(b)")
        }
    }
}
