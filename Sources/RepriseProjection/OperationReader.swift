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

    /// The lookups an expression may read at one point of a handler: those defined earlier in
    /// the same operation list or in an enclosing one. `declared` holds every lookup of the
    /// handler, so a use before the definition or a cycle is told apart from an unknown name.
    struct LookupScope {
        var visible: [String: TableDefinition] = [:]
        let declared: [String: DeclaredLookup]
    }

    /// A lookup found by the first scan of a handler: where it is and which aliases its key reads.
    struct DeclaredLookup {
        let path: String
        let keyAliases: Set<String>
    }

    func readHandlers(_ node: YAMLNode) throws(ProjectionFileError) -> [String: [RowOperation]] {
        let entries = try node.entries("a mapping of event types to lists of operations")
        guard !entries.isEmpty else { throw node.error("a projection needs at least one handler") }
        var handlers: [String: [RowOperation]] = [:]
        for (eventType, operationsNode) in entries {
            guard ProjectionIdentifiers.isValidEventType(eventType) else {
                throw operationsNode.error("invalid event type name: it must be non-empty text without control characters")
            }
            let scope = LookupScope(declared: try declaredLookups(operationsNode))
            handlers[eventType] = try readOperations(operationsNode, forEachDepth: 0, scope: scope)
        }
        return handlers
    }

    private func readOperations(_ node: YAMLNode, forEachDepth: Int, scope: LookupScope) throws(ProjectionFileError) -> [RowOperation] {
        let elements = try node.elements("a list of operations (insert, upsert, update, delete, for_each, lookup)")
        guard !elements.isEmpty else { throw node.error("a handler needs at least one operation") }
        var operations: [RowOperation] = []
        var scope = scope
        for element in elements {
            let operation = try readOperation(element, forEachDepth: forEachDepth, scope: scope)
            if case .lookup(let lookup) = operation, let table = tables.first(where: { $0.name == lookup.table }) {
                scope.visible[lookup.alias] = table
            }
            operations.append(operation)
        }
        guard operations.contains(where: { if case .lookup = $0 { false } else { true } }) else {
            throw node.error("a list of only lookups does nothing: add the operations that use them")
        }
        return operations
    }

    private func readOperation(_ node: YAMLNode, forEachDepth: Int, scope: LookupScope) throws(ProjectionFileError) -> RowOperation {
        let kinds = ["insert", "upsert", "update", "delete", "for_each", "lookup"]
        let entries = try node.entries("an operation: a mapping with one of insert, upsert, update, delete, for_each, lookup")
        if entries.contains(where: { $0.key == "for_each" }) {
            return try readForEach(node, forEachDepth: forEachDepth, scope: scope)
        }
        guard entries.count == 1, let (kind, body) = entries.first else {
            let keys = entries.map(\.key).joined(separator: ", ")
            throw node.error("an operation is a mapping with exactly one of insert, upsert, update, delete, for_each; found \(keys.isEmpty ? "nothing" : keys) (or lookup)")
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
            let values = try readAssignments(valuesNode, table: table, inForEach: inForEach, scope: scope,
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
            let when = try readCondition(fields["when"], table: table, inForEach: inForEach, scope: scope,
                                         reads: isInsert ? .forbidden("insert creates the row, so its condition cannot read columns") : .allowed)
            return isInsert ? .insert(table: table.name, values: values, when: when)
                : .upsert(table: table.name, values: values, when: when)
        case "update":
            let fields = try body.fields(allowed: ["table", "key", "set", "if_missing", "when"], required: ["table", "key", "set"])
            let table = try readTable(fields, in: body)
            let key = try readKey(try fields.required("key", in: body), table: table, inForEach: inForEach, scope: scope)
            let setNode = try fields.required("set", in: body)
            let set = try readAssignments(setNode, table: table, inForEach: inForEach, scope: scope, reads: .allowed, forbidKeyColumnReads: false)
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
            let when = try readCondition(fields["when"], table: table, inForEach: inForEach, scope: scope, reads: .allowed)
            return .update(table: table.name, key: key, set: set, when: when, ifMissing: policy)
        case "delete":
            let fields = try body.fields(allowed: ["table", "key", "when"], required: ["table", "key"])
            let table = try readTable(fields, in: body)
            let key = try readKey(try fields.required("key", in: body), table: table, inForEach: inForEach, scope: scope)
            let when = try readCondition(fields["when"], table: table, inForEach: inForEach, scope: scope, reads: .allowed)
            return .delete(table: table.name, key: key, when: when)
        case "lookup":
            return .lookup(try readLookup(body, inForEach: inForEach, scope: scope))
        default:
            throw body.error("unknown operation '\(kind)'\(Suggestion.didYouMean(kind, among: kinds)) (expected one of: \(kinds.joined(separator: ", ")))")
        }
    }

    /// `lookup: { as, table, key, if_missing }`. The alias must be new in the handler; the key is
    /// the table's whole primary key, computed from the event and earlier lookups.
    private func readLookup(_ body: YAMLNode, inForEach: Bool, scope: LookupScope) throws(ProjectionFileError) -> Lookup {
        let fields = try body.fields(allowed: ["as", "table", "key", "if_missing"], required: ["as", "table", "key"])
        let aliasNode = try fields.required("as", in: body)
        let alias = try Self.lookupAlias(aliasNode)
        if scope.visible[alias] != nil {
            throw aliasNode.error("lookup alias '\(alias)' is already defined earlier in this handler; each lookup needs its own alias")
        }
        let table = try readTable(fields, in: body)
        let key = try readKey(try fields.required("key", in: body), table: table, inForEach: inForEach, scope: scope, lookupAlias: alias)
        var policy = LookupMissingPolicy.null
        if let policyNode = fields["if_missing"] {
            let text = try policyNode.text("null, skip or error")
            guard let parsed = LookupMissingPolicy(rawValue: text == "~" || text.isEmpty ? "null" : text) else {
                throw policyNode.error("if_missing of a lookup must be null, skip or error, found '\(text.prefix(40))'")
            }
            policy = parsed
        }
        return Lookup(alias: alias, table: table.name, key: key, ifMissing: policy)
    }

    /// A lookup's alias: a name like a table's, not one of the expression language's words.
    private static func lookupAlias(_ node: YAMLNode) throws(ProjectionFileError) -> String {
        let alias = try node.nonEmptyText("a lookup alias")
        guard ProjectionIdentifiers.isValidName(alias) else {
            throw node.error("invalid lookup alias '\(alias.prefix(80))': use lowercase letters, digits and _, starting with a letter ([a-z][a-z0-9_]{0,39})")
        }
        guard !ProjectionIdentifiers.reservedColumnNames.contains(alias) else {
            throw node.error("'\(alias)' is a reserved word of expressions and cannot be a lookup alias")
        }
        return alias
    }

    /// Every lookup of a handler (for_each bodies included), read before the operations so that
    /// a use before the definition and a cycle get their own messages. Duplicate aliases are errors.
    private func declaredLookups(_ node: YAMLNode) throws(ProjectionFileError) -> [String: DeclaredLookup] {
        var declared: [String: DeclaredLookup] = [:]
        func scan(_ list: YAMLNode) throws(ProjectionFileError) {
            guard list.isSequence else { return }  // the real read reports the shape
            for element in try list.elements() where element.isMapping {
                let entries = try element.entries()
                if let body = entries.first(where: { $0.key == "do" })?.value {
                    try scan(body)
                }
                guard let body = entries.first(where: { $0.key == "lookup" })?.value, body.isMapping else { continue }
                let fields = try body.entries()
                guard let aliasNode = fields.first(where: { $0.key == "as" })?.value else { continue }
                let alias = try Self.lookupAlias(aliasNode)
                if let first = declared[alias] {
                    throw aliasNode.error("lookup alias '\(alias)' is already defined at \(first.path); each lookup of a handler needs its own alias")
                }
                var aliases: Set<String> = []
                if let key = fields.first(where: { $0.key == "key" })?.value, key.isMapping {
                    for (_, valueNode) in try key.entries() {
                        guard let text = try? valueNode.text(), let expression = try? ExpressionParser.parse(text) else { continue }
                        expression.visit { part in
                            if case .lookup(let used, _) = part { aliases.insert(used) }
                        }
                    }
                }
                declared[alias] = DeclaredLookup(path: element.path, keyAliases: aliases)
            }
        }
        try scan(node)
        return declared
    }

    /// Why `alias` cannot be read where `node` reads it (it is not visible there).
    private func lookupError(_ alias: String, at node: YAMLNode, scope: LookupScope, readingKeyOf lookupAlias: String?) -> ProjectionFileError {
        guard let declaration = scope.declared[alias] else {
            let known = scope.declared.keys.sorted()
            let list = known.isEmpty ? "this handler has no lookups" : "lookups of this handler: \(known.joined(separator: ", "))"
            return node.error("unknown lookup '\(alias)'\(Suggestion.didYouMean(alias, among: known)) (\(list))")
        }
        if let lookupAlias, let cycle = Self.cycle(from: alias, to: lookupAlias, declared: scope.declared) {
            let chain = ([lookupAlias] + cycle).map { "'\($0)'" }.joined(separator: " -> ")
            return node.error("lookup cycle: \(chain); a lookup's key can only read the event and lookups that do not depend on it")
        }
        return node.error("lookup '\(alias)' is used before it is defined (at \(declaration.path)); a lookup is visible only to what follows it in its own list (and in the for_each blocks there)")
    }

    /// The aliases from `start` to `target` following the aliases each lookup's key reads, if any.
    private static func cycle(from start: String, to target: String, declared: [String: DeclaredLookup]) -> [String]? {
        var visited: Set<String> = []
        func walk(_ alias: String) -> [String]? {
            if alias == target { return [alias] }
            guard visited.insert(alias).inserted, let uses = declared[alias]?.keyAliases else { return nil }
            for next in uses.sorted() {
                if let rest = walk(next) { return [alias] + rest }
            }
            return nil
        }
        return walk(start)
    }

    private func readForEach(_ node: YAMLNode, forEachDepth: Int, scope: LookupScope) throws(ProjectionFileError) -> RowOperation {
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
        let operations = try readOperations(try fields.required("do", in: node), forEachDepth: forEachDepth + 1, scope: scope)
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

    /// `key:` of update, delete and lookup: exactly the primary key columns, computed from the
    /// event and earlier lookups.
    private func readKey(_ node: YAMLNode, table: TableDefinition, inForEach: Bool, scope: LookupScope,
                         lookupAlias: String? = nil) throws(ProjectionFileError) -> [ColumnAssignment] {
        let key = try readAssignments(node, table: table, inForEach: inForEach, scope: scope,
                                      reads: .forbidden("key expressions may only read the event"), forbidKeyColumnReads: false,
                                      lookupAlias: lookupAlias)
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
    private func readAssignments(_ node: YAMLNode, table: TableDefinition, inForEach: Bool, scope: LookupScope, reads: ColumnReads,
                                 forbidKeyColumnReads: Bool, lookupAlias: String? = nil) throws(ProjectionFileError) -> [ColumnAssignment] {
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
            let expression = try readExpression(valueNode, table: table, inForEach: inForEach, scope: scope, reads: columnReads,
                                                lookupAlias: lookupAlias)
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

    private func readCondition(_ node: YAMLNode?, table: TableDefinition, inForEach: Bool, scope: LookupScope,
                               reads: ColumnReads) throws(ProjectionFileError) -> Expression? {
        guard let node else { return nil }
        let expression = try readExpression(node, table: table, inForEach: inForEach, scope: scope, reads: reads)
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

    /// `lookupAlias`: the lookup whose key this expression computes (for cycle messages).
    private func readExpression(_ node: YAMLNode, table: TableDefinition, inForEach: Bool, scope: LookupScope,
                                reads: ColumnReads, lookupAlias: String? = nil) throws(ProjectionFileError) -> Expression {
        let expression = try parse(node)
        try expression.visit { (part: Expression) throws(ProjectionFileError) in
            switch part {
            case .column(let name):
                if case .forbidden(let reason) = reads {
                    let hint = scope.declared.isEmpty ? "" : " (the columns of this handler's lookups, alias.column, may be read)"
                    throw node.error("\(reason), not column '\(name)'\(hint)")
                }
                guard table.column(named: name) != nil else {
                    throw node.error("unknown column '\(name)' in table \(table.name)\(Suggestion.didYouMean(name, among: table.columns.map(\.name)))")
                }
            case .lookup(let alias, let column):
                guard let looked = scope.visible[alias] else {
                    throw lookupError(alias, at: node, scope: scope, readingKeyOf: lookupAlias)
                }
                guard looked.column(named: column) != nil else {
                    throw node.error("unknown column '\(column)' of lookup '\(alias)' (table \(looked.name))\(Suggestion.didYouMean(column, among: looked.columns.map(\.name)))")
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
