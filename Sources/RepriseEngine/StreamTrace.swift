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
        /// Rows a lookup of this event read first from outside the stream (see `Lookup.rows`):
        /// from the live table, or found missing because there is none. Later events reuse them.
        public var lookupReads: [LookupRead] = []
    }

    /// Where a lookup of a handler the stream runs reads rows the stream did not write.
    public struct Lookup: Sendable, Encodable {
        /// `handlers.PaymentReceived[1]`.
        public var path: String
        public var alias: String
        public var table: String
        /// `live`: from the live table (the active version's), as it is now, not as of the event;
        /// `no live table`: there is none (never swapped in, or no read-model URL), so a row the
        /// stream did not write reads as missing; `stream`: the stream writes this table too, so
        /// the lookup sees the rows the stream wrote (others read as missing, rows start empty);
        /// `from live`: `--from-live`, every row not written starts from the live table.
        public var rows: String
    }

    /// A row read for a lookup from outside the stream.
    public struct LookupRead: Sendable, Encodable {
        public var table: String
        public var key: [String: TraceValue]
        /// `live` or `no live table`.
        public var source: String
        /// Nil: no such row (missing).
        public var columns: [String: TraceValue]?
        public var columnNames: [String]
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
    /// The lookups of the handlers this stream runs and where they read rows the stream did not write.
    public var lookups: [Lookup] = []
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
    typealias Loader = (TableLayout, [RowKey]) async throws -> [RowKey: [ProjectionValue]]
    let definition: ProjectionDefinition
    let declarative: DeclarativeProjection
    let workspace: RowWorkspace
    /// Rows not in the workspace come from here (the live tables); nil: they start empty.
    let load: Loader?
    /// With rows starting empty: tables only lookups of the stream read (other streams write
    /// them), whose rows come from the live tables instead (`live` nil: there are none, missing).
    let lookupTables: Set<String>
    let live: Loader?
    /// The rows read for those lookups, in the order read.
    private(set) var lookupReads: [(table: String, key: RowKey, row: [ProjectionValue]?)] = []

    init(_ runnable: RunnableProjection, load: Loader?, lookupTables: Set<String> = [], live: Loader? = nil) throws {
        guard case .file(let definition) = runnable else {
            throw EngineError(.invalidRequest, projection: runnable.definition.name,
                              message: "trace and repair run projection files; \(runnable.definition.name) is a Swift projection")
        }
        self.definition = definition
        self.declarative = DeclarativeProjection(definition)
        self.load = load
        self.lookupTables = load == nil ? lookupTables : []
        self.live = live
        // Starting empty: every table is "complete" in memory, so a miss means absent. With rows
        // read from MySQL, a miss is read first (`fetch`), and an event whose lookups lead to rows
        // not read yet is applied again once they are, the way a chunk does.
        workspace = RowWorkspace(tables: definition.tables, freshTables: load == nil && self.lookupTables.isEmpty, cacheLimit: Int.max / 2)
        workspace.tracksEvents = declarative.hasLookups
    }

    /// The tables the lookups of these handlers read and the tables their operations write.
    static func tablesUsed(by operations: [RowOperation]) -> (lookedUp: Set<String>, written: Set<String>) {
        var lookedUp: Set<String> = [], written: Set<String> = []
        for operation in operations {
            switch operation {
            case .insert(let table, _, _), .upsert(let table, _, _), .update(let table, _, _, _, _), .delete(let table, _, _): written.insert(table)
            case .lookup(let lookup): lookedUp.insert(lookup.table)
            case .forEach(_, let nested):
                let inner = tablesUsed(by: nested)
                lookedUp.formUnion(inner.lookedUp)
                written.formUnion(inner.written)
            }
        }
        return (lookedUp, written)
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
            guard !missing.isEmpty else {
                throw EngineError(.handlerFailed, projection: definition.name, position: event.position, eventType: event.type,
                                  message: "the event needs a row the trace could not determine")
            }
            try await fetch(missing)
        }
    }

    /// Reads the rows with these keys that the workspace does not know: from the live tables
    /// (`--from-live`, or a lookup table other streams write), else absent (rows start empty).
    private func fetch(_ keys: [String: Set<RowKey>]) async throws {
        for (table, tableKeys) in keys.sorted(by: { $0.key < $1.key }) {
            guard let layout = workspace.layouts[table] else { continue }
            let unknown = tableKeys.filter { if case .unknown = workspace.lookup(table, $0) { true } else { false } }
            guard !unknown.isEmpty else { continue }
            if let load {
                workspace.remember(table, fetched: try await load(layout, Array(unknown)), requested: unknown)
            } else if lookupTables.contains(table) {
                let fetched = try await live?(layout, Array(unknown)) ?? [:]
                for key in unknown.sorted(by: { $0.description < $1.description }) { lookupReads.append((table, key, fetched[key])) }
                workspace.remember(table, fetched: fetched, requested: unknown)
            } else {
                workspace.remember(table, fetched: [:], requested: unknown)
            }
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

/// `reprise trace`: reads one stream's events (and, with `fromLive`, the live rows they touch;
/// without it, the live rows its lookups read from tables only other streams write) and writes
/// nothing anywhere.
public enum StreamTracer {
    /// `mysqlURL` is needed for `fromLive`; without `fromLive` it is optional: lookups into tables
    /// other streams write read the live tables through it, and read missing rows without it.
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
        if fromLive && mysqlURL == nil {
            throw EngineError(.invalidRequest, projection: definition.name, message: "--from-live needs the read-model URL")
        }
        let traced = events.filter { event in upto.map { event.position <= $0 } ?? true }
        let liveLookupTables = fromLive ? [] : lookupTablesOfOtherStreams(runnable, types: Set(traced.map(\.type)))
        var mysql: MySQLConnection?
        if let mysqlURL, fromLive || !liveLookupTables.isEmpty {
            mysql = try await MySQLConnection.connect(url: mysqlURL)
        }
        do {
            let trace = try await run(runnable, streamID: streamID, events: traced, mysql: mysql, fromLive: fromLive,
                                      liveLookupTables: liveLookupTables, upto: upto)
            await mysql?.close()
            return trace
        } catch {
            await mysql?.close()
            throw error
        }
    }

    /// Tables the lookups of these event types' handlers read and their operations never write:
    /// only other streams write their rows, so a trace starting empty reads them from the live tables.
    static func lookupTablesOfOtherStreams(_ runnable: RunnableProjection, types: Set<String>) -> Set<String> {
        var lookedUp: Set<String> = [], written: Set<String> = []
        for type in types {
            guard let operations = runnable.definition.handlers[type] else { continue }
            let used = StreamReplay.tablesUsed(by: operations)
            lookedUp.formUnion(used.lookedUp)
            written.formUnion(used.written)
        }
        return lookedUp.subtracting(written)
    }

    /// The lookups of the handlers the stream runs, in file order, and where each reads rows.
    private static func lookups(_ definition: ProjectionDefinition, types: Set<String>, source: (String) -> String) -> [StreamTrace.Lookup] {
        var found: [StreamTrace.Lookup] = []
        func collect(_ operations: [RowOperation], path: String) {
            for (index, operation) in operations.enumerated() {
                switch operation {
                case .lookup(let lookup):
                    found.append(StreamTrace.Lookup(path: "\(path)[\(index)]", alias: lookup.alias, table: lookup.table, rows: source(lookup.table)))
                case .forEach(_, let nested): collect(nested, path: "\(path)[\(index)].for_each")
                default: continue
                }
            }
        }
        for type in types.sorted() { collect(definition.handlers[type] ?? [], path: "handlers.\(type)") }
        return found
    }

    private static func run(
        _ runnable: RunnableProjection, streamID: String, events: [ProjectionEvent], mysql: MySQLConnection?, fromLive: Bool,
        liveLookupTables: Set<String>, upto: Int64?
    ) async throws -> StreamTrace {
        let definition = runnable.definition
        // Reads only: no registry is created, no lock taken.
        let store = mysql.map { ReadModelStore(connection: $0) }
        let loader: StreamReplay.Loader? = store.map { store in { layout, keys in try await store.tables.loadRows(layout, physical: layout.name, keys: keys) } }
        // A lookup table with no live table (the projection never swapped in) reads missing rows.
        var found: Set<String> = []
        if let store, !fromLive {
            for table in liveLookupTables.sorted() {
                if try await store.tables.exists(table) { found.insert(table) }
            }
        }
        let existing = found
        let live: StreamReplay.Loader? = existing.isEmpty ? nil : { layout, keys in
            existing.contains(layout.name) ? try await loader?(layout, keys) ?? [:] : [:]
        }
        let replay = try StreamReplay(runnable, load: fromLive ? loader : nil, lookupTables: liveLookupTables, live: live)
        var trace = StreamTrace(
            projection: definition.name, version: definition.version, streamID: streamID, fromLive: fromLive, upto: upto,
            events: [], finalRows: [], failure: nil)
        trace.lookups = lookups(definition, types: Set(events.map(\.type))) { table in
            if fromLive { return "from live" }
            guard liveLookupTables.contains(table) else { return "stream" }
            return existing.contains(table) ? "live" : "no live table"
        }
        for event in events {
            let handled = definition.handlers[event.type] != nil
            var traced = StreamTrace.Event(position: event.position, streamVersion: event.streamVersion, type: event.type, handled: handled, operations: [])
            let readBefore = replay.lookupReads.count
            do {
                let steps = try await replay.apply(event, record: true)
                traced.operations = steps.compactMap { step in replay.workspace.layouts[step.table].map { describe(step, $0) } }
            } catch {
                traced.lookupReads = lookupReads(replay, from: readBefore, existing: existing)
                trace.events.append(traced)
                trace.failure = "\(error)"
                break
            }
            traced.lookupReads = lookupReads(replay, from: readBefore, existing: existing)
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

    private static func lookupReads(_ replay: StreamReplay, from start: Int, existing: Set<String>) -> [StreamTrace.LookupRead] {
        replay.lookupReads[start...].compactMap { read in
            guard let layout = replay.workspace.layouts[read.table] else { return nil }
            return StreamTrace.LookupRead(
                table: read.table, key: keyColumns(read.key, layout), source: existing.contains(read.table) ? "live" : "no live table",
                columns: read.row.map { Dictionary(uniqueKeysWithValues: zip(layout.columns.map(\.name), $0.map(TraceValue.init))) },
                columnNames: layout.columns.map(\.name))
        }
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
