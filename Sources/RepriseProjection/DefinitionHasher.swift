import RepriseSupport
/// Computes `ProjectionDefinition.definitionHash`: 64-bit FNV-1a over a canonical text of the
/// parsed model, so comments, formatting, quoting and the order of mapping keys do not matter,
/// while any change to tables, operations (lookups included) or checks does. Name, version and description are
/// left out: they label a meaning, they are not part of it.
///
/// Canonical order: tables, columns and indexes sorted (column order in the file does not change
/// what a table holds); handlers sorted by event type; operations in file order (it matters);
/// assignments sorted by column (they are independent: every expression reads the row as it was
/// before the operation); checks sorted.
public enum DefinitionHasher {
    public static func hash(tables: [TableDefinition], handlers: [String: [RowOperation]], checks: [ProjectionCheck]) -> String {
        var hasher = FNV1a()
        hasher.add(canonicalText(tables: tables, handlers: handlers, checks: checks))
        return hasher.hex
    }

    /// The text that is hashed; every item is length-prefixed so no two models share a text.
    static func canonicalText(tables: [TableDefinition], handlers: [String: [RowOperation]], checks: [ProjectionCheck]) -> String {
        var writer = Writer()
        writer.add("tables", tables.count)
        for table in tables.sorted(by: { $0.name < $1.name }) {
            writer.add("table", table.name, table.columns.count)
            for column in table.columns.sorted(by: { $0.name < $1.name }) {
                writer.add(column.name, column.type.sql, column.nullable ? "null" : "not null",
                           column.defaultValue.map(Expression.literalText) ?? "no default")
            }
            writer.add("primary key", table.primaryKey.count)
            writer.add(table.primaryKey)
            let indexes = table.indexes.map { $0.joined(separator: ",") }.sorted()
            writer.add("indexes", indexes.count)
            writer.add(indexes)
        }
        let eventTypes = handlers.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        writer.add("handlers", eventTypes.count)
        for eventType in eventTypes {
            let operations = handlers[eventType] ?? []
            writer.add("handler", eventType)
            add(operations, to: &writer)
        }
        let checkTexts = checks.map { check -> String in
            var checkWriter = Writer()
            switch check {
            case .minimumRows(let table, let rows): checkWriter.add("min_rows", table, rows)
            case .queryReturnsNoRows(let name, let sql): checkWriter.add("no_rows", name, sql)
            }
            return checkWriter.text
        }.sorted()
        writer.add("checks", checkTexts.count)
        writer.add(checkTexts)
        return writer.text
    }

    private static func add(_ operations: [RowOperation], to writer: inout Writer) {
        writer.add("operations", operations.count)
        for operation in operations {
            switch operation {
            case .insert(let table, let values, let when):
                writer.add("insert", table)
                add(values, to: &writer)
                writer.add(when?.description ?? "always")
            case .upsert(let table, let values, let when):
                writer.add("upsert", table)
                add(values, to: &writer)
                writer.add(when?.description ?? "always")
            case .update(let table, let key, let set, let when, let ifMissing):
                writer.add("update", table)
                add(key, to: &writer)
                add(set, to: &writer)
                writer.add(when?.description ?? "always", ifMissing.rawValue)
            case .delete(let table, let key, let when):
                writer.add("delete", table)
                add(key, to: &writer)
                writer.add(when?.description ?? "always")
            case .forEach(let path, let nested):
                writer.add("for_each", path.description)
                add(nested, to: &writer)
            case .lookup(let lookup):
                writer.add("lookup", lookup.alias, lookup.table)
                add(lookup.key, to: &writer)
                writer.add(lookup.ifMissing.rawValue)
            }
        }
    }

    private static func add(_ assignments: [ColumnAssignment], to writer: inout Writer) {
        writer.add("assignments", assignments.count)
        for assignment in assignments.sorted(by: { $0.column < $1.column }) {
            writer.add(assignment.column, assignment.value.description)
        }
    }

    /// Appends length-prefixed items: `5:table`.
    private struct Writer {
        var text = ""

        mutating func add(_ items: any CustomStringConvertible...) {
            for item in items { add(item.description) }
        }

        mutating func add(_ items: [String]) {
            for item in items { add(item) }
        }

        mutating func add(_ item: String) {
            text += "\(item.utf8.count):\(item);"
        }
    }
}
