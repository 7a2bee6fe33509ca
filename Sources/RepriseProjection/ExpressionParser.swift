import Foundation

/// Parses the expression language of projection files into `Expression` trees.
///
/// Precedence, lowest first: `or`, `and`, `not`, comparisons (`= != <> < <= > >=`, which do not
/// chain), `+ -`, `* /`, unary `-`. Literals: integers, decimals (`12.50`), `'strings'` (`''`
/// for a quote), `true`, `false`, `null`. References: `payload.a.b`, `payload.items.0.sku`,
/// `metadata.x`, `event.position` (and the other envelope fields), `item.x` inside `for_each`,
/// bare lowercase names for columns of the current row, and `alias.column` for a lookup's row. Functions: coalesce, date, concat,
/// lower, upper, greatest, least, abs, if. Keywords and function names are case-insensitive.
public enum ExpressionParser {
    /// Deeper trees are refused rather than risking the stack on hostile input (evaluation,
    /// printing and releasing a tree all recurse).
    static let maximumDepth = 100

    public static func parse(_ text: String) throws(ExpressionError) -> Expression {
        var state = State(tokens: try ExpressionLexer.tokenize(text))
        let expression = try state.parseExpression()
        let token = state.current
        guard token.kind == .end else {
            throw ExpressionError("unexpected '\(token.display)' after a complete expression", offset: token.offset)
        }
        return expression
    }

    /// How many arguments each function takes: an exact count, or a minimum.
    static func arity(of function: Function) -> (minimum: Int, maximum: Int?) {
        switch function {
        case .coalesce, .concat, .greatest, .least: (1, nil)
        case .date, .lower, .upper, .abs, .number: (1, 1)
        case .if: (3, 3)
        }
    }

    /// An expression with the height of its tree, so deep trees (which would recurse deeply when
    /// evaluated, printed or released) are refused while parsing.
    private struct Parsed {
        var expression: Expression
        var height: Int
    }

    private struct State {
        let tokens: [ExpressionToken]
        var position = 0
        /// Open parentheses, calls and prefix operators around the current token: checked on the
        /// way down, because the height check only runs on the way back up.
        var nesting = 0

        var current: ExpressionToken { tokens[position] }

        mutating func advance() {
            if position < tokens.count - 1 { position += 1 }
        }

        func isKeyword(_ keyword: String) -> Bool {
            if case .identifier(let word) = current.kind { return word.lowercased() == keyword }
            return false
        }

        mutating func enter() throws(ExpressionError) {
            nesting += 1
            if nesting > ExpressionParser.maximumDepth {
                throw ExpressionError("expression is nested too deeply (at most \(ExpressionParser.maximumDepth) levels)", offset: current.offset)
            }
        }

        func node(_ expression: Expression, over children: Parsed..., at offset: Int) throws(ExpressionError) -> Parsed {
            let height = 1 + (children.map(\.height).max() ?? 0)
            if height > ExpressionParser.maximumDepth {
                throw ExpressionError("expression is nested too deeply (at most \(ExpressionParser.maximumDepth) levels)", offset: offset)
            }
            return Parsed(expression: expression, height: height)
        }

        mutating func parseExpression() throws(ExpressionError) -> Expression {
            try parseOr().expression
        }

        mutating func parseOr() throws(ExpressionError) -> Parsed {
            var left = try parseAnd()
            while isKeyword("or") {
                let offset = current.offset
                advance()
                let right = try parseAnd()
                left = try node(.binary(.or, left.expression, right.expression), over: left, right, at: offset)
            }
            return left
        }

        mutating func parseAnd() throws(ExpressionError) -> Parsed {
            var left = try parseNot()
            while isKeyword("and") {
                let offset = current.offset
                advance()
                let right = try parseNot()
                left = try node(.binary(.and, left.expression, right.expression), over: left, right, at: offset)
            }
            return left
        }

        mutating func parseNot() throws(ExpressionError) -> Parsed {
            guard isKeyword("not") else { return try parseComparison() }
            let offset = current.offset
            advance()
            try enter()
            let operand = try parseNot()
            nesting -= 1
            return try node(.unary(.not, operand.expression), over: operand, at: offset)
        }

        mutating func parseComparison() throws(ExpressionError) -> Parsed {
            let left = try parseAdditive()
            guard let op = comparisonOperator() else { return left }
            let offset = current.offset
            advance()
            let right = try parseAdditive()
            if comparisonOperator() != nil {
                throw ExpressionError("comparisons do not chain; use 'and' or parentheses", offset: current.offset)
            }
            return try node(.binary(op, left.expression, right.expression), over: left, right, at: offset)
        }

        func comparisonOperator() -> BinaryOperator? {
            switch current.kind {
            case .equal: .equal
            case .notEqual: .notEqual
            case .less: .less
            case .lessOrEqual: .lessOrEqual
            case .greater: .greater
            case .greaterOrEqual: .greaterOrEqual
            default: nil
            }
        }

        mutating func parseAdditive() throws(ExpressionError) -> Parsed {
            var left = try parseMultiplicative()
            while true {
                let op: BinaryOperator
                switch current.kind {
                case .plus: op = .add
                case .minus: op = .subtract
                default: return left
                }
                let offset = current.offset
                advance()
                let right = try parseMultiplicative()
                left = try node(.binary(op, left.expression, right.expression), over: left, right, at: offset)
            }
        }

        mutating func parseMultiplicative() throws(ExpressionError) -> Parsed {
            var left = try parseUnary()
            while true {
                let op: BinaryOperator
                switch current.kind {
                case .star: op = .multiply
                case .slash: op = .divide
                default: return left
                }
                let offset = current.offset
                advance()
                let right = try parseUnary()
                left = try node(.binary(op, left.expression, right.expression), over: left, right, at: offset)
            }
        }

        mutating func parseUnary() throws(ExpressionError) -> Parsed {
            guard current.kind == .minus else { return try parsePrimary() }
            let offset = current.offset
            advance()
            try enter()
            let operand = try parseUnary()
            nesting -= 1
            // Folding keeps `-5` a literal, so printing and hashing see one canonical form.
            switch operand.expression {
            case .literal(.int(let value)):
                let (negated, overflow) = Int64(0).subtractingReportingOverflow(value)
                if !overflow { return Parsed(expression: .literal(.int(negated)), height: 1) }
            case .literal(.decimal(let value)):
                return Parsed(expression: .literal(.decimal(-value)), height: 1)
            default:
                break
            }
            return try node(.unary(.negate, operand.expression), over: operand, at: offset)
        }

        mutating func parsePrimary() throws(ExpressionError) -> Parsed {
            let token = current
            switch token.kind {
            case .integer(let text):
                advance()
                if let value = Int64(text) { return Parsed(expression: .literal(.int(value)), height: 1) }
                // Too large for BIGINT: keep it exact as a decimal.
                return Parsed(expression: .literal(.decimal(try decimal(text, at: token.offset))), height: 1)
            case .decimal(let text):
                advance()
                return Parsed(expression: .literal(.decimal(try decimal(text, at: token.offset))), height: 1)
            case .string(let text):
                advance()
                return Parsed(expression: .literal(.string(text)), height: 1)
            case .reference(let reference):
                advance()
                return Parsed(expression: .field(reference), height: 1)
            case .lookupColumn(let alias, let column):
                advance()
                return Parsed(expression: .lookup(alias: alias, column: column), height: 1)
            case .leftParen:
                advance()
                // Parentheses only group: they add no node, but count toward the depth limit.
                try enter()
                let inner = try parseOr()
                nesting -= 1
                guard current.kind == .rightParen else {
                    throw ExpressionError(
                        "expected ')' to close '(' at column \(token.offset + 1), found '\(current.display)'",
                        offset: current.offset)
                }
                advance()
                return try node(inner.expression, over: inner, at: token.offset)
            case .identifier(let word):
                advance()
                if current.kind == .leftParen {
                    return try parseCall(name: word, at: token.offset)
                }
                return Parsed(expression: try parseWord(word, at: token.offset), height: 1)
            case .end:
                throw ExpressionError("expected a value, found end of expression", offset: token.offset)
            default:
                throw ExpressionError("expected a value, found '\(token.display)'", offset: token.offset)
            }
        }

        func decimal(_ text: String, at offset: Int) throws(ExpressionError) -> Decimal {
            guard let value = Decimal(string: text, locale: ExpressionParser.posix), !value.isNaN else {
                throw ExpressionError("number \(text) is out of range", offset: offset)
            }
            return value
        }

        func parseWord(_ word: String, at offset: Int) throws(ExpressionError) -> Expression {
            switch word.lowercased() {
            case "true": return .literal(.bool(true))
            case "false": return .literal(.bool(false))
            case "null": return .literal(.null)
            case "and", "or", "not":
                throw ExpressionError("expected a value, found '\(word)'", offset: offset)
            default:
                break
            }
            guard ProjectionIdentifiers.isExpressionColumnName(word) else {
                throw ExpressionError("unknown name '\(word)' (column names are lowercase)", offset: offset)
            }
            return .column(word)
        }

        mutating func parseCall(name: String, at offset: Int) throws(ExpressionError) -> Parsed {
            guard let function = Function(rawValue: name.lowercased()) else {
                let known = Function.allCases.map(\.rawValue).joined(separator: ", ")
                throw ExpressionError("unknown function '\(name)' (known: \(known))", offset: offset)
            }
            advance()  // (
            try enter()
            defer { nesting -= 1 }
            var arguments: [Expression] = []
            var height = 0
            if current.kind != .rightParen {
                while true {
                    let argument = try parseOr()
                    arguments.append(argument.expression)
                    height = max(height, argument.height)
                    guard current.kind == .comma else { break }
                    advance()
                }
            }
            guard current.kind == .rightParen else {
                throw ExpressionError(
                    "expected ',' or ')' in the arguments of \(function.rawValue), found '\(current.display)'",
                    offset: current.offset)
            }
            advance()
            let (minimum, maximum) = ExpressionParser.arity(of: function)
            if let maximum, minimum == maximum, arguments.count != minimum {
                let noun = minimum == 1 ? "argument" : "arguments"
                throw ExpressionError(
                    "\(function.rawValue) takes \(minimum) \(noun), got \(arguments.count)", offset: offset)
            }
            if arguments.count < minimum {
                throw ExpressionError("\(function.rawValue) needs at least \(minimum) argument", offset: offset)
            }
            return try node(.call(function, arguments), over: Parsed(expression: .literal(.null), height: height), at: offset)
        }
    }

    static let posix = Locale(identifier: "en_US_POSIX")
}
