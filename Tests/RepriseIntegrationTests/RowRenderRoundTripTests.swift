import Foundation
@testable import RepriseEngine
import RepriseMySQL
import RepriseProjection
import Testing

/// A chunk's rows written both ways the commit writes them, rendered straight into MySQL's text
/// (docs/throughput-render.md): bulk-loaded as new rows (`loadNewRows`) and upserted
/// (`writeRows`), or rewritten by a bulk load that replaces them (`writeRows(replacingByLoad:)`),
/// hostile values of every column type come back as they were.
@Suite("Rows rendered straight into LOAD DATA and upserts round-trip (real MySQL)")
struct RowRenderRoundTripTests {
    static let table = TableDefinition(
        name: "render",
        columns: [
            ColumnDefinition(name: "id", type: .bigint, nullable: false), ColumnDefinition(name: "i", type: .int),
            ColumnDefinition(name: "dec", type: .decimal(precision: 30, scale: 4)), ColumnDefinition(name: "dbl", type: .double),
            ColumnDefinition(name: "v", type: .varchar(length: 300)), ColumnDefinition(name: "t", type: .text),
            ColumnDefinition(name: "flag", type: .bool), ColumnDefinition(name: "day", type: .date),
            ColumnDefinition(name: "at", type: .datetime), ColumnDefinition(name: "doc", type: .json),
        ],
        primaryKey: ["id"])

    static let texts = [
        "", "\t", "\n", "\r\n", "\\", "\\N", "N", "a\tb\nc\\d", "trailing\\", "nul\u{0}byte", "ünïcødé 🎉 𝄞 日本",
        "'quoted' \"double\" `tick`", "\u{1A}ctrl-z", "O'Brien'; DROP TABLE x; --", String((1...127).map { Character(Unicode.Scalar(UInt8($0))) }),
    ]

    /// Canonical rows (as the engine holds them); `big` adds a text far longer than a 64 KiB slice of the load.
    static func rows(from first: Int64, big: Bool) throws -> [[ProjectionValue]] {
        let decimals = ["0", "-0.0001", "12345678901234567890.1234", "99.5", "-7"].compactMap { Decimal(string: $0) }
        let doubles: [Double] = [0, 0.1, -2.5e-300, 1e300, 3, -123.456]
        let stamps = ["2026-01-05T10:00:00Z", "2026-01-05T10:00:00.5Z", "2026-12-31T23:59:59.999999Z", "1970-01-01T00:00:01Z"]
        return try texts.enumerated().map { index, text -> [ProjectionValue] in
            let null = index % 5 == 4
            let json = String(decoding: try JSONSerialization.data(withJSONObject: ["k": text]), as: UTF8.self)
            let long = big && index == 3 ? String(repeating: "x\t\\\n", count: 16_000) : text + text
            return [
                .int(first + Int64(index)), null ? .null : .int(Int64(index) - 7),
                null ? .null : .decimal(decimals[index % decimals.count]), .double(doubles[index % doubles.count]),
                .string(text), null ? .null : .string(long), .bool(index % 2 == 0),
                .string("2026-0\(index % 9 + 1)-1\(index % 10)"), null ? .null : .string(stamps[index % stamps.count]), .string(json),
            ]
        }
    }

    /// A new table of `table`'s columns, with its primary key and `indexes` (SQL after it).
    static func createTable(indexes: String) async throws -> (MySQLConnection, String) {
        let db = try await TestServers.mysql()
        let physical = TestServers.uniqueName("render")
        try await db.execute(
            "CREATE TABLE \(physical) (" + table.columns.map { "`\($0.name)` \($0.type.sql)\($0.nullable ? "" : " NOT NULL")" }.joined(separator: ", ")
                + ", PRIMARY KEY (id)\(indexes)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
        return (db, physical)
    }

    @Test func hostileValuesOfEveryColumnTypeComeBackFromBothPaths() async throws {
        let (db, physical) = try await Self.createTable(indexes: "")
        let layout = TableLayout(Self.table)
        let tables = ReadModelStore(connection: db).tables
        let loaded = try Self.rows(from: 0, big: true)
        let upserted = try Self.rows(from: 1_000, big: true)
        #expect(try await tables.loadNewRows(layout, physical: physical, rows: loaded) == loaded.count)
        _ = try await tables.writeRows(layout, physical: physical, rows: Dictionary(uniqueKeysWithValues: upserted.map { (layout.key(of: $0), Optional($0)) }))
        // Upserts over rows that exist: the update branch of the statement.
        let updated = try Self.rows(from: 0, big: false).map { row in var row = row; row[6] = .bool(true); return row }
        _ = try await tables.writeRows(layout, physical: physical, rows: Dictionary(uniqueKeysWithValues: updated.prefix(5).map { (layout.key(of: $0), Optional($0)) }))

        let expected = Array(updated.prefix(5)) + Array(loaded.dropFirst(5)) + upserted
        let back = try await tables.loadRows(layout, physical: physical, keys: expected.map { layout.key(of: $0) })
        #expect(back.count == expected.count)
        for row in expected {
            let key = layout.key(of: row)
            #expect(back[key] == row, "row \(key)")
        }
        try await db.execute("DROP TABLE \(physical)")
        await db.close()
    }

    /// Rows that exist, rewritten by the REPLACE load a build's own tables use instead of upserts,
    /// on a table with a secondary index (as after the index build): each key ends with the
    /// chunk's row, once; a delete in the same write removes its row; nothing else changes.
    @Test func rowsThatExistRewrittenByTheReplacingLoadEndAsUpserted() async throws {
        let (db, physical) = try await Self.createTable(indexes: ", KEY ix_1 (i)")
        let layout = TableLayout(Self.table)
        let tables = ReadModelStore(connection: db).tables
        let first = try Self.rows(from: 0, big: true)
        _ = try await tables.loadNewRows(layout, physical: physical, rows: first)
        // Every other row changed (text columns swapped, the indexed column moved), one deleted.
        let changed = first.enumerated().filter { $0.offset % 2 == 0 }.map { index, row in
            var row = row
            (row[4], row[5]) = (row[5] == .null ? .string("was null") : row[5], row[4])
            row[1] = .int(Int64(100 + index))
            return row
        }
        let deleted = layout.key(of: first[1])
        var write = Dictionary(uniqueKeysWithValues: changed.map { (layout.key(of: $0), Optional($0)) })
        write[deleted] = .some(nil)
        #expect(try await tables.writeRows(layout, physical: physical, rows: write, replacingByLoad: true) == changed.count + 1)

        let changedByKey = Dictionary(uniqueKeysWithValues: changed.map { (layout.key(of: $0), $0) })
        let expected = first.filter { layout.key(of: $0) != deleted }.map { changedByKey[layout.key(of: $0)] ?? $0 }
        let back = try await tables.loadRows(layout, physical: physical, keys: first.map { layout.key(of: $0) })
        #expect(back.count == expected.count)
        for row in expected {
            let key = layout.key(of: row)
            #expect(back[key] == row, "row \(key)")
        }
        let count = try await db.query("SELECT COUNT(*) FROM \(physical)")
        #expect(count.rows.first?.first == .some(String(expected.count)))
        try await db.execute("DROP TABLE \(physical)")
        await db.close()
    }
}
