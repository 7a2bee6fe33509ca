import Foundation
import Testing
@testable import RepriseProjection

/// One broken projection file and the error it must produce.
struct InvalidCase: Sendable, CustomTestStringConvertible {
    var name: String
    var yaml: String
    var path: String
    var fragment: String
    var testDescription: String { name }
}

/// A projection whose handlers section is `handlers` (indented under `handlers:`).
private func withHandlers(_ handlers: String) -> String { Fixtures.projection(handlers: handlers) }

/// A projection with one extra column line in `orders`.
private func withOrdersColumn(_ line: String) -> String {
    Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "      created_at: datetime\n", with: "      created_at: datetime\n      \(line)\n"))
}

private func withChecks(_ checks: String) -> String { Fixtures.projection(checks: checks) }

private let validCases: [InvalidCase] = [
    // Document shape and keys.
    InvalidCase(name: "yaml syntax", yaml: "name: shop\nversion: 1\ntables: [orders\nhandlers: {}\n",
                path: "line 4, column 9", fragment: "invalid YAML"),
    InvalidCase(name: "empty file", yaml: "# nothing\n", path: "", fragment: "file is empty"),
    InvalidCase(name: "root is a list", yaml: "- a\n- b\n", path: "", fragment: "expected a mapping (name, version, tables, handlers), found a list"),
    InvalidCase(name: "missing version", yaml: Fixtures.projection(header: "name: shop"), path: "", fragment: "missing key 'version'"),
    InvalidCase(name: "unknown top-level key", yaml: Fixtures.projection(header: "name: shop\nversion: 1\ndescripton: x"),
                path: "descripton", fragment: "unknown key 'descripton' (did you mean 'description'?)"),
    InvalidCase(name: "unknown operation key", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: payload.orderId }, wen: payload.ok }
        """), path: "handlers.OrderCreated[0].upsert.wen", fragment: "unknown key 'wen' (did you mean 'when'?)"),
    InvalidCase(name: "unknown table key", yaml: Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "    primary_key: [order_id]\n", with: "    primary_key: [order_id]\n    index:\n      - [status]\n")),
                path: "tables.orders.index", fragment: "unknown key 'index'"),
    InvalidCase(name: "no handlers", yaml: Fixtures.projection(handlers: "  {}"), path: "handlers", fragment: "at least one handler"),
    InvalidCase(name: "empty handler", yaml: withHandlers("  OrderCreated: []"), path: "handlers.OrderCreated", fragment: "at least one operation"),

    // Name and version.
    InvalidCase(name: "version zero", yaml: Fixtures.projection(header: "name: shop\nversion: 0"), path: "version",
                fragment: "version must be a positive integer"),
    InvalidCase(name: "version fraction", yaml: Fixtures.projection(header: "name: shop\nversion: 1.5"), path: "version",
                fragment: "expected a positive integer version, found '1.5'"),
    InvalidCase(name: "version text", yaml: Fixtures.projection(header: "name: shop\nversion: one"), path: "version",
                fragment: "expected a positive integer version"),
    InvalidCase(name: "projection name uppercase", yaml: Fixtures.projection(header: "name: Shop\nversion: 1"), path: "name",
                fragment: "invalid projection name 'Shop'"),
    InvalidCase(name: "projection name too long", yaml: Fixtures.projection(header: "name: \(String(repeating: "a", count: 41))\nversion: 1"),
                path: "name", fragment: "invalid projection name"),

    // Unsafe identifiers.
    InvalidCase(name: "sql injection table name", yaml: Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "  orders:", with: "  \"orders; DROP TABLE x\":")), path: "tables.orders; DROP TABLE x", fragment: "invalid table name"),
    InvalidCase(name: "backtick column", yaml: withOrdersColumn("\"`id`\": int"), path: "tables.orders.columns.`id`",
                fragment: "invalid column name '`id`'"),
    InvalidCase(name: "quoted column", yaml: withOrdersColumn("\"it's\": int"), path: "tables.orders.columns.it's",
                fragment: "invalid column name"),
    InvalidCase(name: "space in column", yaml: withOrdersColumn("\"a b\": int"), path: "tables.orders.columns.a b",
                fragment: "invalid column name"),
    InvalidCase(name: "reserved table prefix", yaml: Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "  lines:", with: "  reprise_lines:")), path: "tables.reprise_lines", fragment: "prefix 'reprise_'"),
    InvalidCase(name: "table name too long", yaml: Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "  lines:", with: "  \(String(repeating: "l", count: 41)):")), path: "tables.\(String(repeating: "l", count: 41))",
                fragment: "[a-z][a-z0-9_]{0,39}"),
    InvalidCase(name: "reserved column word", yaml: withOrdersColumn("item: int"), path: "tables.orders.columns.item",
                fragment: "word of the expression language"),
    InvalidCase(name: "control character in event type", yaml: withHandlers("""
          "Order\\u0001Created":
            - upsert: { table: orders, set: { order_id: payload.orderId } }
        """), path: "handlers.Order\u{1}Created", fragment: "invalid event type name"),

    // Column types and defaults.
    InvalidCase(name: "unknown type", yaml: withOrdersColumn("code: varchr(10)"), path: "tables.orders.columns.code",
                fragment: "unknown column type 'varchr' (did you mean 'varchar'?)"),
    InvalidCase(name: "decimal precision", yaml: withOrdersColumn("amount: decimal(70,2)"), path: "tables.orders.columns.amount",
                fragment: "decimal precision must be 1 to 65"),
    InvalidCase(name: "decimal scale", yaml: withOrdersColumn("amount: decimal(5,6)"), path: "tables.orders.columns.amount",
                fragment: "scale 6 is larger than its precision 5"),
    InvalidCase(name: "decimal scale range", yaml: withOrdersColumn("amount: decimal(65,31)"), path: "tables.orders.columns.amount",
                fragment: "decimal scale must be 0 to 30"),
    InvalidCase(name: "varchar length", yaml: withOrdersColumn("code: varchar(16384)"), path: "tables.orders.columns.code",
                fragment: "varchar length must be 1 to 16383"),
    InvalidCase(name: "size on int", yaml: withOrdersColumn("code: int(11)"), path: "tables.orders.columns.code",
                fragment: "type int takes no size"),
    InvalidCase(name: "long form unknown key", yaml: withOrdersColumn("code: { type: int, nulable: false }"),
                path: "tables.orders.columns.code.nulable", fragment: "unknown key 'nulable' (did you mean 'nullable'?)"),
    InvalidCase(name: "long form type", yaml: withOrdersColumn("code: { type: 'int not null' }"),
                path: "tables.orders.columns.code.type", fragment: "unexpected 'not' after the type"),
    InvalidCase(name: "short form junk", yaml: withOrdersColumn("code: int not nul"), path: "tables.orders.columns.code",
                fragment: "expected 'null' after 'not'"),
    InvalidCase(name: "default string for int", yaml: withOrdersColumn("code: int default 'x'"), path: "tables.orders.columns.code",
                fragment: "default does not fit column code: expected an integer, got string 'x'"),
    InvalidCase(name: "default out of int range", yaml: withOrdersColumn("code: int default 3000000000"),
                path: "tables.orders.columns.code", fragment: "3000000000 is out of range for INT"),
    InvalidCase(name: "default too long", yaml: withOrdersColumn("code: varchar(3) default 'abcd'"),
                path: "tables.orders.columns.code", fragment: "longer than VARCHAR(3)"),
    InvalidCase(name: "default decimal digits", yaml: withOrdersColumn("amount: decimal(4,2) default 123.4"),
                path: "tables.orders.columns.amount", fragment: "does not fit DECIMAL(4,2)"),
    InvalidCase(name: "default bad date", yaml: withOrdersColumn("day: date default '2026-13-01'"),
                path: "tables.orders.columns.day", fragment: "expected a date 'YYYY-MM-DD'"),
    InvalidCase(name: "default bad datetime", yaml: withOrdersColumn("at: { type: datetime, default: \"'2026-01-01 25:00:00'\" }"),
                path: "tables.orders.columns.at.default", fragment: "expected a datetime"),
    InvalidCase(name: "default null on not null", yaml: withOrdersColumn("code: int not null default null"),
                path: "tables.orders.columns.code", fragment: "its default cannot be null"),
    InvalidCase(name: "default not a literal", yaml: withOrdersColumn("code: { type: int, default: other_column }"),
                path: "tables.orders.columns.code.default", fragment: "default must be a literal"),
    InvalidCase(name: "default on text", yaml: withOrdersColumn("body: text default 'x'"), path: "tables.orders.columns.body",
                fragment: "TEXT columns cannot have a default"),

    // Keys and indexes.
    InvalidCase(name: "missing primary key", yaml: Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "    primary_key: [order_id]\n", with: "")), path: "tables.orders", fragment: "missing key 'primary_key'"),
    InvalidCase(name: "primary key unknown column", yaml: Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "primary_key: [order_id]", with: "primary_key: [orderid]")), path: "tables.orders.primary_key[0]",
                fragment: "unknown column 'orderid' in table orders (did you mean 'order_id'?)"),
    InvalidCase(name: "primary key on text", yaml: Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "primary_key: [order_id]", with: "primary_key: [order_id, note]")), path: "tables.orders.primary_key[1]",
                fragment: "TEXT column 'note' cannot be in a primary key"),
    InvalidCase(name: "primary key too long", yaml: Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "order_id: varchar(64) not null\n      status", with: "order_id: varchar(800) not null\n      status")),
                path: "tables.orders.primary_key", fragment: "too long for MySQL"),
    InvalidCase(name: "index unknown column", yaml: Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "    primary_key: [order_id]\n", with: "    primary_key: [order_id]\n    indexes:\n      - [status, createdat]\n")),
                path: "tables.orders.indexes[0][1]", fragment: "unknown column 'createdat'"),
    InvalidCase(name: "duplicate index", yaml: Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "    primary_key: [order_id]\n", with: "    primary_key: [order_id]\n    indexes:\n      - [status]\n      - status\n")),
                path: "tables.orders.indexes[1]", fragment: "duplicate index"),
    InvalidCase(name: "index repeats primary key", yaml: Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "    primary_key: [order_id]\n", with: "    primary_key: [order_id]\n    indexes: [[order_id]]\n")),
                path: "tables.orders.indexes[0]", fragment: "index repeats the primary key"),
    InvalidCase(name: "row too wide", yaml: withOrdersColumn("a: varchar(16000)\n      b: varchar(16000)"),
                path: "tables.orders.columns", fragment: "too wide for MySQL"),

    // Operations: tables, columns, keys.
    InvalidCase(name: "unknown table", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: order, set: { order_id: payload.orderId } }
        """), path: "handlers.OrderCreated[0].upsert.table", fragment: "unknown table 'order' (did you mean 'orders'?)"),
    InvalidCase(name: "unknown column assigned", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: payload.orderId, totl_cents: 1 } }
        """), path: "handlers.OrderCreated[0].upsert.set.totl_cents",
                fragment: "unknown column 'totl_cents' in table orders (did you mean 'total_cents'?)"),
    InvalidCase(name: "unknown column read", yaml: withHandlers("""
          OrderItemAdded:
            - update:
                table: orders
                key: { order_id: payload.orderId }
                set:
                  total_cents: totl_cents + payload.lineTotalCents
        """), path: "handlers.OrderItemAdded[0].update.set.total_cents", fragment: "unknown column 'totl_cents' in table orders"),
    InvalidCase(name: "column of another table", yaml: withHandlers("""
          LineAdded:
            - upsert: { table: lines, set: { order_id: payload.orderId, line_no: payload.n, sku: status } }
        """), path: "handlers.LineAdded[0].upsert.set.sku", fragment: "unknown column 'status' in table lines"),
    InvalidCase(name: "upsert misses a key column", yaml: withHandlers("""
          LineAdded:
            - upsert: { table: lines, set: { order_id: payload.orderId, sku: payload.sku } }
        """), path: "handlers.LineAdded[0].upsert.set", fragment: "upsert must set primary key column 'line_no' of table lines"),
    InvalidCase(name: "insert misses a key column", yaml: withHandlers("""
          LineAdded:
            - insert: { table: lines, values: { line_no: payload.n } }
        """), path: "handlers.LineAdded[0].insert.values", fragment: "insert must set primary key column 'order_id'"),
    InvalidCase(name: "upsert misses a not null column", yaml: Fixtures.projection(tables: Fixtures.defaultTables.replacingOccurrences(
        of: "      created_at: datetime\n", with: "      created_at: datetime\n      created_by: varchar(10) not null\n")),
                path: "handlers.OrderCreated[0].upsert.set", fragment: "must set column 'created_by': it is not null and has no default"),
    InvalidCase(name: "set and values", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: payload.orderId }, values: { status: "'x'" } }
        """), path: "handlers.OrderCreated[0].upsert", fragment: "use either set or values, not both"),
    InvalidCase(name: "column assigned twice", yaml: withHandlers("""
          OrderCreated:
            - upsert:
                table: orders
                set:
                  order_id: payload.orderId
                  total_cents: 1
                  total_cents: 2
        """), path: "line 24, column 11", fragment: "duplicate key 'total_cents'"),
    InvalidCase(name: "update key misses a column", yaml: withHandlers("""
          LineChanged:
            - update: { table: lines, key: { order_id: payload.orderId }, set: { sku: payload.sku } }
        """), path: "handlers.LineChanged[0].update.key", fragment: "key must give every primary key column of table lines (order_id, line_no); missing 'line_no'"),
    InvalidCase(name: "update key extra column", yaml: withHandlers("""
          LineChanged:
            - update: { table: lines, key: { order_id: payload.orderId, line_no: payload.n, sku: payload.sku }, set: { sku: payload.sku } }
        """), path: "handlers.LineChanged[0].update.key.sku", fragment: "'sku' is not a primary key column of table lines"),
    InvalidCase(name: "delete key reads a column", yaml: withHandlers("""
          OrderCancelled:
            - delete: { table: orders, key: { order_id: status } }
        """), path: "handlers.OrderCancelled[0].delete.key.order_id",
                fragment: "key expressions may only read the event, not column 'status'"),
    InvalidCase(name: "update changes the key", yaml: withHandlers("""
          OrderRenamed:
            - update: { table: orders, key: { order_id: payload.orderId }, set: { order_id: payload.newId } }
        """), path: "handlers.OrderRenamed[0].update.set.order_id", fragment: "update cannot change primary key column 'order_id'"),
    InvalidCase(name: "upsert key computed from a column", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: "concat(status, payload.orderId)" } }
        """), path: "handlers.OrderCreated[0].upsert.set.order_id",
                fragment: "primary key column 'order_id' must be computed from the event only, not column 'status'"),
    InvalidCase(name: "insert reads a column", yaml: withHandlers("""
          OrderCreated:
            - insert: { table: orders, set: { order_id: payload.orderId, total_cents: total_cents + 1 } }
        """), path: "handlers.OrderCreated[0].insert.set.total_cents", fragment: "insert creates the row, so it cannot read its columns"),
    InvalidCase(name: "if_missing value", yaml: withHandlers("""
          OrderPaid:
            - update: { table: orders, key: { order_id: payload.orderId }, set: { status: "'paid'" }, if_missing: ignore }
        """), path: "handlers.OrderPaid[0].update.if_missing", fragment: "if_missing must be skip or error"),
    InvalidCase(name: "two operation kinds", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: payload.orderId } }
              delete: { table: orders, key: { order_id: payload.orderId } }
        """), path: "handlers.OrderCreated[0]", fragment: "exactly one of insert, upsert, update, delete, for_each; found upsert, delete"),
    InvalidCase(name: "unknown operation", yaml: withHandlers("""
          OrderCreated:
            - upsrt: { table: orders, set: { order_id: payload.orderId } }
        """), path: "handlers.OrderCreated[0].upsrt", fragment: "unknown operation 'upsrt' (did you mean 'upsert'?)"),
    InvalidCase(name: "literal does not fit", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: payload.orderId, total_cents: "'lots'" } }
        """), path: "handlers.OrderCreated[0].upsert.set.total_cents", fragment: "value does not fit column total_cents: expected an integer"),
    InvalidCase(name: "null into not null", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: payload.orderId, status: null } }
        """), path: "handlers.OrderCreated[0].upsert.set.status", fragment: "column 'status' is not null, so it cannot be set to null"),

    // Expressions.
    InvalidCase(name: "expression syntax", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: payload.orderId, total_cents: "total_cents +" } }
        """), path: "handlers.OrderCreated[0].upsert.set.total_cents",
                fragment: "invalid expression 'total_cents +': at column 14: expected a value, found end of expression"),
    InvalidCase(name: "unknown function", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: payload.orderId, total_cents: "sum(payload.x)" } }
        """), path: "handlers.OrderCreated[0].upsert.set.total_cents", fragment: "at column 1: unknown function 'sum'"),
    InvalidCase(name: "wrong argument count", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: payload.orderId, created_at: "date(payload.a, payload.b)" } }
        """), path: "handlers.OrderCreated[0].upsert.set.created_at", fragment: "date takes 1 argument, got 2"),
    InvalidCase(name: "empty expression", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: payload.orderId, status: } }
        """), path: "handlers.OrderCreated[0].upsert.set.status", fragment: "expected an expression, found nothing"),
    InvalidCase(name: "item outside for_each", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: item.orderId } }
        """), path: "handlers.OrderCreated[0].upsert.set.order_id", fragment: "item.orderId can only be used inside for_each"),
    InvalidCase(name: "when is not a condition", yaml: withHandlers("""
          OrderCreated:
            - upsert: { table: orders, set: { order_id: payload.orderId }, when: payload.quantity + 1 }
        """), path: "handlers.OrderCreated[0].upsert.when", fragment: "when must be a condition"),
    InvalidCase(name: "for_each over a non-field", yaml: withHandlers("""
          OrderCreated:
            - for_each: "concat(payload.a)"
              do:
                - upsert: { table: orders, set: { order_id: item.id } }
        """), path: "handlers.OrderCreated[0].for_each", fragment: "for_each needs a field path to an array"),
    InvalidCase(name: "for_each without do", yaml: withHandlers("""
          OrderCreated:
            - for_each: payload.items
        """), path: "handlers.OrderCreated[0]", fragment: "missing key 'do'"),
    InvalidCase(name: "for_each with when", yaml: withHandlers("""
          OrderCreated:
            - for_each: payload.items
              when: payload.ok
              do:
                - upsert: { table: orders, set: { order_id: item.id } }
        """), path: "handlers.OrderCreated[0].when", fragment: "unknown key 'when'"),
    InvalidCase(name: "nested for_each error path", yaml: withHandlers("""
          OrderCreated:
            - for_each: payload.items
              do:
                - upsert: { table: orders, set: { order_id: item.id } }
                - upsert: { table: lines, set: { order_id: item.id, line_no: item.n, sku: item.sku + 1, nope: 1 } }
        """), path: "handlers.OrderCreated[0].do[1].upsert.set.nope", fragment: "unknown column 'nope' in table lines"),

    // Checks.
    InvalidCase(name: "min_rows negative", yaml: withChecks("  - min_rows: { table: orders, rows: -1 }"),
                path: "checks[0].min_rows.rows", fragment: "rows must be 0 or more, got -1"),
    InvalidCase(name: "min_rows unknown table", yaml: withChecks("  - min_rows: { table: order, rows: 1 }"),
                path: "checks[0].min_rows.table", fragment: "unknown table 'order'"),
    InvalidCase(name: "no_rows not a select", yaml: withChecks("  - no_rows: { name: wipe, sql: DELETE FROM orders }"),
                path: "checks[0].no_rows.sql", fragment: "sql must be a single SELECT statement"),
    InvalidCase(name: "no_rows two statements", yaml: withChecks("  - no_rows: { name: two, sql: 'SELECT 1; DROP TABLE orders' }"),
                path: "checks[0].no_rows.sql", fragment: "without ';'"),
    InvalidCase(name: "no_rows select into", yaml: withChecks("  - no_rows: { name: dump, sql: \"SELECT * INTO OUTFILE '/tmp/x' FROM orders\" }"),
                path: "checks[0].no_rows.sql", fragment: "SELECT ... INTO is not allowed"),
    InvalidCase(name: "no_rows selected prefix", yaml: withChecks("  - no_rows: { name: sneaky, sql: selected_rows }"),
                path: "checks[0].no_rows.sql", fragment: "single SELECT"),
    InvalidCase(name: "duplicate check names", yaml: withChecks("""
          - no_rows: { name: same, sql: SELECT 1 FROM orders WHERE 1 = 0 }
          - no_rows: { name: same, sql: SELECT 2 FROM orders WHERE 1 = 0 }
        """), path: "checks[1].no_rows.name", fragment: "two checks are named 'same'"),
    InvalidCase(name: "unknown check", yaml: withChecks("  - max_rows: { table: orders, rows: 1 }"),
                path: "checks[0]", fragment: "unknown check 'max_rows'"),
]

@Suite("Projection file validation")
struct ProjectionValidationTests {
    @Test func baseFixtureIsValid() throws {
        let definition = try ProjectionFileParser.parse(yaml: Fixtures.projection(), file: "test.yml")
        #expect(definition.name == "shop")
    }

    @Test(arguments: validCases)
    func invalidFileIsRejected(_ invalid: InvalidCase) {
        expectFileError(invalid.yaml, path: invalid.path, invalid.fragment)
    }

    @Test func briefExampleMessage() {
        let yaml = Fixtures.formatExample.replacingOccurrences(
            of: "total_cents: total_cents + payload.lineTotalCents", with: "total_cents: totl_cents + payload.lineTotalCents")
        do {
            _ = try ProjectionFileParser.parse(yaml: yaml, file: "order_summary.yml")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.hasPrefix(
                "order_summary.yml: handlers.OrderItemAdded[0].update.set.total_cents: unknown column 'totl_cents' in table order_summary"))
            #expect(error.line == 40)
        }
    }

    @Test func yamlErrorsCarryTheLine() {
        do {
            _ = try ProjectionFileParser.parse(yaml: "name: shop\nversion: 1\ntables:\n  orders: [\n", file: "test.yml")
            Issue.record("expected an error")
        } catch {
            #expect(error.line == 5)
            #expect(error.path.hasPrefix("line 5"))
        }
    }
}
