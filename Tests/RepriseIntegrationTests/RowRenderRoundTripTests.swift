import Foundation
@testable import RepriseEngine
import RepriseMySQL
import RepriseProjection
import Testing

/// A chunk's rows written both ways the commit writes them, rendered straight into MySQL's text
/// (docs/throughput-render.md): bulk-loaded as new rows (`loadNewRows`) and upserted
/// (`writeRows`), hostile values of every column type come back as they were.
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

    @Test func hostileValuesOfEveryColumnTypeComeBackFromBothPaths() async throws {
        let db = try await TestServers.mysql()
        let physical = TestServers.uniqueName("render")
        let layout = TableLayout(Self.table)
        try await db.execute(
            "CREATE TABLE \(physical) (" + Self.table.columns.map { "`\($0.name)` \($0.type.sql)\($0.nullable ? "" : " NOT NULL")" }.joined(separator: ", ")
                + ", PRIMARY KEY (id)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin")
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
}
