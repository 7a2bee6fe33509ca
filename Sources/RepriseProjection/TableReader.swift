/// Reads and validates the `tables:` section: names, columns, primary keys and indexes, with
/// MySQL's limits checked at load time rather than at `CREATE TABLE`.
enum TableReader {
    /// InnoDB's largest index key (DYNAMIC row format), in bytes.
    static let maximumKeyBytes = 3072
    /// MySQL's largest row, in bytes (text and json count only their pointer).
    static let maximumRowBytes = 65_535

    static func readTables(_ node: YAMLNode) throws(ProjectionFileError) -> [TableDefinition] {
        let entries = try node.entries("a mapping of table names to tables")
        guard !entries.isEmpty else { throw node.error("a projection needs at least one table") }
        var tables: [TableDefinition] = []
        for (name, tableNode) in entries {
            try checkName(name, at: tableNode, what: "table name", valid: ProjectionIdentifiers.isValidName,
                          pattern: "[a-z][a-z0-9_]{0,39}")
            tables.append(try readTable(name: name, tableNode))
        }
        return tables
    }

    static func checkName(_ name: String, at node: YAMLNode, what: String, valid: (String) -> Bool,
                          pattern: String) throws(ProjectionFileError) {
        guard valid(name) else {
            throw node.error("invalid \(what) '\(name.prefix(80))': use lowercase letters, digits and _, starting with a letter (\(pattern))")
        }
        guard !name.hasPrefix(ProjectionIdentifiers.reservedPrefix) else {
            throw node.error("\(what) '\(name)' uses the prefix '\(ProjectionIdentifiers.reservedPrefix)', which Reprise reserves for its own tables")
        }
    }

    private static func readTable(name: String, _ node: YAMLNode) throws(ProjectionFileError) -> TableDefinition {
        let fields = try node.fields(allowed: ["columns", "primary_key", "indexes"], required: ["columns", "primary_key"])
        let columnsNode = try fields.required("columns", in: node)
        let columnEntries = try columnsNode.entries("a mapping of column names to types")
        guard !columnEntries.isEmpty else { throw columnsNode.error("table \(name) needs at least one column") }
        var columns: [ColumnDefinition] = []
        var columnNodes: [String: YAMLNode] = [:]
        for (columnName, columnNode) in columnEntries {
            try checkName(columnName, at: columnNode, what: "column name", valid: ProjectionIdentifiers.isValidColumnName,
                          pattern: "[a-z][a-z0-9_]{0,63}")
            guard !ProjectionIdentifiers.reservedColumnNames.contains(columnName) else {
                throw columnNode.error("column name '\(columnName)' is a word of the expression language; choose another")
            }
            columns.append(try readColumn(name: columnName, columnNode))
            columnNodes[columnName] = columnNode
        }
        var table = TableDefinition(name: name, columns: columns, primaryKey: [])

        let keyNode = try fields.required("primary_key", in: node)
        table.primaryKey = try readColumnList(keyNode, of: table, what: "primary key")
        for (index, column) in table.columns.enumerated() where table.primaryKey.contains(column.name) {
            // MySQL makes primary key columns NOT NULL whatever the declaration says.
            table.columns[index].nullable = false
            if column.defaultValue == .null {
                throw (columnNodes[column.name] ?? columnsNode).error("primary key column '\(column.name)' cannot default to null")
            }
        }
        try checkKeyLength(table.primaryKey, of: table, at: keyNode, what: "primary key")

        if let indexesNode = fields["indexes"] {
            var seen: [[String]] = [table.primaryKey]
            for indexNode in try indexesNode.elements("a list of indexes, each a list of columns") {
                let index = try readColumnList(indexNode, of: table, what: "index")
                guard !seen.contains(index) else {
                    throw indexNode.error(index == table.primaryKey ? "index repeats the primary key" : "duplicate index")
                }
                try checkKeyLength(index, of: table, at: indexNode, what: "index")
                seen.append(index)
                table.indexes.append(index)
            }
        }
        let width = table.columns.reduce(0) { $0 + rowBytes(of: $1.type) }
        guard width <= maximumRowBytes else {
            throw columnsNode.error("table \(name) is too wide for MySQL (about \(width) bytes per row, at most \(maximumRowBytes)); use text for long strings")
        }
        return table
    }

    private static func readColumn(name: String, _ node: YAMLNode) throws(ProjectionFileError) -> ColumnDefinition {
        var column: ColumnDefinition
        let defaultNode: YAMLNode
        switch node.node {
        case .mapping:
            let fields = try node.fields(allowed: ["type", "nullable", "default"], required: ["type"])
            let typeNode = try fields.required("type", in: node)
            let typeText = try typeNode.nonEmptyText("a column type")
            let type: ColumnType
            do {
                type = try ColumnSpecParser.parseTypeOnly(typeText)
            } catch {
                throw typeNode.error(error.message)
            }
            column = ColumnDefinition(name: name, type: type, nullable: try fields["nullable"]?.bool("nullable") ?? true)
            defaultNode = fields["default"] ?? node
            if let valueNode = fields["default"] {
                let text = try valueNode.text("a default value")
                do {
                    column.defaultValue = text == "~" ? .null : try ColumnSpecParser.parseDefault(text)
                } catch {
                    throw valueNode.error(error.message)
                }
            }
        default:
            let text = try node.nonEmptyText("a column type like 'varchar(64) not null' or a mapping with type:")
            let declaration: ColumnSpecParser.Declaration
            do {
                declaration = try ColumnSpecParser.parseDeclaration(text)
            } catch {
                throw node.error(error.message)
            }
            column = ColumnDefinition(name: name, type: declaration.type, nullable: declaration.nullable ?? true,
                                      defaultValue: declaration.defaultValue)
            defaultNode = node
        }
        if let value = column.defaultValue {
            if value == .null, !column.nullable {
                throw defaultNode.error("column \(name) is not null, so its default cannot be null")
            }
            if value != .null, column.type == .text || column.type == .json {
                throw defaultNode.error("\(column.type.sql) columns cannot have a default in MySQL; use varchar or leave it null")
            }
            do {
                column.defaultValue = try ColumnValueFit.conform(value, to: column.type)
            } catch {
                throw defaultNode.error("default does not fit column \(name): \(error.reason)")
            }
        }
        return column
    }

    /// A list of distinct known columns (a single name is a one-column list).
    private static func readColumnList(_ node: YAMLNode, of table: TableDefinition, what: String) throws(ProjectionFileError) -> [String] {
        let elements: [YAMLNode] = node.isSequence ? try node.elements() : [node]
        guard !elements.isEmpty else { throw node.error("\(what) needs at least one column") }
        var names: [String] = []
        for element in elements {
            let name = try element.nonEmptyText("a column name")
            guard let column = table.column(named: name) else {
                throw element.error("unknown column '\(name.prefix(80))' in table \(table.name)\(Suggestion.didYouMean(name, among: table.columns.map(\.name)))")
            }
            guard !names.contains(name) else { throw element.error("column '\(name)' appears twice in the \(what)") }
            if column.type == .text || column.type == .json {
                throw element.error("\(column.type.sql) column '\(name)' cannot be in a \(what); use varchar(n)")
            }
            names.append(name)
        }
        return names
    }

    private static func checkKeyLength(_ columns: [String], of table: TableDefinition, at node: YAMLNode,
                                       what: String) throws(ProjectionFileError) {
        let bytes = columns.reduce(0) { total, name in total + (table.column(named: name).map { keyBytes(of: $0.type) } ?? 0) }
        guard bytes <= maximumKeyBytes else {
            throw node.error("\(what) is too long for MySQL: up to \(bytes) bytes, at most \(maximumKeyBytes) (varchar(n) takes 4n bytes in utf8mb4)")
        }
    }

    /// Bytes a value takes in an index key (utf8mb4 strings at 4 bytes per character).
    private static func keyBytes(of type: ColumnType) -> Int {
        switch type {
        case .int: 4
        case .bigint, .double, .datetime: 8
        case .decimal(let precision, _): precision / 2 + 1
        case .varchar(let length): length * 4
        case .bool: 1
        case .date: 3
        case .text, .json: 0
        }
    }

    private static func rowBytes(of type: ColumnType) -> Int {
        switch type {
        case .varchar(let length): length * 4 + (length * 4 > 255 ? 2 : 1)
        case .text, .json: 12
        default: keyBytes(of: type)
        }
    }
}
