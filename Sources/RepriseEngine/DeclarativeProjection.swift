import RepriseProjection

/// Runs a projection file's row operations on a `RowWorkspace`: the interpreter of the
/// projection language. Synchronous and allocation-light, since it runs once per event.
struct DeclarativeProjection: Sendable {
    let definition: ProjectionDefinition
    let layouts: [String: TableLayout]

    init(_ definition: ProjectionDefinition) {
        self.definition = definition
        var layouts: [String: TableLayout] = [:]
        for table in definition.tables { layouts[table.name] = TableLayout(table) }
        self.layouts = layouts
    }

    /// The rows `event` will read or write, so the chunk can fetch unknown ones in one query per table.
    func keysTouched(by event: ProjectionEvent, into keys: inout [String: Set<RowKey>]) {
        guard let operations = definition.handlers[event.type] else { return }
        collectKeys(operations, event: event, item: nil, into: &keys)
    }

    private func collectKeys(_ operations: [RowOperation], event: ProjectionEvent, item: JSONValue?, into keys: inout [String: Set<RowKey>]) {
        for operation in operations {
            switch operation {
            case .insert(let table, let values, _), .upsert(let table, let values, _):
                if let layout = layouts[table], let key = try? keyFromAssignments(values, layout: layout, event: event, item: item) {
                    keys[table, default: []].insert(key)
                }
            case .update(let table, let key, _, _, _), .delete(let table, let key, _):
                if let layout = layouts[table], let rowKey = try? keyFromAssignments(key, layout: layout, event: event, item: item) {
                    keys[table, default: []].insert(rowKey)
                }
            case .forEach(let path, let nested):
                if case .array(let elements)? = arrayAt(path, event: event, item: item) {
                    for element in elements { collectKeys(nested, event: event, item: element, into: &keys) }
                }
            }
        }
    }

    /// Applies `event` to the workspace. Throws `EngineError` naming the operation and the position.
    /// `observer` (for `reprise trace`) hears what each operation did; rebuilds pass none.
    func apply(_ event: ProjectionEvent, to workspace: RowWorkspace, observer: OperationObserver? = nil) throws(EngineError) {
        guard let operations = definition.handlers[event.type] else { return }
        try run(operations, path: "handlers.\(event.type)", event: event, item: nil, workspace: workspace, observer: observer)
    }

    private func run(
        _ operations: [RowOperation], path: String, event: ProjectionEvent, item: JSONValue?, workspace: RowWorkspace, observer: OperationObserver?
    ) throws(EngineError) {
        for (index, operation) in operations.enumerated() {
            let here = "\(path)[\(index)]"
            do {
                try run(operation, path: here, event: event, item: item, workspace: workspace, observer: observer)
            } catch let failure as OperationFailure {
                throw EngineError(
                    .handlerFailed, projection: definition.name, position: event.position, eventType: event.type,
                    message: "\(here): \(failure.message)")
            } catch let error as EngineError {
                throw error
            } catch {
                throw EngineError(.handlerFailed, projection: definition.name, position: event.position, eventType: event.type, message: "\(here): \(error)")
            }
        }
    }

    struct OperationFailure: Error { let message: String }

    private func run(_ operation: RowOperation, path: String, event: ProjectionEvent, item: JSONValue?, workspace: RowWorkspace, observer: OperationObserver?) throws {
        func report(_ kind: OperationStep.Kind, _ table: String, _ key: RowKey, _ outcome: OperationStep.Outcome) {
            observer?(OperationStep(path: path, kind: kind, table: table, key: key, outcome: outcome))
        }
        switch operation {
        case .insert(let table, let values, let when):
            let layout = try layoutOf(table)
            let key = try keyFromAssignments(values, layout: layout, event: event, item: item)
            let existing = try current(workspace, layout, key)
            guard try conditionHolds(when, event: event, item: item, row: existing ?? layout.defaultRow, layout: layout) else {
                return report(.insert, table, key, .whenFalse(row: existing))
            }
            if existing != nil { throw OperationFailure(message: "insert into \(table): a row with key \(key) already exists") }
            let row = try assign(values, to: layout.defaultRow, layout: layout, event: event, item: item)
            workspace.put(table, key, row)
            report(.insert, table, key, .wrote(before: nil, after: row))
        case .upsert(let table, let values, let when):
            let layout = try layoutOf(table)
            let key = try keyFromAssignments(values, layout: layout, event: event, item: item)
            let existing = try current(workspace, layout, key)
            var base = existing ?? layout.defaultRow
            if existing == nil {
                for (position, index) in layout.keyIndexes.enumerated() { base[index] = key.values[position] }
            }
            guard try conditionHolds(when, event: event, item: item, row: base, layout: layout) else {
                return report(.upsert, table, key, .whenFalse(row: existing))
            }
            let row = try assign(values, to: base, layout: layout, event: event, item: item)
            workspace.put(table, key, row)
            report(.upsert, table, key, .wrote(before: existing, after: row))
        case .update(let table, let keyAssignments, let set, let when, let ifMissing):
            let layout = try layoutOf(table)
            let key = try keyFromAssignments(keyAssignments, layout: layout, event: event, item: item)
            guard let existing = try current(workspace, layout, key) else {
                if ifMissing == .error { throw OperationFailure(message: "update of \(table): no row with key \(key)") }
                return report(.update, table, key, .rowMissing)
            }
            guard try conditionHolds(when, event: event, item: item, row: existing, layout: layout) else {
                return report(.update, table, key, .whenFalse(row: existing))
            }
            let row = try assign(set, to: existing, layout: layout, event: event, item: item)
            workspace.put(table, key, row)
            report(.update, table, key, .wrote(before: existing, after: row))
        case .delete(let table, let keyAssignments, let when):
            let layout = try layoutOf(table)
            let key = try keyFromAssignments(keyAssignments, layout: layout, event: event, item: item)
            guard let existing = try current(workspace, layout, key) else { return report(.delete, table, key, .rowMissing) }
            guard try conditionHolds(when, event: event, item: item, row: existing, layout: layout) else {
                return report(.delete, table, key, .whenFalse(row: existing))
            }
            workspace.put(table, key, nil)
            report(.delete, table, key, .wrote(before: existing, after: nil))
        case .forEach(let field, let nested):
            switch arrayAt(field, event: event, item: item) {
            case .array(let elements)?:
                for (index, element) in elements.enumerated() {
                    try run(nested, path: "\(path).for_each[\(index)]", event: event, item: element, workspace: workspace, observer: observer)
                }
            case nil, .null?:
                return  // no array: nothing to do, like an empty one
            default:
                throw OperationFailure(message: "for_each: \(field) is not an array")
            }
        }
    }

    private func layoutOf(_ table: String) throws -> TableLayout {
        guard let layout = layouts[table] else { throw OperationFailure(message: "unknown table \(table)") }
        return layout
    }

    private func current(_ workspace: RowWorkspace, _ layout: TableLayout, _ key: RowKey) throws -> [ProjectionValue]? {
        switch workspace.lookup(layout.name, key) {
        case .present(let row): return row
        case .absent: return nil
        case .unknown: throw OperationFailure(message: "row \(key) of \(layout.name) was not prefetched (engine bug)")
        }
    }

    private func arrayAt(_ field: FieldReference, event: ProjectionEvent, item: JSONValue?) -> JSONValue? {
        switch field {
        case .payload(let path): event.payload.value(at: path[...])
        case .metadata(let path): event.metadata.value(at: path[...])
        case .item(let path): item?.value(at: path[...])
        case .envelope: nil
        }
    }

    /// The key a set of assignments names: the key columns' values, canonical for their types.
    func keyFromAssignments(_ assignments: [ColumnAssignment], layout: TableLayout, event: ProjectionEvent, item: JSONValue?) throws -> RowKey {
        var values: [ProjectionValue] = []
        values.reserveCapacity(layout.keyIndexes.count)
        let context = EvaluationContext(event: event, item: item, row: layout.defaultRow, layout: layout)
        for index in layout.keyIndexes {
            let column = layout.columns[index]
            guard let assignment = assignments.first(where: { $0.column == column.name }) else {
                throw OperationFailure(message: "no value for key column \(column.name)")
            }
            let value = try evaluate(assignment.value, context, what: "key column \(column.name)")
            guard value != .null else { throw OperationFailure(message: "key column \(column.name) is null (\(assignment.value))") }
            values.append(try canonical(value, column))
        }
        return RowKey(values)
    }

    /// Evaluates every assignment against `row` (all read the row as it was), then stores them.
    private func assign(_ assignments: [ColumnAssignment], to row: [ProjectionValue], layout: TableLayout, event: ProjectionEvent, item: JSONValue?) throws -> [ProjectionValue] {
        let context = EvaluationContext(event: event, item: item, row: row, layout: layout)
        var result = row
        for assignment in assignments {
            guard let index = layout.columnIndex[assignment.column] else { throw OperationFailure(message: "unknown column \(assignment.column)") }
            let value = try evaluate(assignment.value, context, what: "column \(assignment.column)")
            result[index] = try canonical(value, layout.columns[index])
        }
        return result
    }

    private func conditionHolds(_ condition: Expression?, event: ProjectionEvent, item: JSONValue?, row: [ProjectionValue], layout: TableLayout) throws -> Bool {
        guard let condition else { return true }
        let value = try evaluate(condition, EvaluationContext(event: event, item: item, row: row, layout: layout), what: "when")
        do {
            return try ExpressionEvaluator.isTrue(value)  // null is false; a non-boolean is an error
        } catch {
            throw OperationFailure(message: "when = \(condition): \(error)")
        }
    }

    private func evaluate(_ expression: Expression, _ context: EvaluationContext, what: String) throws -> ProjectionValue {
        do {
            return try ExpressionEvaluator.evaluate(expression, in: context)
        } catch {
            throw OperationFailure(message: "\(what) = \(expression): \(error)")
        }
    }

    private func canonical(_ value: ProjectionValue, _ column: ColumnDefinition) throws -> ProjectionValue {
        do {
            return try ColumnValues.canonical(value, for: column)
        } catch {
            throw OperationFailure(message: error.message)
        }
    }
}

/// What expressions read: the event (and `for_each` item) and the row being written.
struct EvaluationContext: ExpressionContext {
    let event: ProjectionEvent
    let item: JSONValue?
    let row: [ProjectionValue]
    let layout: TableLayout

    func value(of field: FieldReference) throws(ExpressionError) -> ProjectionValue {
        event.value(of: field, item: item)
    }

    func value(ofColumn name: String) throws(ExpressionError) -> ProjectionValue {
        guard let index = layout.columnIndex[name] else { return .null }
        return row[index]
    }
}
