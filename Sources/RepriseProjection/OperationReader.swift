/// Reads and validates the `handlers:` section: each event type's row operations, their tables,
/// keys and assignments, and the expressions in them (parsed here, once, at load time).
struct OperationReader {
    let tables: [TableDefinition]

    /// `for_each` inside `for_each` is allowed, up to this depth.
    static let maximumForEachDepth = 4

    /// Which columns an expression may read.
    private enum ColumnReads {
        case allowed
        /// Column references are errors; the text says why (it ends the message).
        case forbidden(String)
    }

    func readHandlers(_ node: YAMLNode) throws(ProjectionFileError) -> [String: [RowOperation]] {
        let entries = try node.entries("a mapping of event types to lists of operations")
        guard !entries.isEmpty else { throw node.error("a projection needs at least one handler") }
        var handlers: [String: [RowOperation]] = [:]
        for (eventType, operationsNode) in entries {
            guard ProjectionIdentifiers.isValidEventType(eventType) else {
                throw operationsNode.error("invalid event type name: it must be non-empty text without control characters")
            }
            handlers[eventType] = try readOperations(operationsNode, forEachDepth: 0)
        }
        return handlers
    }

    private func readOperations(_ node: YAMLNode, forEachDepth: Int) throws(ProjectionFileError) -> [RowOperation] {
        let elements = try node.elements("a list of operations (insert, upsert, update, delete, for_each)")
        guard !elements.isEmpty else { throw node.error("a handler needs at least one operation") }
        var operations: [RowOperation] = []
        for element in elements {
            operations.append(try readOperation(element, forEachDepth: forEachDepth))
        }
        return operations
    }

    private func readOperation(_ node: YAMLNode, forEachDepth: Int) throws(ProjectionFileError) -> RowOperation {
        let kinds = ["insert", "upsert", "update", "delete", "for_each"]
        let entries = try node.entries("an operation: a mapping with one of insert, upsert, update, delete, for_each")
        if entries.contains(where: { $0.key == "for_each" }) {
            return try readForEach(node, forEachDepth: forEachDepth)
        }
        guard entries.count == 1, let (kind, body) = entries.first else {
            let keys = entries.map(\.key).joined(separator: ", ")
            throw node.error("an operation is a mapping with exactly one of insert, upsert, update, delete, for_each; found \(keys.isEmpty ? "nothing" : keys)")
        }
        let inForEach = forEachDepth > 0
        switch kind {
        case "insert", "upsert":
            let fields = try body.fields(allowed: ["table", "set", "values", "when"], required: ["table"])
            let table = try readTable(fields, in: body)
            if fields["set"] != nil, fields["values"] != nil {
                throw body.error("use either set or values, not both")
            }
            guard let valuesNode = fields["set"] ?? fields["values"] else { throw body.error("missing key 'set'") }
            let isInsert = kind == "insert"
            let values = try readAssignments(valuesNode, table: table, inForEach: inForEach,
                                             reads: isInsert ? .forbidden("insert creates the row, so it cannot read its columns") : .allowed,
                                             forbidKeyColumnReads: true)
            for column in table.columns {
                let covered = values.contains { $0.column == column.name }
                if !covered, table.primaryKey.contains(column.name) {
                    throw valuesNode.error("\(kind) must set primary key column '\(column.name)' of table \(table.name)")
                }
                if !covered, !column.nullable, column.defaultValue == nil {
                    throw valuesNode.error("\(kind) must set column '\(column.name)': it is not null and has no default")
                }
            }
            let when = try readCondition(fields["when"], table: table, inForEach: inForEach,
                                         reads: isInsert ? .forbidden("insert creates the row, so its condition cannot read columns") : .allowed)
            return isInsert ? .insert(table: table.name, values: values, when: when)
                : .upsert(table: table.name, values: values, when: when)
        case "update":
            let fields = try body.fields(allowed: ["table", "key", "set", "if_missing", "when"], required: ["table", "key", "set"])
            let table = try readTable(fields, in: body)
            let key = try readKey(try fields.required("key", in: body), table: table, inForEach: inForEach)
            let setNode = try fields.required("set", in: body)
            let set = try readAssignments(setNode, table: table, inForEach: inForEach, reads: .allowed, forbidKeyColumnReads: false)
            for assignment in set where table.primaryKey.contains(assignment.column) {
                throw setNode.child(assignment.column, setNode.node).error(
                    "update cannot change primary key column '\(assignment.column)' (the key selects the row)")
            }
            var policy = MissingRowPolicy.skip
            if let policyNode = fields["if_missing"] {
                let text = try policyNode.text("skip or error")
                guard let parsed = MissingRowPolicy(rawValue: text) else {
                    throw policyNode.error("if_missing must be skip or error, found '\(text.prefix(40))'")
                }
                policy = parsed
            }
            let when = try readCondition(fields["when"], table: table, inForEach: inForEach, reads: .allowed)
            return .update(table: table.name, key: key, set: set, when: when, ifMissing: policy)
        case "delete":
            let fields = try body.fields(allowed: ["table", "key", "when"], required: ["table", "key"])
            let table = try readTable(fields, in: body)
            let key = try readKey(try fields.required("key", in: body), table: table, inForEach: inForEach)
            let when = try readCondition(fields["when"], table: table, inForEach: inForEach, reads: .allowed)
            return .delete(table: table.name, key: key, when: when)
        default:
            throw body.error("unknown operation '\(kind)'\(Suggestion.didYouMean(kind, among: kinds)) (expected one of: \(kinds.joined(separator: ", ")))")
        }
    }

    private func readForEach(_ node: YAMLNode, forEachDepth: Int) throws(ProjectionFileError) -> RowOperation {
        let fields = try node.fields(allowed: ["for_each", "do"], required: ["for_each", "do"])
        let pathNode = try fields.required("for_each", in: node)
        let expression = try parse(pathNode)
        guard case .field(let path) = expression else {
            throw pathNode.error("for_each needs a field path to an array, like payload.items; found '\(expression)'")
        }
        switch path {
        case .payload, .metadata:
            break
        case .item:
            guard forEachDepth > 0 else { throw pathNode.error("\(path) can only be used inside for_each") }
        case .envelope:
            throw pathNode.error("for_each needs a field path to an array, like payload.items; \(path) is not an array")
        }
        guard forEachDepth < Self.maximumForEachDepth else {
            throw pathNode.error("for_each nests too deeply (at most \(Self.maximumForEachDepth) levels)")
        }
        let operations = try readOperations(try fields.required("do", in: node), forEachDepth: forEachDepth + 1)
        return .forEach(path: path, operations: operations)
    }

    private func readTable(_ fields: YAMLFields, in body: YAMLNode) throws(ProjectionFileError) -> TableDefinition {
        let node = try fields.required("table", in: body)
        let name = try node.nonEmptyText("a table name")
        guard let table = tables.first(where: { $0.name == name }) else {
            let names = tables.map(\.name)
            throw node.error("unknown table '\(name.prefix(80))'\(Suggestion.didYouMean(name, among: names)) (tables: \(names.joined(separator: ", ")))")
        }
        return table
    }

    /// `key:` of update and delete: exactly the primary key columns, computed from the event only.
    private func readKey(_ node: YAMLNode, table: TableDefinition, inForEach: Bool) throws(ProjectionFileError) -> [ColumnAssignment] {
        let key = try readAssignments(node, table: table, inForEach: inForEach,
                                      reads: .forbidden("key expressions may only read the event"), forbidKeyColumnReads: false)
        let primaryKey = table.primaryKey.joined(separator: ", ")
        for assignment in key where !table.primaryKey.contains(assignment.column) {
            throw node.child(assignment.column, node.node).error(
                "'\(assignment.column)' is not a primary key column of table \(table.name) (primary key: \(primaryKey))")
        }
        for column in table.primaryKey where !key.contains(where: { $0.column == column }) {
            throw node.error("key must give every primary key column of table \(table.name) (\(primaryKey)); missing '\(column)'")
        }
        return key
    }

    /// `set:`/`values:`/`key:` mappings of column to expression.
    private func readAssignments(_ node: YAMLNode, table: TableDefinition, inForEach: Bool, reads: ColumnReads,
                                 forbidKeyColumnReads: Bool) throws(ProjectionFileError) -> [ColumnAssignment] {
        let entries = try node.entries("a mapping of column names to expressions")
        guard !entries.isEmpty else { throw node.error("assign at least one column") }
        var assignments: [ColumnAssignment] = []
        for (name, valueNode) in entries {
            guard let column = table.column(named: name) else {
                throw valueNode.error("unknown column '\(name.prefix(80))' in table \(table.name)\(Suggestion.didYouMean(name, among: table.columns.map(\.name)))")
            }
            var columnReads = reads
            if forbidKeyColumnReads, case .allowed = reads, table.primaryKey.contains(name) {
                columnReads = .forbidden("primary key column '\(name)' must be computed from the event only")
            }
            let expression = try readExpression(valueNode, table: table, inForEach: inForEach, reads: columnReads)
            if case .literal(let value) = expression {
                if value == .null, !column.nullable {
                    throw valueNode.error("column '\(name)' is not null, so it cannot be set to null")
                }
                do {
                    _ = try ColumnValueFit.conform(value, to: column.type)
                } catch {
                    throw valueNode.error("value does not fit column \(name): \(error.reason)")
                }
            }
            assignments.append(ColumnAssignment(column: name, value: expression))
        }
        return assignments
    }

    private func readCondition(_ node: YAMLNode?, table: TableDefinition, inForEach: Bool,
                               reads: ColumnReads) throws(ProjectionFileError) -> Expression? {
        guard let node else { return nil }
        let expression = try readExpression(node, table: table, inForEach: inForEach, reads: reads)
        if let kind = Self.obviousNonBoolKind(expression) {
            throw node.error("when must be a condition (true, false or null), but '\(expression)' gives \(kind)")
        }
        return expression
    }

    /// The kind an expression certainly has when it can never be a bool.
    private static func obviousNonBoolKind(_ expression: Expression) -> String? {
        switch expression {
        case .literal(let value):
            switch value {
            case .bool, .null: return nil
            default: return "a \(value.kindName)"
            }
        case .binary(let op, _, _) where [.add, .subtract, .multiply, .divide].contains(op): return "a number"
        case .unary(.negate, _): return "a number"
        case .call(let function, _) where [.concat, .lower, .upper, .date].contains(function): return "a string"
        case .call(.abs, _), .call(.number, _): return "a number"
        default: return nil
        }
    }

    private func readExpression(_ node: YAMLNode, table: TableDefinition, inForEach: Bool,
                                reads: ColumnReads) throws(ProjectionFileError) -> Expression {
        let expression = try parse(node)
        try expression.visit { (part: Expression) throws(ProjectionFileError) in
            switch part {
            case .column(let name):
                if case .forbidden(let reason) = reads {
                    throw node.error("\(reason), not column '\(name)'")
                }
                guard table.column(named: name) != nil else {
                    throw node.error("unknown column '\(name)' in table \(table.name)\(Suggestion.didYouMean(name, among: table.columns.map(\.name)))")
                }
            case .field(.item):
                guard inForEach else {
                    throw node.error("\(part) can only be used inside for_each (it reads the current array element)")
                }
            default:
                break
            }
        }
        return expression
    }

    /// Parses a scalar as an expression; `~` is YAML's null.
    private func parse(_ node: YAMLNode) throws(ProjectionFileError) -> Expression {
        let text = try node.text("an expression")
        guard !text.isEmpty else { throw node.error("expected an expression, found nothing") }
        if text == "~" { return .literal(.null) }
        do {
            return try ExpressionParser.parse(text)
        } catch {
            throw node.error("invalid expression '\(text.prefix(200))': \(error)")
        }
    }
}
