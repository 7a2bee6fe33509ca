import RepriseProjection

/// Runs a projection file's row operations on a `RowWorkspace`: the interpreter of the
/// projection language. Synchronous and allocation-light, since it runs once per event.
struct DeclarativeProjection: Sendable {
    let definition: ProjectionDefinition
    let layouts: [String: TableLayout]
    /// Whether any handler has a lookup (its events may need rows only known once others are read).
    let hasLookups: Bool

    init(_ definition: ProjectionDefinition) {
        self.definition = definition
        var layouts: [String: TableLayout] = [:]
        for table in definition.tables { layouts[table.name] = TableLayout(table) }
        self.layouts = layouts
        hasLookups = definition.handlers.values.contains { Self.containsLookup($0) }
    }

    private static func containsLookup(_ operations: [RowOperation]) -> Bool {
        operations.contains {
            switch $0 {
            case .lookup: true
            case .forEach(_, let nested): containsLookup(nested)
            default: false
            }
        }
    }

    /// The rows `event` will read or write, as far as the event and the rows in memory tell, so
    /// the chunk can fetch unknown ones in one query per table. Keys that depend on a lookup whose
    /// row is not in memory yet are found by a later stage (`ChunkApplier.applyDeclarative`).
    /// `lookupTables` receives the tables a lookup reads from.
    func keysTouched(by event: ProjectionEvent, workspace: RowWorkspace, into keys: inout [String: Set<RowKey>], lookupTables: inout Set<String>) {
        guard let operations = definition.handlers[event.type] else { return }
        collectKeys(operations, event: event, item: nil, lookups: LookupRows(), workspace: workspace, into: &keys, lookupTables: &lookupTables)
    }

    private func collectKeys(_ operations: [RowOperation], event: ProjectionEvent, item: JSONValue?, lookups: LookupRows, workspace: RowWorkspace,
                             into keys: inout [String: Set<RowKey>], lookupTables: inout Set<String>) {
        var lookups = lookups
        for operation in operations {
            switch operation {
            case .insert(let table, let values, _), .upsert(let table, let values, _):
                if let layout = layouts[table], let key = try? keyFromAssignments(values, layout: layout, event: event, item: item, lookups: lookups) {
                    keys[table, default: []].insert(key)
                }
            case .update(let table, let key, _, _, _), .delete(let table, let key, _):
                if let layout = layouts[table], let rowKey = try? keyFromAssignments(key, layout: layout, event: event, item: item, lookups: lookups) {
                    keys[table, default: []].insert(rowKey)
                }
            case .forEach(let path, let nested):
                if case .array(let elements)? = arrayAt(path, event: event, item: item) {
                    for element in elements {
                        collectKeys(nested, event: event, item: element, lookups: lookups, workspace: workspace, into: &keys, lookupTables: &lookupTables)
                    }
                }
            case .lookup(let lookup):
                guard let layout = layouts[lookup.table] else { continue }
                var row = LookupRows.Row.unresolved
                switch Result(catching: { try lookupKey(lookup, layout: layout, event: event, item: item, lookups: lookups) }) {
                case .success(let key?):
                    keys[lookup.table, default: []].insert(key)
                    lookupTables.insert(lookup.table)
                    switch workspace.lookup(lookup.table, key) {
                    case .present(let values): row = .row(values)
                    case .absent: row = .missing
                    case .unknown: row = .unresolved
                    }
                case .success(nil): row = .missing
                case .failure: row = .unresolved
                }
                if case .missing = row, lookup.ifMissing != .null { return }
                lookups.append(lookup.alias, layout, row)
            }
        }
    }

    /// Applies `event` to the workspace. Throws `EngineError` naming the operation and the position.
    /// Returns false, with the event's writes undone, when it needs a row the workspace does not
    /// hold yet (possible only with lookups): the chunk reads it and applies the event again.
    /// `observer` (for `reprise trace`) hears what each operation did; rebuilds pass none.
    func apply(_ event: ProjectionEvent, to workspace: RowWorkspace, observer: OperationObserver? = nil) throws(EngineError) -> Bool {
        guard let operations = definition.handlers[event.type] else { return true }
        workspace.beginEvent()
        do {
            try run(operations, path: "handlers.\(event.type)", event: event, item: nil, lookups: LookupRows(), workspace: workspace, observer: observer)
            return true
        } catch is RowNeeded {
            workspace.rollbackEvent()
            return false
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(.handlerFailed, projection: definition.name, position: event.position, eventType: event.type, message: "\(error)")
        }
    }

    /// Runs `event` on a speculating workspace only to note the rows it needs; failures are the
    /// real pass's to report.
    func speculate(_ event: ProjectionEvent, on workspace: RowWorkspace) {
        _ = try? apply(event, to: workspace)
    }

    /// Thrown when an event needs a row that is not in memory; never leaves `apply`.
    struct RowNeeded: Error {}

    private func run(_ operations: [RowOperation], path: String, event: ProjectionEvent, item: JSONValue?, lookups: LookupRows,
                     workspace: RowWorkspace, observer: OperationObserver?) throws {
        var lookups = lookups
        for (index, operation) in operations.enumerated() {
            let here = "\(path)[\(index)]"
            do {
                if case .lookup(let lookup) = operation {
                    guard let row = try resolve(lookup, event: event, item: item, lookups: lookups, workspace: workspace) else {
                        return  // if_missing: skip
                    }
                    lookups.append(lookup.alias, try layoutOf(lookup.table), row)
                    continue
                }
                try run(operation, path: here, event: event, item: item, lookups: lookups, workspace: workspace, observer: observer)
            } catch let needed as RowNeeded {
                throw needed
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

    /// A lookup's row as it was before the event's operations; nil when the row is missing and
    /// the policy is skip.
    private func resolve(_ lookup: Lookup, event: ProjectionEvent, item: JSONValue?, lookups: LookupRows,
                         workspace: RowWorkspace) throws -> LookupRows.Row? {
        let layout = try layoutOf(lookup.table)
        var found: [ProjectionValue]?
        let key = try lookupKey(lookup, layout: layout, event: event, item: item, lookups: lookups)
        if let key {
            switch workspace.lookupBeforeEvent(lookup.table, key) {
            case .present(let row): found = row
            case .absent: found = nil
            case .unknown:
                guard workspace.speculating else { throw RowNeeded() }
                workspace.noteMissing(lookup.table, key, byLookup: true)
            }
        }
        if let found { return .row(found) }
        switch lookup.ifMissing {
        case .null: return .missing
        case .skip: return nil
        case .error:
            throw OperationFailure(message: "lookup \(lookup.alias): no row of \(lookup.table) with key \(key.map(\.description) ?? "(null)")")
        }
    }

    /// A lookup's key; nil when a key column's value is null (no row can have it).
    private func lookupKey(_ lookup: Lookup, layout: TableLayout, event: ProjectionEvent, item: JSONValue?, lookups: LookupRows) throws -> RowKey? {
        let context = EvaluationContext(event: event, item: item, row: layout.defaultRow, layout: layout, lookups: lookups)
        var values: [ProjectionValue] = []
        for index in layout.keyIndexes {
            let column = layout.columns[index]
            guard let assignment = lookup.key.first(where: { $0.column == column.name }) else {
                throw OperationFailure(message: "lookup \(lookup.alias): no value for key column \(column.name)")
            }
            let value = try evaluate(assignment.value, context, what: "lookup \(lookup.alias) key column \(column.name)")
            if value == .null { return nil }
            values.append(try canonical(value, column))
        }
        return RowKey(values)
    }

    private func run(_ operation: RowOperation, path: String, event: ProjectionEvent, item: JSONValue?, lookups: LookupRows,
                     workspace: RowWorkspace, observer: OperationObserver?) throws {
        func report(_ kind: OperationStep.Kind, _ table: String, _ key: RowKey, _ outcome: OperationStep.Outcome) {
            observer?(OperationStep(path: path, kind: kind, table: table, key: key, outcome: outcome))
        }
        switch operation {
        case .insert(let table, let values, let when):
            let layout = try layoutOf(table)
            let key = try keyFromAssignments(values, layout: layout, event: event, item: item, lookups: lookups)
            let existing = try current(workspace, layout, key)
            guard try conditionHolds(when, event: event, item: item, lookups: lookups, row: existing ?? layout.defaultRow, layout: layout) else {
                return report(.insert, table, key, .whenFalse(row: existing))
            }
            if existing != nil { throw OperationFailure(message: "insert into \(table): a row with key \(key) already exists") }
            let row = try assign(values, to: layout.defaultRow, layout: layout, event: event, item: item, lookups: lookups)
            workspace.put(table, key, row)
            report(.insert, table, key, .wrote(before: nil, after: row))
        case .upsert(let table, let values, let when):
            let layout = try layoutOf(table)
            let key = try keyFromAssignments(values, layout: layout, event: event, item: item, lookups: lookups)
            let existing = try current(workspace, layout, key)
            var base = existing ?? layout.defaultRow
            if existing == nil {
                for (position, index) in layout.keyIndexes.enumerated() { base[index] = key.values[position] }
            }
            guard try conditionHolds(when, event: event, item: item, lookups: lookups, row: base, layout: layout) else {
                return report(.upsert, table, key, .whenFalse(row: existing))
            }
            let row = try assign(values, to: base, layout: layout, event: event, item: item, lookups: lookups)
            workspace.put(table, key, row)
            report(.upsert, table, key, .wrote(before: existing, after: row))
        case .update(let table, let keyAssignments, let set, let when, let ifMissing):
            let layout = try layoutOf(table)
            let key = try keyFromAssignments(keyAssignments, layout: layout, event: event, item: item, lookups: lookups)
            guard let existing = try current(workspace, layout, key) else {
                if ifMissing == .error { throw OperationFailure(message: "update of \(table): no row with key \(key)") }
                return report(.update, table, key, .rowMissing)
            }
            guard try conditionHolds(when, event: event, item: item, lookups: lookups, row: existing, layout: layout) else {
                return report(.update, table, key, .whenFalse(row: existing))
            }
            let row = try assign(set, to: existing, layout: layout, event: event, item: item, lookups: lookups)
            workspace.put(table, key, row)
            report(.update, table, key, .wrote(before: existing, after: row))
        case .delete(let table, let keyAssignments, let when):
            let layout = try layoutOf(table)
            let key = try keyFromAssignments(keyAssignments, layout: layout, event: event, item: item, lookups: lookups)
            guard let existing = try current(workspace, layout, key) else { return report(.delete, table, key, .rowMissing) }
            guard try conditionHolds(when, event: event, item: item, lookups: lookups, row: existing, layout: layout) else {
                return report(.delete, table, key, .whenFalse(row: existing))
            }
            workspace.put(table, key, nil)
            report(.delete, table, key, .wrote(before: existing, after: nil))
        case .forEach(let field, let nested):
            switch arrayAt(field, event: event, item: item) {
            case .array(let elements)?:
                for (index, element) in elements.enumerated() {
                    try run(nested, path: "\(path).for_each[\(index)]", event: event, item: element, lookups: lookups, workspace: workspace, observer: observer)
                }
            case nil, .null?:
                return  // no array: nothing to do, like an empty one
            default:
                throw OperationFailure(message: "for_each: \(field) is not an array")
            }
        case .lookup:
            return  // resolved by the list that holds it
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
        case .unknown:
            if workspace.speculating {
                workspace.noteMissing(layout.name, key, byLookup: false)
                return nil
            }
            // Only lookups make a key depend on rows; without them every key was read first.
            guard workspace.tracksEvents else {
                throw OperationFailure(message: "row \(key) of \(layout.name) was not prefetched (engine bug)")
            }
            throw RowNeeded()
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
    func keyFromAssignments(_ assignments: [ColumnAssignment], layout: TableLayout, event: ProjectionEvent, item: JSONValue?,
                            lookups: LookupRows) throws -> RowKey {
        var values: [ProjectionValue] = []
        values.reserveCapacity(layout.keyIndexes.count)
        let context = EvaluationContext(event: event, item: item, row: layout.defaultRow, layout: layout, lookups: lookups)
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
    private func assign(_ assignments: [ColumnAssignment], to row: [ProjectionValue], layout: TableLayout, event: ProjectionEvent, item: JSONValue?,
                        lookups: LookupRows) throws -> [ProjectionValue] {
        let context = EvaluationContext(event: event, item: item, row: row, layout: layout, lookups: lookups)
        var result = row
        for assignment in assignments {
            guard let index = layout.columnIndex[assignment.column] else { throw OperationFailure(message: "unknown column \(assignment.column)") }
            let value = try evaluate(assignment.value, context, what: "column \(assignment.column)")
            result[index] = try canonical(value, layout.columns[index])
        }
        return result
    }

    private func conditionHolds(_ condition: Expression?, event: ProjectionEvent, item: JSONValue?, lookups: LookupRows, row: [ProjectionValue],
                                layout: TableLayout) throws -> Bool {
        guard let condition else { return true }
        let value = try evaluate(condition, EvaluationContext(event: event, item: item, row: row, layout: layout, lookups: lookups), what: "when")
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
    let lookups: LookupRows

    func value(of field: FieldReference) throws(ExpressionError) -> ProjectionValue {
        event.value(of: field, item: item)
    }

    func value(ofColumn name: String) throws(ExpressionError) -> ProjectionValue {
        guard let index = layout.columnIndex[name] else { return .null }
        return row[index]
    }

    func value(ofLookup alias: String, column: String) throws(ExpressionError) -> ProjectionValue {
        try lookups.value(alias, column)
    }
}

/// The rows a handler's lookups found so far, by alias (a handler has a few: a list is quicker
/// than a dictionary).
struct LookupRows {
    enum Row {
        case row([ProjectionValue])
        /// No such row: every column reads null.
        case missing
        /// Not in memory yet (only while collecting keys): what depends on it is not known.
        case unresolved
    }

    private var aliases: [String] = []
    private var entries: [(layout: TableLayout, row: Row)] = []

    mutating func append(_ alias: String, _ layout: TableLayout, _ row: Row) {
        aliases.append(alias)
        entries.append((layout, row))
    }

    func value(_ alias: String, _ column: String) throws(ExpressionError) -> ProjectionValue {
        guard let position = aliases.lastIndex(of: alias) else { throw ExpressionError("unknown lookup \(alias)") }
        let entry = entries[position]
        switch entry.row {
        case .row(let values):
            guard let index = entry.layout.columnIndex[column] else { throw ExpressionError("table \(entry.layout.name) has no column \(column)") }
            return values[index]
        case .missing:
            return .null
        case .unresolved:
            throw ExpressionError("lookup \(alias) is not read yet")
        }
    }
}
