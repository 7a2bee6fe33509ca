import Foundation

/// Reads and validates the optional `checks:` section: row-count minimums and read-only queries
/// that must return no rows.
enum CheckReader {
    static func readChecks(_ node: YAMLNode, tables: [TableDefinition]) throws(ProjectionFileError) -> [ProjectionCheck] {
        var checks: [ProjectionCheck] = []
        var names: Set<String> = []
        for element in try node.elements("a list of checks (min_rows, no_rows)") {
            let entries = try element.entries("a check: a mapping with min_rows or no_rows")
            guard entries.count == 1, let (kind, body) = entries.first else {
                throw element.error("a check is a mapping with exactly one of min_rows, no_rows")
            }
            switch kind {
            case "min_rows":
                let fields = try body.fields(allowed: ["table", "rows"], required: ["table", "rows"])
                let tableNode = try fields.required("table", in: body)
                let table = try tableNode.nonEmptyText("a table name")
                guard tables.contains(where: { $0.name == table }) else {
                    let known = tables.map(\.name)
                    throw tableNode.error("unknown table '\(table.prefix(80))'\(Suggestion.didYouMean(table, among: known)) (tables: \(known.joined(separator: ", ")))")
                }
                let rowsNode = try fields.required("rows", in: body)
                let rows = try rowsNode.integer("a row count")
                guard rows >= 0 else { throw rowsNode.error("rows must be 0 or more, got \(rows)") }
                checks.append(.minimumRows(table: table, rows: rows))
            case "no_rows":
                let fields = try body.fields(allowed: ["name", "sql"], required: ["name", "sql"])
                let nameNode = try fields.required("name", in: body)
                let name = try nameNode.nonEmptyText("a check name")
                try TableReader.checkName(name, at: nameNode, what: "check name", valid: ProjectionIdentifiers.isValidColumnName,
                                          pattern: "[a-z][a-z0-9_]{0,63}")
                guard names.insert(name).inserted else { throw nameNode.error("two checks are named '\(name)'") }
                let sqlNode = try fields.required("sql", in: body)
                let sql = try sqlNode.nonEmptyText("a SELECT statement")
                if let problem = problem(withQuery: sql) { throw sqlNode.error(problem) }
                checks.append(.queryReturnsNoRows(name: name, sql: sql.trimmingCharacters(in: .whitespacesAndNewlines)))
            default:
                throw element.error("unknown check '\(kind.prefix(80))'\(Suggestion.didYouMean(kind, among: ["min_rows", "no_rows"])) (expected min_rows or no_rows)")
            }
        }
        return checks
    }

    /// Why a `no_rows` query is not a single read-only SELECT, or nil. The engine should still
    /// run it in a read-only transaction; this catches mistakes early.
    static func problem(withQuery sql: String) -> String? {
        let trimmed = sql.trimmingCharacters(in: .whitespacesAndNewlines)
        let words = trimmed.lowercased().split { !($0.isLetter || $0.isNumber || $0 == "_") }
        guard trimmed.lowercased().hasPrefix("select"), words.first == "select" else {
            return "sql must be a single SELECT statement"
        }
        if trimmed.contains(";") { return "sql must be a single SELECT statement, without ';'" }
        if words.contains("into") { return "sql must only read: SELECT ... INTO is not allowed" }
        for (index, word) in words.enumerated() where word == "for" && index + 1 < words.count && words[index + 1] == "update" {
            return "sql must only read: FOR UPDATE is not allowed"
        }
        return nil
    }
}
