/// The naming rules of projection files. Names end up in MySQL DDL and statements, so only a
/// small safe alphabet is accepted; nothing outside it ever reaches SQL text.
public enum ProjectionIdentifiers {
    /// Projection and table names: `[a-z][a-z0-9_]{0,39}`. The engine appends suffixes of up to
    /// 24 characters to table names, and MySQL allows 64.
    public static let maximumNameLength = 40
    /// Column names: `[a-z][a-z0-9_]{0,63}` (MySQL's limit).
    public static let maximumColumnNameLength = 64
    /// Tables and columns may not start with this; the engine keeps it for its own.
    public static let reservedPrefix = "reprise_"
    /// Words that mean something in expressions, so they cannot name columns.
    public static let reservedColumnNames: Set<String> = [
        "and", "or", "not", "true", "false", "null", "payload", "metadata", "event", "item",
    ]

    /// `[a-z][a-z0-9_]{0,39}`
    public static func isValidName(_ name: String) -> Bool {
        matches(name, maximumLength: maximumNameLength)
    }

    /// `[a-z][a-z0-9_]{0,63}`
    public static func isValidColumnName(_ name: String) -> Bool {
        matches(name, maximumLength: maximumColumnNameLength)
    }

    /// Event types: non-empty, no control characters.
    public static func isValidEventType(_ name: String) -> Bool {
        !name.isEmpty && !name.unicodeScalars.contains { $0.properties.generalCategory == .control }
    }

    /// A bare name in an expression that reads a column: `[a-z_][a-z0-9_]*`.
    static func isExpressionColumnName(_ word: String) -> Bool {
        guard let first = word.utf8.first, first == UInt8(ascii: "_") || isLower(first) else { return false }
        return word.utf8.allSatisfy { isLower($0) || isDigit($0) || $0 == UInt8(ascii: "_") }
    }

    private static func matches(_ name: String, maximumLength: Int) -> Bool {
        let bytes = name.utf8
        guard let first = bytes.first, isLower(first), bytes.count <= maximumLength else { return false }
        return bytes.allSatisfy { isLower($0) || isDigit($0) || $0 == UInt8(ascii: "_") }
    }

    private static func isLower(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z") }
    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
