import RepriseEventSource
import RepriseMySQL
import RepriseProjection
import ReprisePostgres

/// What one row operation of a projection file did to one event (the observer hook of
/// `DeclarativeProjection`, used by `reprise trace`).
struct OperationStep {
    enum Kind: String { case insert, upsert, update, delete }
    enum Outcome {
        /// The row before (nil: none) and after (nil: deleted).
        case wrote(before: [ProjectionValue]?, after: [ProjectionValue]?)
        /// `when` was false; the row is unchanged (nil: there was none).
        case whenFalse(row: [ProjectionValue]?)
        /// An update or delete found no row (`if_missing: skip`, or nothing to delete).
        case rowMissing
    }
    var path: String
    var kind: Kind
    var table: String
    var key: RowKey
    var outcome: Outcome
}

typealias OperationObserver = (OperationStep) -> Void

/// One stream's events run through a projection file in memory: per event, the operations
/// that ran or were skipped and each touched row before and after. Nothing is written.
public struct StreamTrace: Sendable, Encodable {
    public struct Column: Sendable, Encodable {
        public var name: String
        public var before: TraceValue?
        public var after: TraceValue?
        public var changed: Bool
    }

    public struct Operation: Sendable, Encodable {
        /// Where in the file: `handlers.OrderCreated[0]`, `handlers.X[0].for_each[2]`.
        public var path: String
        public var operation: String
        public var table: String
        public var key: [String: TraceValue]
        /// `ran` or `skipped`.
        public var outcome: String
        /// Why it was skipped: `when false`, `row missing`.
        public var reason: String?
        /// The row's columns before and after (empty when no row existed before or after).
        public var columns: [Column]
    }

    public struct Event: Sendable, Encodable {
        public var position: Int64
        public var streamVersion: Int64
        public var type: String
        /// False: the projection has no handler for this type.
        public var handled: Bool
        public var operations: [Operation]
    }

    public struct Row: Sendable, Encodable {
        public var table: String
        public var key: [String: TraceValue]
        /// Nil: the row does not exist at the end (deleted, or never created).
        public var columns: [String: TraceValue]?
        /// The table's columns in their order (for printing).
        public var columnNames: [String]
    }

    public var projection: String
    public var version: Int
    public var streamID: String
    /// Rows started from the live tables (`--from-live`) instead of empty.
    public var fromLive: Bool
    public var upto: Int64?
    public var events: [Event]
    /// Every row the stream touched, as it stands after the last event traced.
    public var finalRows: [Row]
    /// The error that stopped the trace (naming the event and the operation), if one did.
    public var failure: String?
}

/// A column value in a trace: numbers as numbers, text as text, everything else as its text.
public enum TraceValue: Sendable, Encodable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case int(Int64)
    case text(String)

    init(_ value: ProjectionValue) {
        switch value {
        case .null: self = .null
        case .bool(let flag): self = .bool(flag)
        case .int(let number): self = .int(number)
        case .decimal, .double, .string: self = .text(value.description)
        }
    }

    public var description: String {
        switch self {
        case .null: "NULL"
        case .bool(let flag): flag ? "1" : "0"
        case .int(let number): String(number)
        case .text(let text): text
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .int(let number): try container.encode(number)
        case .text(let text): try container.encode(text)
        }
    }
}

/// Runs events of one stream through a projection file in a private workspace, the way a chunk
/// does (same interpreter, same canonical values), optionally recording every operation.
/// Shared by `reprise trace` (records) and `reprise repair` (keeps the final rows).
final class StreamReplay {
    let definition: ProjectionDefinition
    let declarative: DeclarativeProjection
    let workspace: RowWorkspace
    /// Rows not in the workspace come from here (the live tables); nil: they start empty.
    let load: ((TableLayout, [RowKey]) async throws -> [RowKey: [ProjectionValue]])?

    init(_ runnable: RunnableProjection, load: ((TableLayout, [RowKey]) async throws -> [RowKey: [ProjectionValue]])?) throws {
        guard case .file(let definition) = runnable else {
            throw EngineError(.invalidRequest, projection: runnable.definition.name,
                              message: "trace and repair run projection files; \(runnable.definition.name) is a Swift projection")
        }
        self.definition = definition
        self.declarative = DeclarativeProjection(definition)
        self.load = load
        // Starting empty: every table is "complete" in memory, so a miss means absent.
        workspace = RowWorkspace(tables: definition.tables, freshTables: load == nil, cacheLimit: Int.max / 2)
    }

    /// Applies one event; with `record`, returns what each operation did.
    func apply(_ event: ProjectionEvent, record: Bool) async throws -> [OperationStep] {
        var keys: [String: Set<RowKey>] = [:]
        var lookupTables: Set<String> = []
        declarative.keysTouched(by: event, workspace: workspace, into: &keys, lookupTables: &lookupTables)
        try await fetch(keys)
        while true {
            var steps: [OperationStep] = []
            let observer: OperationObserver? = record ? { steps.append($0) } : nil
            if try declarative.apply(event, to: workspace, observer: observer) { return steps }
            // A lookup needs a row that is not in memory yet: a speculative pass names it, it is
            // read, and the event is applied again (the same stages a chunk takes).
            workspace.beginSpeculation()
            declarative.speculate(event, on: workspace)
            let (missing, _) = workspace.endSpeculation()
            guard load != nil, !missing.isEmpty else {
                throw EngineError(.handlerFailed, projection: definition.name, position: event.position, eventType: event.type,
                                  message: "the event needs a row the trace could not determine")
            }
            try await fetch(missing)
        }
    }

    /// Reads the rows with these keys that the workspace does not know (from the live tables).
    private func fetch(_ keys: [String: Set<RowKey>]) async throws {
        guard let load else { return }
        for (table, tableKeys) in keys {
            guard let layout = workspace.layouts[table] else { continue }
            let unknown = tableKeys.filter { if case .unknown = workspace.lookup(table, $0) { true } else { false } }
            guard !unknown.isEmpty else { continue }
            workspace.remember(table, fetched: try await load(layout, Array(unknown)), requested: unknown)
        }
    }

    /// The rows written, in key order per table (nil: deleted).
    var writtenRows: [(layout: TableLayout, rows: [(RowKey, [ProjectionValue]?)])] {
        definition.tables.compactMap { table in
            guard let layout = workspace.layouts[table.name], let rows = workspace.overlay[table.name] else { return nil }
            return (layout, rows.map { ($0.key, $0.value) }.sorted { $0.0.description < $1.0.description })
        }
    }
}

/// `reprise trace`: reads one stream's events (and, with `fromLive`, the live rows they touch)
/// and writes nothing anywhere.
public enum StreamTracer {
    public static func trace(
        _ runnable: RunnableProjection, streamID: String, postgresURL: String, mysqlURL: String?, source: EventSource,
        fromLive: Bool, upto: Int64?
    ) async throws -> StreamTrace {
        let definition = runnable.definition
        let postgres = try await PostgresConnection.connect(url: postgresURL)
        let events: [ProjectionEvent]
        do {
            let reader = EventStoreReader(connection: postgres, source: try await RebuildEngine.resolve(source, on: postgres))
            events = try await reader.streamEvents(streamID, from: 0, visibleIn: try await reader.currentSnapshot())
            await postgres.close()
        } catch {
            await postgres.close()
            throw error
        }
        guard !events.isEmpty else {
            throw EngineError(.invalidRequest, projection: definition.name, message: "the event store has no stream \(streamID)")
        }
        var mysql: MySQLConnection?
        if fromLive {
            guard let mysqlURL else { throw EngineError(.invalidRequest, projection: definition.name, message: "--from-live needs the read-model URL") }
            mysql = try await MySQLConnection.connect(url: mysqlURL)
        }
        do {
            let trace = try await run(runnable, streamID: streamID, events: events, mysql: mysql, upto: upto)
            await mysql?.close()
            return trace
        } catch {
            await mysql?.close()
            throw error
        }
    }

    private static func run(
        _ runnable: RunnableProjection, streamID: String, events: [ProjectionEvent], mysql: MySQLConnection?, upto: Int64?
    ) async throws -> StreamTrace {
        let definition = runnable.definition
        // Reads only: no registry is created, no lock taken.
        let store = mysql.map { ReadModelStore(connection: $0) }
        let replay = try StreamReplay(runnable, load: store.map { store in { layout, keys in try await store.tables.loadRows(layout, physical: layout.name, keys: keys) } })
        var trace = StreamTrace(
            projection: definition.name, version: definition.version, streamID: streamID, fromLive: mysql != nil, upto: upto,
            events: [], finalRows: [], failure: nil)
        for event in events where upto.map({ event.position <= $0 }) ?? true {
            let handled = definition.handlers[event.type] != nil
            var traced = StreamTrace.Event(position: event.position, streamVersion: event.streamVersion, type: event.type, handled: handled, operations: [])
            do {
                let steps = try await replay.apply(event, record: true)
                traced.operations = steps.compactMap { step in replay.workspace.layouts[step.table].map { describe(step, $0) } }
            } catch {
                trace.events.append(traced)
                trace.failure = "\(error)"
                break
            }
            trace.events.append(traced)
        }
        for (layout, rows) in replay.writtenRows {
            for (key, row) in rows {
                trace.finalRows.append(StreamTrace.Row(
                    table: layout.name, key: keyColumns(key, layout),
                    columns: row.map { Dictionary(uniqueKeysWithValues: zip(layout.columns.map(\.name), $0.map(TraceValue.init))) },
                    columnNames: layout.columns.map(\.name)))
            }
        }
        return trace
    }

    static func keyColumns(_ key: RowKey, _ layout: TableLayout) -> [String: TraceValue] {
        Dictionary(uniqueKeysWithValues: zip(layout.keyIndexes.map { layout.columns[$0].name }, key.values.map(TraceValue.init)))
    }

    private static func describe(_ step: OperationStep, _ layout: TableLayout) -> StreamTrace.Operation {
        var operation = StreamTrace.Operation(
            path: step.path, operation: step.kind.rawValue, table: step.table, key: keyColumns(step.key, layout), outcome: "ran", reason: nil, columns: [])
        let before: [ProjectionValue]?, after: [ProjectionValue]?
        switch step.outcome {
        case .wrote(let old, let new): (before, after) = (old, new)
        case .whenFalse(let row):
            (operation.outcome, operation.reason) = ("skipped", "when false")
            (before, after) = (row, row)
        case .rowMissing:
            (operation.outcome, operation.reason) = ("skipped", "row missing")
            (before, after) = (nil, nil)
        }
        guard before != nil || after != nil else { return operation }
        operation.columns = layout.columns.enumerated().map { index, column in
            let old = before.map { TraceValue($0[index]) }, new = after.map { TraceValue($0[index]) }
            return StreamTrace.Column(name: column.name, before: old, after: new, changed: old != new)
        }
        return operation
    }
}
