/// A token of the expression language, with the offset where it starts.
struct ExpressionToken: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        /// Digits only; the parser decides between `.int` and `.decimal`.
        case integer(String)
        /// `digits.digits`
        case decimal(String)
        /// A single-quoted string, quotes removed and `''` unescaped.
        case string(String)
        /// A bare word: keyword, function name or column name (case preserved).
        case identifier(String)
        /// `payload.a.b`, `metadata.x`, `event.position`, `item.sku`, `item`.
        case reference(FieldReference)
        /// `alias.column`: a column of a lookup's row.
        case lookupColumn(alias: String, column: String)
        case leftParen, rightParen, comma
        case plus, minus, star, slash
        case equal, notEqual, less, lessOrEqual, greater, greaterOrEqual
        case end
    }

    var kind: Kind
    var offset: Int

    /// How the token is shown in messages.
    var display: String {
        switch kind {
        case .integer(let text), .decimal(let text): text
        case .string(let text): "'\(text.replacingOccurrences(of: "'", with: "''"))'"
        case .identifier(let name): name
        case .reference(let reference): reference.description
        case .lookupColumn(let alias, let column): "\(alias).\(column)"
        case .leftParen: "("
        case .rightParen: ")"
        case .comma: ","
        case .plus: "+"
        case .minus: "-"
        case .star: "*"
        case .slash: "/"
        case .equal: "="
        case .notEqual: "!="
        case .less: "<"
        case .lessOrEqual: "<="
        case .greater: ">"
        case .greaterOrEqual: ">="
        case .end: "end of expression"
        }
    }
}
