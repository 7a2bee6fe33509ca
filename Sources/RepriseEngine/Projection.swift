import RepriseProjection

/// A projection written in Swift, for what a projection file cannot express. It runs through
/// the same engine as file projections: same chunks, checkpoints, swap and exactly-once effect.
///
/// `definition` declares the tables and the event types (`handlers` keys; the operations may
/// be empty). Handlers must be deterministic and read only the event and `rows`.
///
/// ```swift
/// struct StreamLengths: Projection {
///     let definition = ProjectionDefinition(name: "stream_lengths", version: 1, tables: [...],
///                                           handlers: ["OrderCreated": []], definitionHash: "stream_lengths-1")
///     func handle(_ event: ProjectionEvent, rows: ProjectionRows) async throws {
///         let current = try await rows.row("stream_lengths", key: [.string(event.streamID)])
///         let count = (current?["events"]).flatMap { if case .int(let n) = $0 { n } else { nil } } ?? 0
///         try await rows.upsert("stream_lengths", ["stream_id": .string(event.streamID), "events": .int(count + 1)])
///     }
/// }
/// ```
public protocol Projection: Sendable {
    var definition: ProjectionDefinition { get }
    func handle(_ event: ProjectionEvent, rows: ProjectionRows) async throws
}

/// Row access for code projections, backed by the chunk's workspace (reads of rows not yet
/// known go to MySQL one key at a time; file projections prefetch a chunk's keys instead).
public final class ProjectionRows {
    let workspace: RowWorkspace
    let projection: String
    let load: (TableLayout, [RowKey]) async throws -> [RowKey: [ProjectionValue]]

    init(workspace: RowWorkspace, projection: String, load: @escaping (TableLayout, [RowKey]) async throws -> [RowKey: [ProjectionValue]]) {
        self.workspace = workspace
        self.projection = projection
        self.load = load
    }

    private func layout(_ table: String) throws -> TableLayout {
        guard let layout = workspace.layouts[table] else {
            throw EngineError(.handlerFailed, projection: projection, message: "unknown table \(table)")
        }
        return layout
    }

    private func canonicalKey(_ key: [ProjectionValue], _ layout: TableLayout) throws -> RowKey {
        guard key.count == layout.keyIndexes.count else {
            throw EngineError(.handlerFailed, projection: projection, message: "\(layout.name) has a key of \(layout.keyIndexes.count) columns, got \(key.count)")
        }
        return RowKey(try zip(key, layout.keyIndexes).map { value, index in
            do { return try ColumnValues.canonical(value, for: layout.columns[index]) } catch let error as ColumnValues.ConversionError {
                throw EngineError(.handlerFailed, projection: projection, message: error.message)
            }
        })
    }

    private func current(_ layout: TableLayout, _ key: RowKey) async throws -> [ProjectionValue]? {
        switch workspace.lookup(layout.name, key) {
        case .present(let row): return row
        case .absent: return nil
        case .unknown:
            let fetched = try await load(layout, [key])
            workspace.remember(layout.name, fetched: fetched, requested: [key])
            return fetched[key]
        }
    }

    /// The row with this key, by column name; nil when it does not exist.
    public func row(_ table: String, key: [ProjectionValue]) async throws -> [String: ProjectionValue]? {
        let layout = try layout(table)
        guard let row = try await current(layout, try canonicalKey(key, layout)) else { return nil }
        var named: [String: ProjectionValue] = [:]
        for (column, value) in zip(layout.columns, row) { named[column.name] = value }
        return named
    }

    /// Creates or updates a row: `values` must hold the key columns; other columns keep their
    /// current value (or default, for a new row).
    public func upsert(_ table: String, _ values: [String: ProjectionValue]) async throws {
        let layout = try layout(table)
        let keyValues = try layout.keyIndexes.map { index in
            guard let value = values[layout.columns[index].name] else {
                throw EngineError(.handlerFailed, projection: projection, message: "upsert into \(table) without key column \(layout.columns[index].name)")
            }
            return value
        }
        let key = try canonicalKey(keyValues, layout)
        var row = try await current(layout, key) ?? layout.defaultRow
        for (name, value) in values {
            guard let index = layout.columnIndex[name] else {
                throw EngineError(.handlerFailed, projection: projection, message: "unknown column \(name) in \(table)")
            }
            do { row[index] = try ColumnValues.canonical(value, for: layout.columns[index]) } catch {
                throw EngineError(.handlerFailed, projection: projection, message: error.message)
            }
        }
        workspace.put(table, key, row)
    }

    /// Deletes the row with this key; nothing happens when it does not exist.
    public func delete(_ table: String, key: [ProjectionValue]) async throws {
        let layout = try layout(table)
        let rowKey = try canonicalKey(key, layout)
        if try await current(layout, rowKey) != nil { workspace.put(table, rowKey, nil) }
    }
}
