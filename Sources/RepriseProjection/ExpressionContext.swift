/// What an expression reads while it is evaluated: the event's fields (payload, metadata,
/// envelope, the current `for_each` element) and the current row's columns. The engine
/// implements it over its decoded events and its row cache.
public protocol ExpressionContext {
    /// The value at a field reference; `.null` for a missing field (JSON semantics), or an error
    /// when the reference cannot be served (for example `item.x` outside `for_each`).
    func value(of field: FieldReference) throws(ExpressionError) -> ProjectionValue
    /// The current row's value of a column (its default when the row does not exist yet).
    func value(ofColumn name: String) throws(ExpressionError) -> ProjectionValue
    /// A column of a lookup's row (`ord.customer_id`); null when the row does not exist.
    func value(ofLookup alias: String, column: String) throws(ExpressionError) -> ProjectionValue
}

public extension ExpressionContext {
    /// Contexts without lookups (tests, checks) refuse them.
    func value(ofLookup alias: String, column: String) throws(ExpressionError) -> ProjectionValue {
        throw ExpressionError("lookup '\(alias)' is not available here")
    }
}
