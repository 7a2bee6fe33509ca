/// Traversal of expression trees, for validation and for collecting what they read.
extension Expression {
    /// Calls `body` on this node and every node below it, parents first.
    func visit<Failure: Error>(_ body: (Expression) throws(Failure) -> Void) throws(Failure) {
        try body(self)
        switch self {
        case .literal, .field, .column, .lookup:
            break
        case .unary(_, let operand):
            try operand.visit(body)
        case .binary(_, let left, let right):
            try left.visit(body)
            try right.visit(body)
        case .call(_, let arguments):
            for argument in arguments { try argument.visit(body) }
        }
    }
}
