/// Evaluates expressions against an `ExpressionContext`, with SQL-like semantics: null
/// propagates through arithmetic and comparisons, `and`/`or`/`not` are three-valued, integer
/// overflow and division by zero are errors (never traps), and mixing kinds follows
/// int -> decimal -> double promotion. Generic over the context so calls specialise.
public enum ExpressionEvaluator {
    public static func evaluate(_ expression: Expression, in context: some ExpressionContext) throws(ExpressionError) -> ProjectionValue {
        switch expression {
        case .literal(let value):
            return value
        case .field(let reference):
            return try context.value(of: reference)
        case .column(let name):
            return try context.value(ofColumn: name)
        case .lookup(let alias, let column):
            return try context.value(ofLookup: alias, column: column)
        case .unary(.negate, let operand):
            return try ValueArithmetic.negate(try evaluate(operand, in: context))
        case .unary(.not, let operand):
            return try not(try evaluate(operand, in: context))
        case .binary(.and, let left, let right):
            return try logical(isAnd: true, try evaluate(left, in: context)) { () throws(ExpressionError) in try evaluate(right, in: context) }
        case .binary(.or, let left, let right):
            return try logical(isAnd: false, try evaluate(left, in: context)) { () throws(ExpressionError) in try evaluate(right, in: context) }
        case .binary(let op, let left, let right):
            let lhs = try evaluate(left, in: context)
            let rhs = try evaluate(right, in: context)
            switch op {
            case .add, .subtract, .multiply, .divide:
                return try ValueArithmetic.apply(op, lhs, rhs)
            default:
                return try ValueComparison.compare(op, lhs, rhs)
            }
        case .call(let function, let arguments):
            return try call(function, count: arguments.count) { (index) throws(ExpressionError) in try evaluate(arguments[index], in: context) }
        }
    }

    /// Evaluates a condition (`when`, `if`): true only for `true`; null counts as false; any
    /// other kind is an error.
    public static func isTrue(_ expression: Expression, in context: some ExpressionContext) throws(ExpressionError) -> Bool {
        try isTrue(try evaluate(expression, in: context))
    }

    /// `true` -> true, `false` and null -> false, other kinds -> error.
    public static func isTrue(_ value: ProjectionValue) throws(ExpressionError) -> Bool {
        switch value {
        case .bool(let flag): return flag
        case .null: return false
        default: throw ExpressionError("a condition must be a bool, got \(value.kindName)")
        }
    }

    /// `not`: null stays null.
    @usableFromInline
    static func not(_ value: ProjectionValue) throws(ExpressionError) -> ProjectionValue {
        switch value {
        case .null: return .null
        case .bool(let flag): return .bool(!flag)
        case let other: throw ExpressionError("cannot apply 'not' to \(other.kindName)")
        }
    }

    /// Three-valued `and`/`or`, short-circuiting when the left side decides (`right` is not evaluated).
    @usableFromInline
    static func logical(isAnd: Bool, _ lhs: ProjectionValue,
                        _ right: () throws(ExpressionError) -> ProjectionValue) throws(ExpressionError) -> ProjectionValue {
        let name = isAnd ? "and" : "or"
        // false and x = false; true or x = true.
        if case .bool(let flag) = lhs, flag != isAnd { return lhs }
        let rhs = try right()
        switch (lhs, rhs) {
        case (.bool, .bool), (.null, .null):
            return rhs
        case (.null, .bool(let flag)), (.bool(let flag), .null):
            return flag == isAnd ? .null : .bool(flag)
        default:
            throw ExpressionError("cannot apply '\(name)' to \(lhs.kindName) and \(rhs.kindName)")
        }
    }
}
