import Foundation
import Yams

/// Loads projection files into validated `ProjectionDefinition`s, reporting the first problem as
/// a `ProjectionFileError`.
///
/// # Projection files
///
/// A projection file is YAML: a name, a version, the MySQL tables it owns and, per event type,
/// the row operations that apply an event to those tables. Everything is checked when the file is
/// loaded, before anything runs; a problem is reported as `file: field.path: message`.
///
/// ```yaml
/// name: order_summary          # [a-z][a-z0-9_]{0,39}
/// version: 1                   # positive integer; bump it when the meaning changes
/// description: One row per order.   # optional
/// tables:
///   order_summary:             # [a-z][a-z0-9_]{0,39}, not starting with reprise_
///     columns:                 # [a-z][a-z0-9_]{0,63}; and, or, not, true, false, null,
///                              # payload, metadata, event, item are reserved
///       order_id: varchar(64) not null          # short form: TYPE [not null | null] [default LITERAL]
///       status: { type: varchar(16), nullable: false, default: "'created'" }   # long form
///       item_count: int not null default 0
///       total_cents: bigint not null default 0
///       created_at: datetime
///     primary_key: [order_id]  # required; its columns become NOT NULL
///     indexes:                 # optional; each a list of columns
///       - [status, created_at]
/// handlers:
///   OrderCreated:              # event type: any non-empty text without control characters
///     - upsert:                # insert or update; columns not set keep their value, or
///         table: order_summary #   take their default on a new row
///         set:                 # (alias: values)
///           order_id: payload.orderId
///           status: "'created'"
///           created_at: payload.occurredAt
///   OrderItemAdded:
///     - update:                # only existing rows
///         table: order_summary
///         key: { order_id: payload.orderId }   # exactly the primary key; reads the event only
///         set:
///           item_count: item_count + 1
///           total_cents: total_cents + payload.lineTotalCents
///         if_missing: skip     # skip (default) | error
///         when: payload.quantity > 0   # optional on insert, upsert, update, delete
///   OrderCancelled:
///     - delete: { table: order_summary, key: { order_id: payload.orderId } }
///   SomethingWithItems:
///     - for_each: payload.items   # the nested operations run once per array element
///       do:
///         - upsert: { table: product_sales, set: { sku: item.sku, units: units + item.quantity } }
///   Registered:
///     - insert: { table: customers, set: { customer_id: payload.customerId } }   # fails if the row exists
///   PaymentReceived:
///     - lookup: { as: ord, table: order_summary, key: { order_id: payload.orderId }, if_missing: skip }
///     - update:                # ord.x: the looked-up row's columns, in any later expression (keys too)
///         table: order_summary
///         key: { order_id: payload.orderId }
///         set: { total_cents: ord.total_cents }
/// checks:                      # optional, run on the rebuilt tables before they go live
///   - min_rows: { table: order_summary, rows: 1 }
///   - no_rows: { name: no_negative_totals, sql: "SELECT order_id FROM order_summary WHERE total_cents < 0" }
/// ```
///
/// Column types (case-insensitive): int, bigint, decimal(p,s) (1 <= p <= 65, 0 <= s <= 30, s <= p),
/// double, varchar(n) (1..16383), text, bool/boolean, date, datetime, json. Defaults are literals
/// that must fit the column (`0`, `12.50`, `'text'`, `true`, `null`; dates as '2026-01-05',
/// datetimes as '2026-01-05 10:00:00' or '2026-01-05T10:00:00Z'); text and json columns take no
/// default (MySQL does not allow one). Keys and indexes may not use text or json columns.
///
/// Operations:
/// - `insert`, `upsert`: `set` must give every primary key column and every NOT NULL column
///   without a default. Primary key values are computed from the event only. Insert cannot read
///   columns (the row does not exist yet); upsert reads the current row, or the defaults of a new one.
/// - `update`: `key` gives exactly the primary key columns; `set` may not change them.
/// - `delete`: `key` as for update; a missing row is a no-op.
/// - Every expression in an operation reads the row as it was before the operation, so the order
///   of assignments does not matter. `when` is a condition; null counts as false.
/// - `lookup: { as, table, key, if_missing }` reads the row of `table` with primary key `key` (from
///   the event and earlier lookups) as it was before any operation of the event; `as.column` reads
///   it in later expressions of the same list; a missing row reads null (`if_missing: null`, the
///   default), skips the rest of the list (`skip`) or fails (`error`). See docs/lookups.md.
/// - `for_each: payload.path` runs `do:` once per element of the array; `item.x` (or `item`
///   for an array of scalars) reads the element. for_each may nest; `item` is the innermost element.
///
/// Expressions (see `ExpressionParser`): literals `1`, `12.50`, `'it''s'`, `true`, `false`,
/// `null`; `payload.a.b`, `payload.items.0.sku`, `metadata.x`, `event.stream_id`,
/// `event.stream_version`, `event.position`, `event.type`, `event.recorded_at`, `event.event_id`,
/// `item.x`, and bare column names; `or`, `and`, `not`, `= != <> < <= > >=`, `+ -`, `* /`,
/// unary `-`, parentheses; functions coalesce, date, concat, lower, upper, greatest, least, abs, if.
/// Null propagates through arithmetic and comparisons; int / int gives a decimal; `+` does not
/// join strings (use concat).
///
/// Checks: `min_rows` (table, rows >= 0) and `no_rows` (name, sql: one SELECT, no `;`, no INTO or
/// FOR UPDATE) whose result must be empty. Unknown keys anywhere are errors, to catch typos.
public enum ProjectionFileParser {
    /// Files larger than this are refused before parsing; projection files are small.
    public static let maximumFileBytes = 4 << 20

    /// Parses and validates the YAML text of one projection file; `file` names it in errors.
    public static func parse(yaml: String, file: String) throws(ProjectionFileError) -> ProjectionDefinition {
        guard yaml.utf8.count <= maximumFileBytes else {
            throw ProjectionFileError(file: file, path: "", message: "file is larger than \(maximumFileBytes) bytes")
        }
        let document: Node
        do {
            guard let root = try Yams.compose(yaml: yaml) else {
                throw ProjectionFileError(file: file, path: "", message: "file is empty")
            }
            document = root
        } catch let error as ProjectionFileError {
            throw error
        } catch {
            throw yamlError(error, file: file)
        }
        return try read(YAMLNode(node: document, path: "", file: file))
    }

    /// Reads and parses one file.
    public static func load(path: String) throws(ProjectionFileError) -> ProjectionDefinition {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? error.localizedDescription : "no such file"
            throw ProjectionFileError(file: path, path: "", message: "cannot read the file: \(reason)")
        }
        guard data.count <= maximumFileBytes else {
            throw ProjectionFileError(file: path, path: "", message: "file is larger than \(maximumFileBytes) bytes")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ProjectionFileError(file: path, path: "", message: "file is not valid UTF-8")
        }
        return try parse(yaml: text, file: path)
    }

    /// Loads every `*.yml` and `*.yaml` file of a directory (not its subdirectories; hidden
    /// files are skipped), sorted by file name. Two files defining the same projection name or
    /// the same table are an error naming both files.
    public static func loadDirectory(_ path: String) throws(ProjectionFileError) -> [ProjectionDefinition] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path)
        } catch {
            let reason = FileManager.default.fileExists(atPath: path) ? error.localizedDescription : "no such directory"
            throw ProjectionFileError(file: path, path: "", message: "cannot read the directory: \(reason)")
        }
        let files = names
            .filter { !$0.hasPrefix(".") && ($0.hasSuffix(".yml") || $0.hasSuffix(".yaml")) }
            .sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var definitions: [ProjectionDefinition] = []
        var projectionFiles: [String: String] = [:]
        var tableFiles: [String: String] = [:]
        for name in files {
            let file = (path as NSString).appendingPathComponent(name)
            let definition = try load(path: file)
            if let other = projectionFiles[definition.name] {
                throw ProjectionFileError(file: file, path: "name",
                                          message: "projection '\(definition.name)' is defined both in \(other) and in \(file)")
            }
            projectionFiles[definition.name] = file
            for table in definition.tables {
                if let other = tableFiles[table.name] {
                    throw ProjectionFileError(file: file, path: "tables.\(table.name)",
                                              message: "table '\(table.name)' is declared both in \(other) and in \(file); each table belongs to one projection")
                }
                tableFiles[table.name] = file
            }
            definitions.append(definition)
        }
        return definitions
    }

    private static func read(_ root: YAMLNode) throws(ProjectionFileError) -> ProjectionDefinition {
        let fields = try root.fields(allowed: ["name", "version", "description", "tables", "handlers", "checks", "partition_key"],
                                     required: ["name", "version", "tables", "handlers"],
                                     what: "name, version, tables, handlers")
        let nameNode = try fields.required("name", in: root)
        let name = try nameNode.nonEmptyText("a projection name")
        guard ProjectionIdentifiers.isValidName(name) else {
            throw nameNode.error("invalid projection name '\(name.prefix(80))': use lowercase letters, digits and _, starting with a letter ([a-z][a-z0-9_]{0,39})")
        }
        let versionNode = try fields.required("version", in: root)
        let version = try versionNode.integer("a positive integer version")
        guard version >= 1 else { throw versionNode.error("version must be a positive integer, got \(version)") }
        let description = try fields["description"]?.text("a description")
        let tables = try TableReader.readTables(try fields.required("tables", in: root))
        let handlers = try OperationReader(tables: tables).readHandlers(try fields.required("handlers", in: root))
        let checks = try fields["checks"].map { (node: YAMLNode) throws(ProjectionFileError) in
            try CheckReader.readChecks(node, tables: tables)
        } ?? []
        var definition = ProjectionDefinition(
            name: name, version: version, description: description, sourceFile: root.file, tables: tables,
            handlers: handlers, checks: checks,
            definitionHash: DefinitionHasher.hash(tables: tables, handlers: handlers, checks: checks))
        if let node = fields["partition_key"] {
            definition.partitionKey = try readPartitionKey(node, eventTypes: definition.eventTypes)
        }
        return definition
    }

    /// `partition_key: event.stream_id` (every handled type), or a mapping of event type to field.
    private static func readPartitionKey(_ node: YAMLNode, eventTypes: Set<String>) throws(ProjectionFileError) -> [String: FieldReference] {
        func field(_ node: YAMLNode) throws(ProjectionFileError) -> FieldReference {
            let text = try node.nonEmptyText("a field: event.stream_id, payload.<path> or metadata.<path>")
            let parsed: Expression
            do { parsed = try ExpressionParser.parse(text) } catch { throw node.error("\(error)") }
            if case .field(let reference) = parsed {
                switch reference {
                case .envelope(.streamID), .payload, .metadata: return reference
                default: break
                }
            }
            throw node.error("a partition key is one field: event.stream_id, payload.<path> or metadata.<path>, got '\(text.prefix(80))'")
        }
        if !node.isMapping {
            let reference = try field(node)
            return Dictionary(uniqueKeysWithValues: eventTypes.map { ($0, reference) })
        }
        var keys: [String: FieldReference] = [:]
        for (type, value) in try node.entries("a field, or a mapping of event type to field") {
            guard eventTypes.contains(type) else { throw value.error("'\(type.prefix(80))' is not an event type this projection handles") }
            keys[type] = try field(value)
        }
        if let missing = eventTypes.subtracting(keys.keys).sorted().first {
            throw node.error("no partition key for handled event type '\(missing)'")
        }
        return keys
    }

    /// A YAML syntax error, located by line and column.
    private static func yamlError(_ error: any Error, file: String) -> ProjectionFileError {
        func located(_ mark: Mark, _ message: String) -> ProjectionFileError {
            ProjectionFileError(file: file, path: "line \(mark.line), column \(mark.column)", message: message, line: mark.line)
        }
        guard let yamlError = error as? YamlError else {
            return ProjectionFileError(file: file, path: "", message: "invalid YAML: \(error)")
        }
        switch yamlError {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let during = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            return located(mark, "invalid YAML: \(problem)\(during)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return located(context.mark, "duplicate key \(keys) in a mapping (each key, and so each column of set:, may appear once)")
        case .reader(let problem, let offset, _, _):
            return ProjectionFileError(file: file, path: offset.map { "byte \($0)" } ?? "", message: "invalid YAML: \(problem)")
        default:
            return ProjectionFileError(file: file, path: "", message: "invalid YAML: \(yamlError)")
        }
    }
}
