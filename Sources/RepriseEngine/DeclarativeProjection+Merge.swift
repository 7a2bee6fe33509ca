import RepriseProjection

extension DeclarativeProjection {
    /// The tables whose rows the engine never needs to read (merge tables, `MergeRow`): every
    /// operation on them is an upsert without `when` whose assignments each either set a column
    /// from the event, add an event value to an integer counter (`c: c + e`, NOT NULL, default 0)
    /// or fill a column once (`c: coalesce(c, e)`, no default), and no column is both added to
    /// and filled. Projections with lookups have none (a lookup reads rows as they are).
    static func mergeTables(_ definition: ProjectionDefinition, layouts: [String: TableLayout]) -> Set<String> {
        guard !definition.handlers.values.contains(where: containsLookup) else { return [] }
        var kinds: [String: [String: Set<MergeOperation>]] = [:]
        var refused: Set<String> = []
        func visit(_ operations: [RowOperation]) {
            for operation in operations {
                switch operation {
                case .upsert(let table, let values, let when):
                    guard when == nil, let layout = layouts[table] else { refused.insert(table); continue }
                    for assignment in values {
                        guard let merge = mergeAssignment(assignment, layout) else { refused.insert(table); break }
                        kinds[table, default: [:]][assignment.column, default: []].insert(merge.kind)
                    }
                case .insert(let table, _, _), .update(let table, _, _, _, _), .delete(let table, _, _):
                    refused.insert(table)
                case .forEach(_, let nested):
                    visit(nested)
                case .lookup(let lookup):
                    refused.insert(lookup.table)
                }
            }
        }
        for operations in definition.handlers.values { visit(operations) }
        return Set(kinds.compactMap { table, columns in
            // A sum and a first value cannot be merged into one column's change.
            refused.contains(table) || columns.values.contains { $0.isSuperset(of: [.add, .coalesce]) } ? nil : table
        })
    }

    /// How an assignment merges into a row it does not read, and the expression of the event it
    /// merges (the whole value for `set`, `e` for `add` and `coalesce`); nil when it needs the row.
    static func mergeAssignment(_ assignment: ColumnAssignment, _ layout: TableLayout) -> (kind: MergeOperation, operand: Expression)? {
        guard let index = layout.columnIndex[assignment.column] else { return nil }
        let column = layout.columns[index]
        if readsNoRow(assignment.value) { return (.set, assignment.value) }
        guard !layout.keyIndexes.contains(index), let merge = operandOnOwnColumn(assignment.value, column.name) else { return nil }
        switch merge.kind {
        case .add:
            guard column.type == .int || column.type == .bigint, !column.nullable, column.defaultValue == .int(0) else { return nil }
        case .coalesce:
            guard column.defaultValue == nil || column.defaultValue == .null else { return nil }
        default:
            return nil
        }
        return merge
    }

    /// `c + e`, `e + c` or `coalesce(c, e)` where `c` is `column` and `e` reads no row: the kind and `e`.
    private static func operandOnOwnColumn(_ expression: Expression, _ column: String) -> (kind: MergeOperation, operand: Expression)? {
        switch expression {
        case .binary(.add, .column(let name), let operand) where name == column && readsNoRow(operand):
            return (.add, operand)
        case .binary(.add, let operand, .column(let name)) where name == column && readsNoRow(operand):
            return (.add, operand)
        case .call(.coalesce, let arguments) where arguments.count == 2 && arguments[0] == .column(column) && readsNoRow(arguments[1]):
            return (.coalesce, arguments[1])
        default:
            return nil
        }
    }

    /// Whether the expression reads only the event (no column of a row, no lookup).
    static func readsNoRow(_ expression: Expression) -> Bool {
        switch expression {
        case .literal, .field: true
        case .column, .lookup: false
        case .unary(_, let operand): readsNoRow(operand)
        case .binary(_, let left, let right): readsNoRow(left) && readsNoRow(right)
        case .call(_, let arguments): arguments.allSatisfy(readsNoRow)
        }
    }

}
