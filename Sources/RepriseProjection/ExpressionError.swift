/// A problem with an expression: a syntax error found by `ExpressionParser` (with the offset of
/// the offending character) or a failure while evaluating one (type mismatch, overflow, division
/// by zero, a missing field reported by the context).
public struct ExpressionError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    /// Offset of the problem in the expression text, in Unicode scalars from 0; nil for errors
    /// found while evaluating.
    public var offset: Int?

    public init(_ message: String, offset: Int? = nil) {
        self.message = message
        self.offset = offset
    }

    /// `at column 7: expected a value` (columns count from 1), or the bare message.
    public var description: String {
        guard let offset else { return message }
        return "at column \(offset + 1): \(message)"
    }
}
