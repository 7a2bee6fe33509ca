import RepriseProjection

/// Runs a projection file's row operations on a `RowWorkspace`: the interpreter of the
/// projection language. Synchronous and allocation-light, since it runs once per event: the
/// handlers are compiled once (tables to layouts, columns to row slots, key columns to their
/// assignments, expressions to `CompiledExpression`s), so applying an event hashes no names.
struct DeclarativeProjection: Sendable {
    let definition: ProjectionDefinition
    let layouts: [String: TableLayout]
    /// Whether any handler has a lookup (its events may need rows only known once others are read).
    let hasLookups: Bool
    /// Positions of the tables whose rows are merged, never read (`mergeTables(_:layouts:)`).
    let mergeTablePositions: [Int]
    /// Per event type, its operations compiled (a handful: comparing short type names beats hashing them).
    private let handlers: [(type: String, handler: Handler)]
    /// The event fields the compiled expressions read, by index.
    let fields: EventFields

    init(_ definition: ProjectionDefinition) {
        self.definition = definition
        var layouts: [String: TableLayout] = [:]
        for (position, table) in definition.tables.enumerated() { layouts[table.name] = TableLayout(table, position: position) }
        self.layouts = layouts
        hasLookups = definition.handlers.values.contains { Self.containsLookup($0) }
        let merged = Self.mergeTables(definition, layouts: layouts)
        mergeTablePositions = merged.compactMap { layouts[$0]?.position }.sorted()
        var compiler = Compiler(layouts: layouts, mergeTables: merged)
        var handlers: [(type: String, handler: Handler)] = []
        for (type, operations) in definition.handlers.sorted(by: { $0.key < $1.key }) {
            handlers.append((type, Handler(path: "handlers.\(type)", steps: compiler.compile(operations))))
        }
        self.handlers = handlers
        fields = EventFields(compiler.fields)
    }

    private func compiledHandler(_ type: String) -> Handler? {
        for entry in handlers where entry.type == type { return entry.handler }
        return nil
    }

    /// Whether events of `type` have operations here.
    func handles(_ type: String) -> Bool {
        handlers.contains { $0.type == type }
    }

    static func containsLookup(_ operations: [RowOperation]) -> Bool {
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
    /// `lookupTables` receives the tables a lookup reads from. Keys of rows the workspace already
    /// knows (present or absent) are left out: there is nothing to fetch for them.
    ///
    /// `tape` (projections without lookups only: their keys depend on nothing but the event)
    /// records every key evaluated here, in the order `apply` asks for them, so `apply` need not
    /// evaluate them again.
    func keysTouched(by event: ProjectionEvent, workspace: RowWorkspace, into keys: inout [String: Set<RowKey>], lookupTables: inout Set<String>,
                     tape: KeyTape? = nil) {
        var touched = TableKeys(workspace.tables)
        keysTouched(by: [event], at: 0, workspace: workspace, into: &touched, tape: tape)
        for (table, tableKeys) in touched.named() { keys[table, default: []].formUnion(tableKeys) }
        lookupTables.formUnion(touched.lookupTableNames)
    }

    /// `keysTouched(by:)` for `events[index]`, read in place (a copy of an event retains each field).
    func keysTouched(by events: [ProjectionEvent], at index: Int, workspace: RowWorkspace, into keys: inout TableKeys, tape: KeyTape? = nil) {
        keysTouched(in: EventFrame(events, index, fields), at: index, workspace: workspace, into: &keys, tape: tape)
    }

    /// A frame over a chunk's events for `keysTouched(in:at:)` and `apply(in:at:)` (one per pass,
    /// moved from event to event); `keys` only for `apply`.
    func frame(over events: [ProjectionEvent], at index: Int, keys: KeyTape? = nil) -> EventFrame {
        EventFrame(events, index, fields, keys: hasLookups ? nil : keys)
    }

    /// `keysTouched(by:at:)` through a frame over the events (made by `frame(over:at:)` without keys).
    func keysTouched(in frame: EventFrame, at index: Int, workspace: RowWorkspace, into keys: inout TableKeys, tape: KeyTape? = nil) {
        tape?.startEvent()
        guard let handler = compiledHandler(frame.eventType(at: index)) else { return }
        frame.move(to: index)
        collectKeys(handler.steps, frame: frame, item: nil, lookups: LookupRows(), workspace: workspace, into: &keys,
                    tape: hasLookups ? nil : tape)
    }

    private func collectKeys(_ steps: [Step], frame: EventFrame, item: ForEachItem?, lookups: LookupRows, workspace: RowWorkspace,
                             into keys: inout TableKeys, tape: KeyTape?) {
        var lookups = lookups
        for step in steps {
            switch step {
            case .insert(let target, _), .upsert(let target, _), .update(let target, _, _), .delete(let target, _):
                var key: RowKey?
                if let layout = target.layout {
                    key = try? keyOf(target, layout: layout, frame: frame, item: item, lookups: lookups)
                    // A merge reads no row: its key is only kept for `apply`.
                    if let key, target.merge == nil || !workspace.mergesRows(of: layout.position) { keys.insert(key, table: layout.position) }
                }
                tape?.append(key)
            case .forEach(let field, let nested):
                switch frame.elements(field, item: item) {
                case .trees(let elements):
                    for element in elements {
                        collectKeys(nested, frame: frame, item: .tree(element), lookups: lookups, workspace: workspace, into: &keys,
                                    tape: tape)
                    }
                case .slots(let items):
                    for index in 0..<items.count {
                        collectKeys(nested, frame: frame, item: .slots(items, index), lookups: lookups, workspace: workspace, into: &keys,
                                    tape: tape)
                    }
                case .none, .notArray:
                    break
                }
            case .lookup(let lookup, let target):
                guard let layout = target.layout else { continue }
                var row = LookupRows.Row.unresolved
                switch Result(catching: { try lookupKey(lookup, target, layout: layout, frame: frame, item: item, lookups: lookups) }) {
                case .success(let key?):
                    keys.insert(key, table: layout.position)
                    keys.lookupTables.insert(layout.position)
                    switch workspace.lookup(layout.position, key) {
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
    /// `keys`: the tape `keysTouched` recorded, at this event (`KeyTape.rewind(toEvent:)`).
    func apply(_ event: ProjectionEvent, to workspace: RowWorkspace, observer: OperationObserver? = nil, keys: KeyTape? = nil) throws(EngineError) -> Bool {
        try apply([event], at: 0, to: workspace, observer: observer, keys: keys)
    }

    /// `apply` to `events[index]`, read in place.
    func apply(_ events: [ProjectionEvent], at index: Int, to workspace: RowWorkspace, observer: OperationObserver? = nil,
               keys: KeyTape? = nil) throws(EngineError) -> Bool {
        try apply(in: frame(over: events, at: index, keys: keys), at: index, to: workspace, observer: observer)
    }

    /// `apply(_:at:)` through a frame over the events (made by `frame(over:at:keys:)`).
    func apply(in frame: EventFrame, at index: Int, to workspace: RowWorkspace, observer: OperationObserver? = nil) throws(EngineError) -> Bool {
        guard let handler = compiledHandler(frame.eventType(at: index)) else { return true }
        frame.move(to: index)
        workspace.beginEvent()
        do {
            try run(handler.steps, path: { handler.path }, frame: frame, item: nil, lookups: LookupRows(), workspace: workspace, observer: observer)
            return true
        } catch is RowNeeded {
            workspace.rollbackEvent()
            return false
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(.handlerFailed, projection: definition.name, position: frame.event.position, eventType: frame.event.type,
                              message: "\(error)")
        }
    }

    /// Runs `event` on a speculating workspace only to note the rows it needs; failures are the
    /// real pass's to report.
    func speculate(_ event: ProjectionEvent, on workspace: RowWorkspace) {
        _ = try? apply(event, to: workspace)
    }

    func speculate(_ events: [ProjectionEvent], at index: Int, on workspace: RowWorkspace) {
        _ = try? apply(events, at: index, to: workspace)
    }

    /// Thrown when an event needs a row that is not in memory; never leaves `apply`.
    struct RowNeeded: Error {}

    /// `path` gives the operation path for messages and the observer (`handlers.T[0].for_each[2][1]`);
    /// it is built only when one of them needs it.
    private func run(_ steps: [Step], path: () -> String, frame: EventFrame, item: ForEachItem?, lookups: LookupRows,
                     workspace: RowWorkspace, observer: OperationObserver?) throws {
        var lookups = lookups
        for (index, step) in steps.enumerated() {
            func here() -> String { "\(path())[\(index)]" }
            do {
                if case .lookup(let lookup, let target) = step {
                    guard let row = try resolve(lookup, target, frame: frame, item: item, lookups: lookups, workspace: workspace) else {
                        return  // if_missing: skip
                    }
                    lookups.append(lookup.alias, try layoutOf(target), row)
                    continue
                }
                try run(step, path: here, frame: frame, item: item, lookups: lookups, workspace: workspace, observer: observer)
            } catch let needed as RowNeeded {
                throw needed
            } catch let failure as OperationFailure {
                throw EngineError(
                    .handlerFailed, projection: definition.name, position: frame.event.position, eventType: frame.event.type,
                    message: "\(here()): \(failure.message)")
            } catch let error as EngineError {
                throw error
            } catch {
                throw EngineError(.handlerFailed, projection: definition.name, position: frame.event.position, eventType: frame.event.type,
                                  message: "\(here()): \(error)")
            }
        }
    }

    struct OperationFailure: Error { let message: String }

    /// A lookup's row as it was before the event's operations; nil when the row is missing and
    /// the policy is skip.
    private func resolve(_ lookup: Lookup, _ target: Target, frame: EventFrame, item: ForEachItem?, lookups: LookupRows,
                         workspace: RowWorkspace) throws -> LookupRows.Row? {
        let layout = try layoutOf(target)
        var found: [ProjectionValue]?
        let key = try lookupKey(lookup, target, layout: layout, frame: frame, item: item, lookups: lookups)
        if let key {
            switch workspace.lookupBeforeEvent(layout.position, key) {
            case .present(let row): found = row
            case .absent: found = nil
            case .unknown:
                guard workspace.speculating else { throw RowNeeded() }
                workspace.noteMissing(layout.position, key, byLookup: true)
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
    private func lookupKey(_ lookup: Lookup, _ target: Target, layout: TableLayout, frame: EventFrame, item: ForEachItem?,
                           lookups: LookupRows) throws -> RowKey? {
        try layout.defaultRow.withUnsafeBufferPointer { defaultRow in
            let context = SlotContext(frame: frame, item: item, row: defaultRow, lookups: lookups)
            var values: [ProjectionValue] = []
            values.reserveCapacity(target.key.count)
            for slot in target.key {
                guard let expression = slot.expression else {
                    throw OperationFailure(message: "lookup \(lookup.alias): no value for key column \(slot.name)")
                }
                let value = try Self.evaluate(expression, context, what: { "lookup \(lookup.alias) key column \(slot.name)" })
                if case .null = value { return nil }
                values.append(try Self.canonical(value, slot))
            }
            return RowKey(values)
        }
    }

    private func run(_ step: Step, path: () -> String, frame: EventFrame, item: ForEachItem?, lookups: LookupRows,
                     workspace: RowWorkspace, observer: OperationObserver?) throws {
        // Autoclosures: without an observer (rebuilds), the outcome and its rows are never built.
        func report(_ kind: OperationStep.Kind, _ table: @autoclosure () -> String, _ key: RowKey, _ outcome: @autoclosure () -> OperationStep.Outcome) {
            guard let observer else { return }
            observer(OperationStep(path: path(), kind: kind, table: table(), key: key, outcome: outcome()))
        }
        switch step {
        case .insert(let target, let when):
            let layout = try layoutOf(target)
            let key = try operationKey(target, layout: layout, frame: frame, item: item, lookups: lookups)
            let existing = try current(workspace, layout, key)
            guard try conditionHolds(when, frame: frame, item: item, lookups: lookups, row: existing ?? layout.defaultRow) else {
                return report(.insert, layout.name, key, .whenFalse(row: existing))
            }
            if existing != nil { throw OperationFailure(message: "insert into \(layout.name): a row with key \(key) already exists") }
            var row = layout.defaultRow
            _ = try Self.change(&row, target, when: nil, frame: frame, item: item, lookups: lookups)
            workspace.put(layout.position, key, row)
            report(.insert, layout.name, key, .wrote(before: nil, after: row))
        case .upsert(let target, let when):
            let layout = try layoutOf(target)
            let key = try operationKey(target, layout: layout, frame: frame, item: item, lookups: lookups)
            if let merge = target.merge, observer == nil, workspace.mergesRows(of: layout.position) {
                return try Self.merge(target, merge, layout: layout, key: key, frame: frame, item: item, lookups: lookups, workspace: workspace)
            }
            if try changeInOverlay(target, when: when, layout: layout, key: key, frame: frame, item: item, lookups: lookups, workspace: workspace,
                                   observer: observer) {
                return
            }
            let existing = try current(workspace, layout, key)
            var row = existing ?? layout.defaultRow
            if existing == nil {
                for (position, index) in layout.keyIndexes.enumerated() { row[index] = key.values[position] }
            }
            guard try Self.change(&row, target, when: when, frame: frame, item: item, lookups: lookups) else {
                return report(.upsert, layout.name, key, .whenFalse(row: existing))
            }
            workspace.put(layout.position, key, row)
            report(.upsert, layout.name, key, .wrote(before: existing, after: row))
        case .update(let target, let when, let ifMissing):
            let layout = try layoutOf(target)
            let key = try operationKey(target, layout: layout, frame: frame, item: item, lookups: lookups)
            if try changeInOverlay(target, when: when, layout: layout, key: key, frame: frame, item: item, lookups: lookups, workspace: workspace,
                                   observer: observer) {
                return
            }
            guard let existing = try current(workspace, layout, key) else {
                if ifMissing == .error { throw OperationFailure(message: "update of \(layout.name): no row with key \(key)") }
                return report(.update, layout.name, key, .rowMissing)
            }
            var row = existing
            guard try Self.change(&row, target, when: when, frame: frame, item: item, lookups: lookups) else {
                return report(.update, layout.name, key, .whenFalse(row: existing))
            }
            workspace.put(layout.position, key, row)
            report(.update, layout.name, key, .wrote(before: existing, after: row))
        case .delete(let target, let when):
            let layout = try layoutOf(target)
            let key = try operationKey(target, layout: layout, frame: frame, item: item, lookups: lookups)
            guard let existing = try current(workspace, layout, key) else { return report(.delete, layout.name, key, .rowMissing) }
            guard try conditionHolds(when, frame: frame, item: item, lookups: lookups, row: existing) else {
                return report(.delete, layout.name, key, .whenFalse(row: existing))
            }
            workspace.put(layout.position, key, nil)
            report(.delete, layout.name, key, .wrote(before: existing, after: nil))
        case .forEach(let field, let nested):
            func runElement(_ index: Int, _ element: ForEachItem) throws {
                func elementPath() -> String { "\(path()).for_each[\(index)]" }
                try run(nested, path: elementPath, frame: frame, item: element, lookups: lookups, workspace: workspace, observer: observer)
            }
            switch frame.elements(field, item: item) {
            case .trees(let elements):
                for (index, element) in elements.enumerated() { try runElement(index, .tree(element)) }
            case .slots(let items):
                for index in 0..<items.count { try runElement(index, .slots(items, index)) }
            case .none:
                return  // no array: nothing to do, like an empty one
            case .notArray:
                throw OperationFailure(message: "for_each: \(frame.fields.references[field]) is not an array")
            }
        case .lookup:
            return  // resolved by the list that holds it
        }
    }

    private func layoutOf(_ target: Target) throws -> TableLayout {
        guard let layout = target.layout else { throw OperationFailure(message: "unknown table \(target.table)") }
        return layout
    }

    private func current(_ workspace: RowWorkspace, _ layout: TableLayout, _ key: RowKey) throws -> [ProjectionValue]? {
        switch workspace.lookup(layout.position, key) {
        case .present(let row): return row
        case .absent: return nil
        case .unknown:
            if workspace.speculating {
                workspace.noteMissing(layout.position, key, byLookup: false)
                return nil
            }
            // Only lookups make a key depend on rows; without them every key was read first.
            guard workspace.tracksEvents else {
                throw OperationFailure(message: "row \(key) of \(layout.name) was not prefetched (engine bug)")
            }
            throw RowNeeded()
        }
    }

    /// The key an operation names, from the event's key tape when `keysTouched` evaluated it.
    private func operationKey(_ target: Target, layout: TableLayout, frame: EventFrame, item: ForEachItem?, lookups: LookupRows) throws -> RowKey {
        if let tape = frame.keys, let key = tape.take() { return key }
        return try keyOf(target, layout: layout, frame: frame, item: item, lookups: lookups)
    }

    /// The key an operation names: its key columns' values, canonical for their types.
    private func keyOf(_ target: Target, layout: TableLayout, frame: EventFrame, item: ForEachItem?, lookups: LookupRows) throws -> RowKey {
        // `reserveCapacity` on an empty array: a specialized allocation (`Array(repeating:count:)`
        // and `init(unsafeUninitializedCapacity:)` call the stdlib's unspecialized allocator,
        // which looks up the array's type metadata per key: twice the instructions).
        var values: [ProjectionValue] = []
        values.reserveCapacity(target.key.count)
        try layout.defaultRow.withUnsafeBufferPointer { defaultRow in
            let context = SlotContext(frame: frame, item: item, row: defaultRow, lookups: lookups)
            for slot in target.key {
                guard let expression = slot.expression else { throw OperationFailure(message: "no value for key column \(slot.name)") }
                let value = try Self.evaluate(expression, context, what: { "key column \(slot.name)" })
                if case .null = value { throw OperationFailure(message: "key column \(slot.name) is null (\(expression.source))") }
                values.append(try Self.canonical(value, slot))
            }
        }
        return RowKey(values)
    }

    /// An upsert or update of a row the chunk in progress already wrote: changed in place in the
    /// overlay (no copy of the row per operation). False, having done nothing, when the overlay
    /// holds no row at `key`, and with an observer (a trace, which reports the row before and
    /// after): the operation then takes the general path. A false `when` changes nothing, as there.
    private func changeInOverlay(_ target: Target, when: Compiled?, layout: TableLayout, key: RowKey, frame: EventFrame, item: ForEachItem?,
                                 lookups: LookupRows, workspace: RowWorkspace, observer: OperationObserver?) throws -> Bool {
        guard observer == nil else { return false }
        // `Self.change`: the closure captures no copy of the projection (a copy retains each of its parts).
        return try workspace.changeInOverlay(layout.position, key) { row in
            _ = try Self.change(&row, target, when: when, frame: frame, item: item, lookups: lookups)
        }
    }

    /// An upsert of a merge table: its operands evaluated from the event, then merged into the
    /// chunk's change to the row (`MergeRow`), which is never read. A failing one changes nothing.
    private static func merge(_ target: Target, _ merge: (kinds: [MergeOperation], operands: [Compiled]), layout: TableLayout, key: RowKey,
                              frame: EventFrame, item: ForEachItem?, lookups: LookupRows, workspace: RowWorkspace) throws {
        try withUnsafeTemporaryAllocation(of: ProjectionValue.self, capacity: max(merge.operands.count, 1)) { operands in
            let operands = operands.baseAddress!
            var evaluated = 0
            defer { operands.deinitialize(count: evaluated) }
            try layout.defaultRow.withUnsafeBufferPointer { defaultRow in
                // The operands read no row: the context's row is never read.
                let context = SlotContext(frame: frame, item: item, row: defaultRow, lookups: lookups)
                for (position, operand) in merge.operands.enumerated() {
                    (operands + position).initialize(to: try Self.evaluate(operand, context, what: { "column \(target.set[position].name)" }))
                    evaluated += 1
                }
            }
            do {
                try workspace.merge(layout.position, key) { row throws(ColumnValues.ConversionError) in
                    try row.merge(columns: target.setIndexes, kinds: merge.kinds, operands: operands, layout: layout)
                }
            } catch let error as ColumnValues.ConversionError {
                throw OperationFailure(message: error.message)
            }
        }
    }

    /// Applies `target`'s assignments to `row` when `when` holds on it (false otherwise, `row`
    /// unchanged). Every expression reads the row as it was: all are evaluated first, then
    /// stored, so a failing one leaves the row as it was; `row` is written in place (when its
    /// array is not shared, no copy).
    private static func change(_ row: inout [ProjectionValue], _ target: Target, when: Compiled?, frame: EventFrame, item: ForEachItem?,
                        lookups: LookupRows) throws -> Bool {
        // The values wait in a stack buffer (no array to keep, clear and check for uniqueness per operation).
        try withUnsafeTemporaryAllocation(of: ProjectionValue.self, capacity: max(target.set.count, 1)) { values in
            let values = values.baseAddress!
            var evaluated = 0
            let holds: Bool
            do {
                // Evaluated against the row as it was, then stored: a failing one leaves the row unchanged.
                holds = try row.withUnsafeBufferPointer { before in
                    try Self.evaluate(target, when: when, on: before, frame: frame, item: item, lookups: lookups, into: values,
                                      evaluated: &evaluated)
                }
            } catch {
                values.deinitialize(count: evaluated)
                throw error
            }
            guard holds else { return false }
            // Every slot has an index (`evaluate` fails on one without): each value moves to its column.
            let indexes = target.setIndexes
            row.withUnsafeMutableBufferPointer { row in
                for position in 0..<evaluated { row[indexes[position]] = (values + position).move() }
            }
            return true
        }
    }

    /// `when` and then every assignment of `target` evaluated against `row`, into `values` (in
    /// `target.set`'s order, `evaluated` counting those initialized); false when `when` does not hold.
    private static func evaluate(_ target: Target, when: Compiled?, on row: UnsafeBufferPointer<ProjectionValue>, frame: EventFrame,
                                 item: ForEachItem?, lookups: LookupRows, into values: UnsafeMutablePointer<ProjectionValue>,
                                 evaluated: inout Int) throws -> Bool {
        let context = SlotContext(frame: frame, item: item, row: row, lookups: lookups)
        if let when, try !Self.holds(when, context) { return false }
        for slot in target.set {
            guard slot.index != nil, let expression = slot.expression else { throw OperationFailure(message: "unknown column \(slot.name)") }
            let value = try Self.evaluate(expression, context, what: { "column \(slot.name)" })
            (values + evaluated).initialize(to: try Self.canonical(value, slot))
            evaluated += 1
        }
        return true
    }

    private func conditionHolds(_ condition: Compiled?, frame: EventFrame, item: ForEachItem?, lookups: LookupRows,
                                row: [ProjectionValue]) throws -> Bool {
        guard let condition else { return true }
        return try row.withUnsafeBufferPointer { row in
            try Self.holds(condition, SlotContext(frame: frame, item: item, row: row, lookups: lookups))
        }
    }

    private static func holds(_ condition: Compiled, _ context: SlotContext) throws -> Bool {
        let value = try Self.evaluate(condition, context, what: { "when" })
        do {
            return try ExpressionEvaluator.isTrue(value)  // null is false; a non-boolean is an error
        } catch {
            throw OperationFailure(message: "when = \(condition.source): \(error)")
        }
    }

    private static func evaluate(_ expression: Compiled, _ context: SlotContext, what: () -> String) throws -> ProjectionValue {
        do {
            return try ExpressionEvaluator.evaluate(expression.compiled, in: context)
        } catch {
            throw OperationFailure(message: "\(what()) = \(expression.source): \(error)")
        }
    }

    private static func canonical(_ value: ProjectionValue, _ slot: Slot) throws -> ProjectionValue {
        do {
            return try ColumnValues.canonical(value, for: slot.column)
        } catch {
            throw OperationFailure(message: error.message)
        }
    }
}

// MARK: - The compiled form

extension DeclarativeProjection {
    /// One event type's operations.
    struct Handler: Sendable {
        /// `handlers.<type>`, the start of every operation path.
        let path: String
        let steps: [Step]
    }

    // Classes, not structs: the per-event loops then retain one reference per column instead
    // of copying every field of it.

    /// An expression with the text it came from (for messages).
    final class Compiled: Sendable {
        let source: Expression
        let compiled: CompiledExpression

        init(source: Expression, compiled: CompiledExpression) {
            self.source = source
            self.compiled = compiled
        }
    }

    /// A column an operation writes or keys on.
    final class Slot: Sendable {
        /// The column name as the operation gives it.
        let name: String
        /// Its slot in the row; nil when the table has no such column (an error when it runs).
        let index: Int?
        let column: ColumnDefinition
        /// Nil for a key column the operation gives no value (an error when it runs).
        let expression: Compiled?

        init(name: String, index: Int?, column: ColumnDefinition, expression: Compiled?) {
            self.name = name
            self.index = index
            self.column = column
            self.expression = expression
        }
    }

    /// The table of an operation, its key columns in key order and its assignments in order.
    final class Target: Sendable {
        let table: String
        /// Nil when the projection has no such table (an error when it runs).
        let layout: TableLayout?
        let key: [Slot]
        let set: [Slot]
        /// `set`'s row slots, in its order (-1 for an unknown column, which fails before any is read).
        let setIndexes: [Int]
        /// An upsert of a merge table: per assignment of `set`, how it merges into a row not read
        /// and the expression of the event it merges (`MergeRow`).
        let merge: (kinds: [MergeOperation], operands: [Compiled])?

        init(table: String, layout: TableLayout?, key: [Slot], set: [Slot], merge: (kinds: [MergeOperation], operands: [Compiled])? = nil) {
            self.table = table
            self.layout = layout
            self.key = key
            self.set = set
            setIndexes = set.map { $0.index ?? -1 }
            self.merge = merge
        }
    }

    indirect enum Step: Sendable {
        case insert(Target, when: Compiled?)
        case upsert(Target, when: Compiled?)
        case update(Target, when: Compiled?, ifMissing: MissingRowPolicy)
        case delete(Target, when: Compiled?)
        /// The array's index in the field table, and the operations per element.
        case forEach(Int, [Step])
        case lookup(Lookup, Target)
    }

    /// Resolves operations against the layouts and numbers the fields they read.
    struct Compiler {
        let layouts: [String: TableLayout]
        /// Tables whose upserts compile to merges (`DeclarativeProjection.mergeTables`).
        let mergeTables: Set<String>
        var fields: [FieldReference] = []
        var fieldIndex: [FieldReference: Int] = [:]

        init(layouts: [String: TableLayout], mergeTables: Set<String> = []) {
            self.layouts = layouts
            self.mergeTables = mergeTables
        }

        mutating func field(_ reference: FieldReference) -> Int {
            if let index = fieldIndex[reference] { return index }
            fields.append(reference)
            fieldIndex[reference] = fields.count - 1
            return fields.count - 1
        }

        mutating func expression(_ expression: Expression, _ layout: TableLayout?) -> Compiled {
            var compiler = self
            let compiled = CompiledExpression(expression, field: { compiler.field($0) }, column: { layout?.columnIndex[$0] })
            self = compiler
            return Compiled(source: expression, compiled: compiled)
        }

        /// `keyFrom`: the assignments that give the key columns (for insert and upsert, `set` itself).
        mutating func target(_ table: String, keyFrom: [ColumnAssignment], set: [ColumnAssignment]) -> Target {
            guard let layout = layouts[table] else { return Target(table: table, layout: nil, key: [], set: []) }
            var key: [Slot] = []
            for index in layout.keyIndexes {
                let column = layout.columns[index]
                let assignment = keyFrom.first { $0.column == column.name }
                key.append(Slot(name: column.name, index: index, column: column, expression: assignment.map { expression($0.value, layout) }))
            }
            var slots: [Slot] = []
            for assignment in set {
                let index = layout.columnIndex[assignment.column]
                // An unknown column fails before its expression would be evaluated.
                slots.append(Slot(
                    name: assignment.column, index: index, column: index.map { layout.columns[$0] } ?? layout.columns[0],
                    expression: index == nil ? nil : expression(assignment.value, layout)))
            }
            return Target(table: table, layout: layout, key: key, set: slots)
        }

        /// `target` for an upsert, with its merge when `table` is a merge table.
        mutating func upsertTarget(_ table: String, _ values: [ColumnAssignment]) -> Target {
            let plain = target(table, keyFrom: values, set: values)
            guard mergeTables.contains(table), let layout = plain.layout else { return plain }
            var kinds: [MergeOperation] = [], operands: [Compiled] = []
            for assignment in values {
                // `mergeTables` checked every assignment of the table's upserts.
                guard let merge = DeclarativeProjection.mergeAssignment(assignment, layout) else { return plain }
                kinds.append(merge.kind)
                operands.append(expression(merge.operand, layout))
            }
            return Target(table: table, layout: layout, key: plain.key, set: plain.set, merge: (kinds, operands))
        }

        mutating func condition(_ when: Expression?, _ table: String) -> Compiled? {
            when.map { expression($0, layouts[table]) }
        }

        mutating func compile(_ operations: [RowOperation]) -> [Step] {
            operations.map { operation in
                switch operation {
                case .insert(let table, let values, let when):
                    return .insert(target(table, keyFrom: values, set: values), when: condition(when, table))
                case .upsert(let table, let values, let when):
                    return .upsert(upsertTarget(table, values), when: condition(when, table))
                case .update(let table, let key, let set, let when, let ifMissing):
                    return .update(target(table, keyFrom: key, set: set), when: condition(when, table), ifMissing: ifMissing)
                case .delete(let table, let key, let when):
                    return .delete(target(table, keyFrom: key, set: []), when: condition(when, table))
                case .forEach(let path, let nested):
                    return .forEach(field(path), compile(nested))
                case .lookup(let lookup):
                    return .lookup(lookup, target(lookup.table, keyFrom: lookup.key, set: []))
                }
            }
        }
    }
}

/// The fields a projection's compiled expressions read, by index. Kept as parallel arrays, the
/// kind without a payload: reading a field's kind then copies (retains) no path.
final class EventFields: Sendable {
    enum Kind: Sendable {
        /// A payload or metadata path (its `FieldPathIDs` number finds its slot).
        case payload
        case metadata
        /// A path on the current `for_each` element (its number finds its item slot).
        case item
        case envelope
    }

    let references: [FieldReference]
    let kinds: [Kind]
    /// Per field, its `FieldPathIDs` number (0 for envelope fields).
    let ids: [Int]
    /// Per field, its path (empty for envelope fields): read only when the field was not decoded into a slot.
    let paths: [[PathSegment]]

    init(_ references: [FieldReference]) {
        self.references = references
        var kinds: [Kind] = [], ids: [Int] = [], paths: [[PathSegment]] = []
        for reference in references {
            switch reference {
            case .payload(let path): kinds.append(.payload); ids.append(FieldPathIDs.id(path)); paths.append(path)
            case .metadata(let path): kinds.append(.metadata); ids.append(FieldPathIDs.id(path)); paths.append(path)
            case .item(let path): kinds.append(.item); ids.append(FieldPathIDs.id(path)); paths.append(path)
            case .envelope: kinds.append(.envelope); ids.append(0); paths.append([])
            }
        }
        self.kinds = kinds
        self.ids = ids
        self.paths = paths
    }
}

/// One event as its operations read it: built once per event and shared by them.
final class EventFrame {
    /// The event is `events[index]`: the step's array is shared, the event not copied (a copy
    /// retains each of its fields).
    /// A chunk's pass moves one frame from event to event (`move(to:)`) instead of allocating one per event.
    private let events: [ProjectionEvent]
    let fields: EventFields
    /// The keys the prefetch pass evaluated for this event, when it kept them.
    let keys: KeyTape?

    /// The event's index and decoded slots (taken out once per event rather than once per field
    /// read), in one stored property: moving to the next event is one exclusivity-checked access.
    private var current: Current

    private struct Current {
        var index: Int
        var payloadFields: DecodedFields?
        var metadataFields: DecodedFields?

        init(_ event: ProjectionEvent, at index: Int) {
            self.index = index
            payloadFields = event.payloadFields
            metadataFields = event.metadataFields
        }
    }

    init(_ events: [ProjectionEvent], _ index: Int, _ fields: EventFields, keys: KeyTape? = nil) {
        self.events = events
        self.fields = fields
        self.keys = keys
        current = Current(events[index], at: index)
    }

    var index: Int { current.index }

    /// The frame now reads `events[index]`.
    func move(to index: Int) {
        guard index != current.index else { return }
        current = Current(events[index], at: index)
    }

    var event: ProjectionEvent {
        _read { yield events[current.index] }
    }

    /// The type of another event of the frame's array (which handler to run, before moving).
    func eventType(at index: Int) -> String { events[index].type }

    /// The value of field `index`; `item` is the current `for_each` element. Payload and
    /// metadata fields come from the decoded slots when the event has them, item fields from
    /// the element's slots when the array was decoded into them.
    func value(_ index: Int, item: ForEachItem?) -> ProjectionValue {
        let id = fields.ids[index]
        switch fields.kinds[index] {
        // Read through the optional in place: no copy of the slots (a retain and release per field).
        case .payload:
            if let value = current.payloadFields?.value(id) { return value }
            return event.payload.value(at: fields.paths[index][...])?.projectionValue ?? .null
        case .metadata:
            if let value = current.metadataFields?.value(id) { return value }
            return event.metadata.value(at: fields.paths[index][...])?.projectionValue ?? .null
        case .item:
            switch item {
            case .slots(let items, let element)?:
                if let value = items.value(element, id) { return value }
                return items.tree(element).value(at: fields.paths[index][...])?.projectionValue ?? .null
            case .tree(let json)?: return json.value(at: fields.paths[index][...])?.projectionValue ?? .null
            case nil: return .null
            }
        case .envelope:
            return event.value(of: fields.references[index], item: nil)
        }
    }

    /// The array at field `index` as `for_each` walks it.
    func elements(_ index: Int, item: ForEachItem?) -> ForEachElements {
        let id = fields.ids[index]
        switch fields.kinds[index] {
        case .payload:
            if let elements = current.payloadFields?.elements(id) { return elements }
            return ForEachElements(event.payload.value(at: fields.paths[index][...]))
        case .metadata:
            if let elements = current.metadataFields?.elements(id) { return elements }
            return ForEachElements(event.metadata.value(at: fields.paths[index][...]))
        case .item:
            switch item {
            case .slots(let items, let element)?:
                if let elements = items.elements(element, id) { return elements }
                return ForEachElements(items.tree(element).value(at: fields.paths[index][...]))
            case .tree(let json)?: return ForEachElements(json.value(at: fields.paths[index][...]))
            case nil: return .none
            }
        case .envelope:
            return .none
        }
    }
}

/// Row keys per table, by the table's position (`TableLayout.position`): what a chunk's first
/// pass collects for the prefetch, without hashing a table name per key.
struct TableKeys {
    let tables: [TableLayout]
    private(set) var byTable: [Set<RowKey>]
    /// Positions of the tables a lookup reads from.
    var lookupTables: Set<Int> = []

    init(_ tables: [TableLayout]) {
        self.tables = tables
        byTable = Array(repeating: [], count: tables.count)
    }

    mutating func insert(_ key: RowKey, table: Int) { byTable[table].insert(key) }

    var isEmpty: Bool { byTable.allSatisfy(\.isEmpty) }

    /// The keys by table name (tables with none left out).
    func named() -> [String: Set<RowKey>] {
        var keys: [String: Set<RowKey>] = [:]
        for (position, tableKeys) in byTable.enumerated() where !tableKeys.isEmpty { keys[tables[position].name] = tableKeys }
        return keys
    }

    var lookupTableNames: Set<String> { Set(lookupTables.map { tables[$0].name }) }
}

/// The keys `keysTouched` evaluated for a chunk's events, in the order `apply` asks for them
/// (operations in order, `for_each` elements in order), so each key is evaluated once per event.
/// nil entries are keys the first pass could not evaluate (`apply` evaluates them and reports
/// the error). Each event has its own run, so an event that fails leaves the next one aligned.
final class KeyTape {
    /// One stored property: each call is one exclusivity-checked access to the class's storage,
    /// not one per field it reads or writes.
    private var state = State()

    private struct State {
        var keys: [RowKey?] = []
        var starts: [Int] = []
        var next = 0
        var end = 0

        mutating func startEvent() { starts.append(keys.count) }

        mutating func rewind(toEvent index: Int) {
            next = starts[index]
            end = index + 1 < starts.count ? starts[index + 1] : keys.count
        }

        mutating func take() -> RowKey? {
            guard next < end else { return nil }
            defer { next += 1 }
            return keys[next]
        }
    }

    /// The next keys appended belong to the next event.
    func startEvent() { state.startEvent() }

    func append(_ key: RowKey?) { state.keys.append(key) }

    /// Positions the tape at the keys of event `index` (in the order events were started).
    func rewind(toEvent index: Int) { state.rewind(toEvent: index) }

    /// The next key of the event; nil when the first pass could not evaluate it (or none is left).
    func take() -> RowKey? { state.take() }
}

/// The current `for_each` element: a tree, or element `index` of an array decoded into item slots.
enum ForEachItem {
    case tree(JSONValue)
    case slots(DecodedItems, Int)
}

/// What compiled expressions read: the event (and `for_each` item) and the row being written.
struct SlotContext: CompiledExpressionContext {
    /// unowned(unsafe): a context lives only inside the call that made it, whose caller holds
    /// the frame (a strong reference would retain and release it per context).
    unowned(unsafe) let frame: EventFrame
    let item: ForEachItem?
    /// The row, borrowed for the call that made the context (`withUnsafeBufferPointer`): the
    /// context then retains no array.
    let row: UnsafeBufferPointer<ProjectionValue>
    let lookups: LookupRows

    func value(ofField index: Int) throws(ExpressionError) -> ProjectionValue {
        frame.value(index, item: item)
    }

    func value(ofColumn slot: Int) -> ProjectionValue {
        row[slot]
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

    /// One array (copying the rows into each expression context retains one buffer, not two).
    private var entries: [(alias: String, layout: TableLayout, row: Row)] = []

    mutating func append(_ alias: String, _ layout: TableLayout, _ row: Row) {
        entries.append((alias, layout, row))
    }

    func value(_ alias: String, _ column: String) throws(ExpressionError) -> ProjectionValue {
        guard let position = entries.lastIndex(where: { $0.alias == alias }) else { throw ExpressionError("unknown lookup \(alias)") }
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
