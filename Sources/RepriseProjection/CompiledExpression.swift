/// An expression resolved once against what it reads: columns become row slots and field
/// references become indexes into a table of fields the caller keeps, so evaluating it for an
/// event hashes no names. It means exactly what its `Expression` means: `ExpressionEvaluator`
/// evaluates both with the same arithmetic, comparisons and functions.
public indirect enum CompiledExpression: Sendable {
    case literal(ProjectionValue)
    /// Index into the caller's field table (`CompiledExpression.init(_:field:column:)`).
    case field(Int)
    /// Slot of a column in the current row; nil when the table has no such column (reads null).
    case column(Int?)
    case lookup(alias: String, column: String)
    case negate(CompiledExpression)
    case not(CompiledExpression)
    case logical(isAnd: Bool, CompiledExpression, CompiledExpression)
    case arithmetic(BinaryOperator, CompiledExpression, CompiledExpression)
    case comparison(BinaryOperator, CompiledExpression, CompiledExpression)
    case call(Function, [CompiledExpression])

    /// Compiles `expression`: `field` gives the index a field reference reads (the caller
    /// numbers them), `column` the slot of a column name (nil: no such column).
    public init(_ expression: Expression, field: (FieldReference) -> Int, column: (String) -> Int?) {
        func compile(_ expression: Expression) -> CompiledExpression {
            switch expression {
            case .literal(let value): .literal(value)
            case .field(let reference): .field(field(reference))
            case .column(let name): .column(column(name))
            case .lookup(let alias, let name): .lookup(alias: alias, column: name)
            case .unary(.negate, let operand): .negate(compile(operand))
            case .unary(.not, let operand): .not(compile(operand))
            case .binary(.and, let left, let right): .logical(isAnd: true, compile(left), compile(right))
            case .binary(.or, let left, let right): .logical(isAnd: false, compile(left), compile(right))
            case .binary(let op, let left, let right):
                switch op {
                case .add, .subtract, .multiply, .divide: .arithmetic(op, compile(left), compile(right))
                default: .comparison(op, compile(left), compile(right))
                }
            case .call(let function, let arguments): .call(function, arguments.map(compile))
            }
        }
        self = compile(expression)
    }
}

/// What a compiled expression reads: fields by index, the current row by slot, lookups by name.
public protocol CompiledExpressionContext {
    /// The value of field `index` of the caller's field table; `.null` for a missing field.
    func value(ofField index: Int) throws(ExpressionError) -> ProjectionValue
    /// The current row's value in `slot` (its default when the row does not exist yet).
    func value(ofColumn slot: Int) -> ProjectionValue
    /// A column of a lookup's row; null when the row does not exist.
    func value(ofLookup alias: String, column: String) throws(ExpressionError) -> ProjectionValue
}

extension ExpressionEvaluator {
    /// Evaluates a compiled expression; the same results and errors as `evaluate(_:in:)` on the
    /// expression it was compiled from. Inlinable: the engine specializes it for its context,
    /// so reading a field or a row slot is a direct call, not one through a witness table.
    @inlinable
    public static func evaluate(_ expression: CompiledExpression, in context: some CompiledExpressionContext) throws(ExpressionError) -> ProjectionValue {
        switch expression {
        case .literal(let value):
            return value
        case .field(let index):
            return try context.value(ofField: index)
        case .column(let slot):
            guard let slot else { return .null }
            return context.value(ofColumn: slot)
        case .lookup(let alias, let column):
            return try context.value(ofLookup: alias, column: column)
        case .negate(let operand):
            return try ValueArithmetic.negate(try evaluate(operand, in: context))
        case .not(let operand):
            return try not(try evaluate(operand, in: context))
        case .logical(let isAnd, let left, let right):
            return try logical(isAnd: isAnd, try evaluate(left, in: context)) { () throws(ExpressionError) in try evaluate(right, in: context) }
        case .arithmetic(let op, let left, let right):
            let lhs = try evaluate(left, in: context)
            return try ValueArithmetic.apply(op, lhs, try evaluate(right, in: context))
        case .comparison(let op, let left, let right):
            let lhs = try evaluate(left, in: context)
            return try ValueComparison.compare(op, lhs, try evaluate(right, in: context))
        case .call(let function, let arguments):
            return try call(function, count: arguments.count) { (index) throws(ExpressionError) in try evaluate(arguments[index], in: context) }
        }
    }
}
