/// Splits MySQL statement text into code and what is not code: string literals (`'…'`, `"…"`,
/// with backslash escapes and doubled quotes), quoted identifiers (`` `…` ``, with doubled
/// backticks) and comments (`# …`, `-- …`, `/* … */`). Placeholders and identifiers are only
/// looked for in code. Works on UTF-8 bytes: every delimiter is ASCII.
enum SQLScanner {
    enum Kind: Equatable {
        case code
        case stringLiteral
        case quotedIdentifier
        case comment
    }

    struct Segment: Equatable {
        var kind: Kind
        var range: Range<Int>
    }

    static func segments(_ bytes: [UInt8]) -> [Segment] {
        var segments: [Segment] = []
        var codeStart = 0
        var index = 0
        func close(_ kind: Kind, from start: Int) {
            if codeStart < start { segments.append(Segment(kind: .code, range: codeStart..<start)) }
            segments.append(Segment(kind: kind, range: start..<min(index, bytes.count)))
            codeStart = min(index, bytes.count)
        }
        func skipQuoted(_ quote: UInt8) {
            index += 1
            while index < bytes.count {
                if bytes[index] == UInt8(ascii: "\\") && quote != UInt8(ascii: "`") { index += 2; continue }
                if bytes[index] == quote {
                    if index + 1 < bytes.count && bytes[index + 1] == quote { index += 2; continue }
                    index += 1
                    return
                }
                index += 1
            }
        }
        func skipLine() {
            while index < bytes.count && bytes[index] != UInt8(ascii: "\n") { index += 1 }
        }
        while index < bytes.count {
            let start = index
            switch bytes[index] {
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                skipQuoted(bytes[index])
                close(.stringLiteral, from: start)
            case UInt8(ascii: "`"):
                skipQuoted(bytes[index])
                close(.quotedIdentifier, from: start)
            case UInt8(ascii: "#"):
                skipLine()
                close(.comment, from: start)
            // MySQL starts a `--` comment only when whitespace or a control character follows.
            case UInt8(ascii: "-") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "-")
                && (index + 2 == bytes.count || bytes[index + 2] <= UInt8(ascii: " ")):
                skipLine()
                close(.comment, from: start)
            case UInt8(ascii: "/") where index + 1 < bytes.count && bytes[index + 1] == UInt8(ascii: "*"):
                index += 2
                while index + 1 < bytes.count && !(bytes[index] == UInt8(ascii: "*") && bytes[index + 1] == UInt8(ascii: "/")) { index += 1 }
                index += 2
                close(.comment, from: start)
            default:
                index += 1
            }
        }
        if codeStart < bytes.count { segments.append(Segment(kind: .code, range: codeStart..<bytes.count)) }
        return segments
    }

    /// A byte that continues an unquoted identifier: ASCII letters, digits, `_`, `$`, and any
    /// byte of a multi-byte UTF-8 character (MySQL allows those in identifiers).
    static func isIdentifierByte(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "$")
            || byte >= 0x80
    }
}

/// Finds `?` placeholders outside string literals, quoted identifiers and comments.
enum PlaceholderScanner {
    /// The UTF-8 offsets of each placeholder in `sql`.
    static func placeholderOffsets(in sql: String) -> [Int] {
        let bytes = Array(sql.utf8)
        return SQLScanner.segments(bytes).filter { $0.kind == .code }.flatMap { segment in
            segment.range.filter { bytes[$0] == UInt8(ascii: "?") }
        }
    }
}

extension MySQLIdentifier {
    /// `sql` with every reference to the table `name` replaced by `replacement` (an already
    /// quoted identifier): bare words equal to `name`, and `` `name` `` quoted. Untouched: string
    /// literals, comments, longer words that contain `name`, and a word right after a `.`
    /// (`t.name` is a column, `db.name` another database's table).
    ///
    /// Used to point a projection's check queries at the tables of the build being checked.
    public static func replacingTable(_ name: String, with replacement: String, in sql: String) -> String {
        let bytes = Array(sql.utf8)
        let target = Array(name.utf8)
        let quotedTarget = Array(quote(name).utf8)
        let replacementBytes = Array(replacement.utf8)
        guard !target.isEmpty else { return sql }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        for segment in SQLScanner.segments(bytes) {
            switch segment.kind {
            case .quotedIdentifier:
                let text = bytes[segment.range]
                let qualified = segment.range.lowerBound > 0 && bytes[segment.range.lowerBound - 1] == UInt8(ascii: ".")
                output += !qualified && text.elementsEqual(quotedTarget) ? replacementBytes : Array(text)
            case .stringLiteral, .comment:
                output += bytes[segment.range]
            case .code:
                var index = segment.range.lowerBound
                while index < segment.range.upperBound {
                    let end = index + target.count
                    if end <= segment.range.upperBound, bytes[index..<end].elementsEqual(target),
                        index == 0 || (!SQLScanner.isIdentifierByte(bytes[index - 1]) && bytes[index - 1] != UInt8(ascii: ".")),
                        end == bytes.count || !SQLScanner.isIdentifierByte(bytes[end])
                    {
                        output += replacementBytes
                        index = end
                        continue
                    }
                    // Skip the rest of a word, so that a word ending in `name` is not matched.
                    if SQLScanner.isIdentifierByte(bytes[index]) {
                        while index < segment.range.upperBound && SQLScanner.isIdentifierByte(bytes[index]) {
                            output.append(bytes[index])
                            index += 1
                        }
                        continue
                    }
                    output.append(bytes[index])
                    index += 1
                }
            }
        }
        return String(decoding: output, as: UTF8.self)
    }
}
