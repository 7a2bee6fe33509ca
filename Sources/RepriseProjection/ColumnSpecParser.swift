/// Reads column declarations: the short form `TYPE [not null | null] [default LITERAL]` and the
/// type and default of the long form. Uses the expression lexer, so literals are written the same
/// way as in expressions (`'text'`, `12.50`, `-1`, `true`, `null`).
enum ColumnSpecParser {
    /// A problem with a column declaration; the caller adds the file and path.
    struct Failure: Error {
        var message: String
    }

    /// The parts of a short-form declaration.
    struct Declaration {
        var type: ColumnType
        var nullable: Bool?
        var defaultValue: ProjectionValue?
    }

    static let typeNames = "int, bigint, decimal(p,s), double, varchar(n), text, bool, boolean, date, datetime, json"

    static func parseDeclaration(_ text: String) throws(Failure) -> Declaration {
        var tokens = try tokenize(text)[...]
        let type = try parseType(&tokens)
        var declaration = Declaration(type: type)
        while let token = tokens.first, token.kind != .end {
            tokens.removeFirst()
            switch word(token) {
            case "not":
                guard let next = tokens.first, word(next) == "null" else {
                    throw Failure(message: "expected 'null' after 'not' at column \(token.offset + 1)")
                }
                tokens.removeFirst()
                try setNullable(false, &declaration)
            case "null":
                try setNullable(true, &declaration)
            case "default":
                guard declaration.defaultValue == nil else { throw Failure(message: "default is given twice") }
                declaration.defaultValue = try parseLiteral(&tokens)
            default:
                throw Failure(message: "unexpected '\(token.display)' at column \(token.offset + 1) (expected not null, null or default)")
            }
        }
        return declaration
    }

    /// A type alone, as in the long form's `type:`.
    static func parseTypeOnly(_ text: String) throws(Failure) -> ColumnType {
        var tokens = try tokenize(text)[...]
        let type = try parseType(&tokens)
        if let token = tokens.first, token.kind != .end {
            throw Failure(message: "unexpected '\(token.display)' after the type (use the short form or nullable:/default: keys)")
        }
        return type
    }

    /// A default literal as in the long form's `default:`.
    static func parseDefault(_ text: String) throws(Failure) -> ProjectionValue {
        var tokens = try tokenize(text)[...]
        let value = try parseLiteral(&tokens)
        if let token = tokens.first, token.kind != .end {
            throw Failure(message: "unexpected '\(token.display)' after the default value")
        }
        return value
    }

    private static func setNullable(_ nullable: Bool, _ declaration: inout Declaration) throws(Failure) {
        guard declaration.nullable == nil else { throw Failure(message: "say either 'null' or 'not null', once") }
        declaration.nullable = nullable
    }

    private static func tokenize(_ text: String) throws(Failure) -> [ExpressionToken] {
        do {
            return try ExpressionLexer.tokenize(text)
        } catch {
            throw Failure(message: "\(error)")
        }
    }

    private static func word(_ token: ExpressionToken) -> String? {
        if case .identifier(let name) = token.kind { return name.lowercased() }
        return nil
    }

    private static func parseType(_ tokens: inout ArraySlice<ExpressionToken>) throws(Failure) -> ColumnType {
        guard let first = tokens.first, let name = word(first) else {
            throw Failure(message: "expected a column type (\(typeNames))")
        }
        tokens.removeFirst()
        var arguments: [Int] = []
        if tokens.first?.kind == .leftParen {
            tokens.removeFirst()
            while true {
                guard let token = tokens.first, case .integer(let digits) = token.kind, let number = Int(digits) else {
                    throw Failure(message: "expected a number in \(name)(...)")
                }
                tokens.removeFirst()
                arguments.append(number)
                guard tokens.first?.kind == .comma else { break }
                tokens.removeFirst()
            }
            guard tokens.first?.kind == .rightParen else { throw Failure(message: "expected ')' after \(name)(...") }
            tokens.removeFirst()
        }
        return try makeType(name, arguments)
    }

    private static func makeType(_ name: String, _ arguments: [Int]) throws(Failure) -> ColumnType {
        let simple: [String: ColumnType] = [
            "int": .int, "bigint": .bigint, "double": .double, "text": .text, "bool": .bool,
            "boolean": .bool, "date": .date, "datetime": .datetime, "json": .json,
        ]
        if let type = simple[name] {
            guard arguments.isEmpty else { throw Failure(message: "type \(name) takes no size") }
            return type
        }
        switch name {
        case "varchar":
            guard arguments.count == 1 else { throw Failure(message: "varchar needs a length, like varchar(64)") }
            guard (1...16383).contains(arguments[0]) else {
                throw Failure(message: "varchar length must be 1 to 16383, got \(arguments[0]) (use text for longer values)")
            }
            return .varchar(length: arguments[0])
        case "decimal":
            guard (1...2).contains(arguments.count) else {
                throw Failure(message: "decimal needs a precision and scale, like decimal(12,2)")
            }
            let precision = arguments[0]
            let scale = arguments.count == 2 ? arguments[1] : 0
            guard (1...65).contains(precision) else { throw Failure(message: "decimal precision must be 1 to 65, got \(precision)") }
            guard (0...30).contains(scale) else { throw Failure(message: "decimal scale must be 0 to 30, got \(scale)") }
            guard scale <= precision else { throw Failure(message: "decimal scale \(scale) is larger than its precision \(precision)") }
            return .decimal(precision: precision, scale: scale)
        default:
            throw Failure(message: "unknown column type '\(name)'\(Suggestion.didYouMean(name, among: simple.keys.sorted() + ["varchar", "decimal"])) (types: \(typeNames))")
        }
    }

    private static func parseLiteral(_ tokens: inout ArraySlice<ExpressionToken>) throws(Failure) -> ProjectionValue {
        guard let token = tokens.first, token.kind != .end else {
            throw Failure(message: "expected a value after 'default'")
        }
        tokens.removeFirst()
        switch token.kind {
        case .string(let text):
            return .string(text)
        case .identifier(let name) where ["true", "false", "null"].contains(name.lowercased()):
            switch name.lowercased() {
            case "true": return .bool(true)
            case "false": return .bool(false)
            default: return .null
            }
        case .minus:
            guard let number = tokens.first, let value = numericLiteral(number, negative: true) else {
                throw Failure(message: "expected a number after '-' at column \(token.offset + 1)")
            }
            tokens.removeFirst()
            return value
        default:
            if let value = numericLiteral(token, negative: false) { return value }
            throw Failure(message: "default must be a literal like 0, 12.50, 'text', true or null; found '\(token.display)'")
        }
    }

    private static func numericLiteral(_ token: ExpressionToken, negative: Bool) -> ProjectionValue? {
        let text: String
        switch token.kind {
        case .integer(let digits), .decimal(let digits): text = negative ? "-" + digits : digits
        default: return nil
        }
        return ProjectionValue(jsonNumberText: text)
    }
}
