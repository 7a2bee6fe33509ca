/// Splits expression text into tokens. Works on Unicode scalars so offsets in messages match
/// what a reader counts; field paths (`payload.items.0.sku`) are read whole here because their
/// segments may start with digits, which would otherwise lex as numbers.
struct ExpressionLexer {
    private let scalars: [Unicode.Scalar]
    private var index = 0

    init(_ text: String) {
        scalars = Array(text.unicodeScalars)
    }

    static func tokenize(_ text: String) throws(ExpressionError) -> [ExpressionToken] {
        var lexer = ExpressionLexer(text)
        var tokens: [ExpressionToken] = []
        while true {
            let token = try lexer.next()
            tokens.append(token)
            if token.kind == .end { return tokens }
        }
    }

    private func peek(_ ahead: Int = 0) -> Unicode.Scalar? {
        let position = index + ahead
        return position < scalars.count ? scalars[position] : nil
    }

    mutating func next() throws(ExpressionError) -> ExpressionToken {
        while let scalar = peek(), scalar == " " || scalar == "\t" || scalar == "\n" || scalar == "\r" {
            index += 1
        }
        let start = index
        guard let scalar = peek() else { return ExpressionToken(kind: .end, offset: start) }
        index += 1
        let kind: ExpressionToken.Kind
        switch scalar {
        case "(": kind = .leftParen
        case ")": kind = .rightParen
        case ",": kind = .comma
        case "+": kind = .plus
        case "-": kind = .minus
        case "*": kind = .star
        case "/": kind = .slash
        case "=":
            if peek() == "=" { throw ExpressionError("use '=' to compare, not '=='", offset: start) }
            kind = .equal
        case "!":
            guard peek() == "=" else { throw ExpressionError("unexpected '!' (use 'not' or '!=')", offset: start) }
            index += 1
            kind = .notEqual
        case "<":
            if peek() == "=" {
                index += 1
                kind = .lessOrEqual
            } else if peek() == ">" {
                index += 1
                kind = .notEqual
            } else {
                kind = .less
            }
        case ">":
            if peek() == "=" {
                index += 1
                kind = .greaterOrEqual
            } else {
                kind = .greater
            }
        case "'":
            kind = .string(try readString(start: start))
        case "0"..."9":
            kind = try readNumber()
        default:
            guard Self.isIdentifierStart(scalar) else {
                throw ExpressionError("unexpected character \(Self.show(scalar))", offset: start)
            }
            kind = try readWord(start: start)
        }
        return ExpressionToken(kind: kind, offset: start)
    }

    private mutating func readString(start: Int) throws(ExpressionError) -> String {
        var text = String.UnicodeScalarView()
        while let scalar = peek() {
            index += 1
            if scalar == "'" {
                // '' inside a string is one quote.
                guard peek() == "'" else { return String(text) }
                index += 1
            }
            text.append(scalar)
        }
        throw ExpressionError("unterminated string (strings are 'single quoted')", offset: start)
    }

    private mutating func readNumber() throws(ExpressionError) -> ExpressionToken.Kind {
        let start = index - 1
        while let scalar = peek(), Self.isDigit(scalar) { index += 1 }
        guard peek() == "." else {
            if let scalar = peek(), Self.isIdentifierStart(scalar) {
                throw ExpressionError("unexpected \(Self.show(scalar)) after a number", offset: index)
            }
            return .integer(text(from: start))
        }
        index += 1
        guard let first = peek(), Self.isDigit(first) else {
            throw ExpressionError("expected digits after the decimal point", offset: index)
        }
        while let scalar = peek(), Self.isDigit(scalar) { index += 1 }
        if let scalar = peek(), Self.isIdentifierStart(scalar) || scalar == "." {
            throw ExpressionError("unexpected \(Self.show(scalar)) after a number", offset: index)
        }
        return .decimal(text(from: start))
    }

    private mutating func readWord(start: Int) throws(ExpressionError) -> ExpressionToken.Kind {
        while let scalar = peek(), Self.isIdentifierPart(scalar) { index += 1 }
        let word = text(from: start)
        switch word {
        case "payload":
            return .reference(.payload(try readPath(after: word, start: start)))
        case "metadata":
            return .reference(.metadata(try readPath(after: word, start: start)))
        case "item":
            // Bare `item` is the element itself (for arrays of scalars).
            return .reference(.item(peek() == "." ? try readPath(after: word, start: start) : []))
        case "event":
            guard peek() == "." else {
                throw ExpressionError("'event' needs a field, like event.position", offset: start)
            }
            let (fieldStart, name) = readNameAfterDot()
            guard let field = EnvelopeField(rawValue: name) else {
                let known = EnvelopeField.allCases.map(\.rawValue).joined(separator: ", ")
                throw ExpressionError("unknown event field '\(name)' (expected one of: \(known))", offset: fieldStart)
            }
            if peek() == "." {
                throw ExpressionError("event.\(name) has no fields", offset: index)
            }
            return .reference(.envelope(field))
        default:
            guard peek() == "." else { return .identifier(word) }
            // `alias.column`: a lookup's row (which aliases exist is checked by the file's validation).
            let (columnStart, column) = readNameAfterDot()
            guard !column.isEmpty else {
                throw ExpressionError("expected a column name after '\(word).'", offset: columnStart)
            }
            if peek() == "." {
                throw ExpressionError("\(word).\(column) is a column of a lookup: it has no fields", offset: index)
            }
            return .lookupColumn(alias: word, column: column)
        }
    }

    /// Skips the `.` at the current position and reads the name after it (possibly empty).
    private mutating func readNameAfterDot() -> (start: Int, name: String) {
        index += 1
        let start = index
        while let scalar = peek(), Self.isIdentifierPart(scalar) { index += 1 }
        return (start, text(from: start))
    }

    /// Reads `.seg.seg...` after `payload`, `metadata` or `item`; all-digit segments are array indexes.
    private mutating func readPath(after root: String, start: Int) throws(ExpressionError) -> [PathSegment] {
        guard peek() == "." else {
            throw ExpressionError("'\(root)' needs a field path, like \(root).orderId", offset: start)
        }
        var segments: [PathSegment] = []
        while peek() == "." {
            let (segmentStart, segment) = readNameAfterDot()
            guard !segment.isEmpty else {
                throw ExpressionError("expected a field name after '.'", offset: segmentStart)
            }
            if segment.unicodeScalars.allSatisfy(Self.isDigit) {
                guard let position = Int(segment), position <= 1_000_000_000 else {
                    throw ExpressionError("array index \(segment) is too large", offset: segmentStart)
                }
                segments.append(.index(position))
            } else {
                segments.append(.key(segment))
            }
        }
        return segments
    }

    private func text(from start: Int) -> String {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[start..<index])
        return String(view)
    }

    static func isDigit(_ scalar: Unicode.Scalar) -> Bool { scalar.value >= 0x30 && scalar.value <= 0x39 }

    static func isIdentifierStart(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "A"..."Z", "_": true
        default: false
        }
    }

    static func isIdentifierPart(_ scalar: Unicode.Scalar) -> Bool { isIdentifierStart(scalar) || isDigit(scalar) }

    /// A character for a message: quoted when printable, as U+XXXX otherwise.
    private static func show(_ scalar: Unicode.Scalar) -> String {
        if scalar.value < 0x20 || scalar.value == 0x7F || scalar.properties.generalCategory == .format {
            return "U+" + String(scalar.value, radix: 16, uppercase: true)
        }
        return "'\(Character(scalar))'"
    }
}
