import Foundation
import RepriseMySQL
import RepriseProjection
import Testing

@testable import RepriseEngine

/// Rows rendered straight into a bulk load's text (`ColumnValues.rowRenderer`, docs/throughput-render.md)
/// give the bytes of the path through `[MySQLValue]` they replaced, for hostile values of every
/// column type. No server: the LOAD DATA text is built as `loadRows` sends it.
@Suite("Rows rendered straight into MySQL text (no server)")
struct RowRenderTests {
    static let columns: [ColumnDefinition] = [
        ColumnDefinition(name: "i", type: .int), ColumnDefinition(name: "b", type: .bigint),
        ColumnDefinition(name: "dec", type: .decimal(precision: 30, scale: 4)), ColumnDefinition(name: "dbl", type: .double),
        ColumnDefinition(name: "v", type: .varchar(length: 300)), ColumnDefinition(name: "t", type: .text),
        ColumnDefinition(name: "flag", type: .bool), ColumnDefinition(name: "day", type: .date),
        ColumnDefinition(name: "at", type: .datetime), ColumnDefinition(name: "doc", type: .json),
    ]

    static let hostileTexts: [String] = [
        "", "\t", "\n", "\r\n", "\\", "\\N", "N", "a\tb\nc\\d", "trailing\\", "nul\u{0}byte", "ünïcødé 🎉 𝄞 日本",
        "'quoted' \"double\" `tick`", "\u{1A}ctrl-z", "O'Brien; DROP TABLE x; --", String(repeating: "long\t", count: 3000),
        String((1...127).map { Character(Unicode.Scalar(UInt8($0))) }),
    ]

    /// Rows mixing NULLs, extremes and every hostile text, one value per column type.
    static func hostileRows() -> [[ProjectionValue]] {
        let integers: [Int64] = [0, -1, 9, 10, -10, Int64(Int32.max), Int64(Int32.min), Int64.max, Int64.min, 1_234_567_890_123]
        let decimals: [Decimal] = [0, Decimal(string: "-0.0001")!, Decimal(string: "12345678901234567890.1234")!, Decimal(string: "99.5")!, -7]
        let doubles: [Double] = [0, -0.0, 0.1, -2.5e-300, 1e300, 3, .leastNonzeroMagnitude, .greatestFiniteMagnitude]
        let datetimes = ["2026-01-05T10:00:00Z", "2026-01-05T10:00:00.5Z", "2026-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z"]
        return hostileTexts.enumerated().map { index, text -> [ProjectionValue] in
            let null = index % 5 == 4
            return [
                null ? .null : .int(integers[index % integers.count] % Int64(Int32.max)),
                .int(integers[index % integers.count]),
                null ? .null : .decimal(decimals[index % decimals.count]),
                .double(doubles[index % doubles.count]),
                .string(text),
                null ? .null : .string(text + text),
                .bool(index % 2 == 0),
                .string("2026-0\(index % 9 + 1)-1\(index % 10)"),
                null ? .null : .string(datetimes[index % datetimes.count]),
                .string("{\"k\": \"\(text.replacingOccurrences(of: "\"", with: "\\\""))\"}"),
            ]
        }
    }

    /// The old path: `ColumnValues.mysqlValue` per value, then LOAD DATA's escaping byte by byte
    /// (the wrapper's code before rows were rendered directly, kept here as the reference).
    static func referenceLoadDataText(_ rows: [[ProjectionValue]]) -> [UInt8] {
        var output: [UInt8] = []
        for row in rows {
            for (index, (value, column)) in zip(row, columns).enumerated() {
                if index > 0 { output.append(UInt8(ascii: "\t")) }
                switch ColumnValues.mysqlValue(value, for: column) {
                case .null: output += Array("\\N".utf8)
                case .int(let number): output += Array(String(number).utf8)
                case .bool(let flag): output.append(flag ? UInt8(ascii: "1") : UInt8(ascii: "0"))
                case .double(let number): output += Array("\(number)".utf8)
                case .decimal(let text): output += Array(text.utf8)
                case .string(let text): escape(Array(text.utf8), into: &output)
                case .bytes(let data): escape(data, into: &output)
                }
            }
            output.append(UInt8(ascii: "\n"))
        }
        return output
    }

    static func escape(_ bytes: [UInt8], into output: inout [UInt8]) {
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\\"): output += Array("\\\\".utf8)
            case UInt8(ascii: "\t"): output += Array("\\t".utf8)
            case UInt8(ascii: "\n"): output += Array("\\n".utf8)
            case UInt8(ascii: "\r"): output += Array("\\r".utf8)
            case 0: output += Array("\\0".utf8)
            default: output.append(byte)
            }
        }
    }

    @Test func hostileValuesOfEveryColumnTypeRenderAsThroughMySQLValues() throws {
        let rows = Self.hostileRows()
        let rendered = try MySQLConnection.loadDataText(rows: rows, render: ColumnValues.rowRenderer(Self.columns))
        let reference = Self.referenceLoadDataText(rows)
        #expect(rendered.count == reference.count)
        #expect(rendered == reference)
        // And the MySQLValue path of the wrapper (kept for callers with their own values) gives the same.
        let viaValues = try MySQLConnection.loadDataText(rows: rows) { (row: [ProjectionValue], writer: inout MySQLRowWriter) throws(MySQLError) in
            for (value, column) in zip(row, Self.columns) { try writer.append(ColumnValues.mysqlValue(value, for: column)) }
        }
        #expect(viaValues == reference)
    }

    @Test func integersAndDatetimesAreWrittenWithoutBuildingStrings() throws {
        var numbers: [Int64] = [0, 1, 9, 10, 99, 100, -1, -9, -10, Int64.max, Int64.min, Int64.max - 1, Int64.min + 1]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<500 { numbers.append(Int64.random(in: Int64.min...Int64.max, using: &generator) >> Int64.random(in: 0...62, using: &generator)) }
        let text = try MySQLConnection.loadDataText(rows: numbers) { (number: Int64, writer: inout MySQLRowWriter) throws(MySQLError) in writer.append(number) }
        #expect(String(decoding: text, as: UTF8.self) == numbers.map { String($0) + "\n" }.joined())

        let stamps = ["2026-01-05T10:00:00Z", "2026-01-05T10:00:00.123456Z", "", "TZZT", "2026-01-05 10:00:00", "ZT\t\\\u{0}"]
        let direct = try MySQLConnection.loadDataText(rows: stamps) { (stamp: String, writer: inout MySQLRowWriter) throws(MySQLError) in
            writer.appendDatetime(iso: stamp)
        }
        let converted = try MySQLConnection.loadDataText(rows: stamps) { (stamp: String, writer: inout MySQLRowWriter) throws(MySQLError) in
            writer.append(ColumnValues.mysqlDatetime(stamp))
        }
        #expect(direct == converted)
        #expect(String(decoding: direct, as: UTF8.self).hasPrefix("2026-01-05 10:00:00\n2026-01-05 10:00:00.123456\n\n  \n"))
    }

    @Test func everyByteOfBinaryDataIsEscapedAsBefore() throws {
        let allBytes = (0...255).map { UInt8($0) }
        let text = try MySQLConnection.loadDataText(rows: [allBytes, [], allBytes.reversed()]) { (data: [UInt8], writer: inout MySQLRowWriter) throws(MySQLError) in
            writer.append(bytes: data)
        }
        var reference: [UInt8] = []
        for data in [allBytes, [], allBytes.reversed()] {
            Self.escape(data, into: &reference)
            reference.append(UInt8(ascii: "\n"))
        }
        #expect(text == reference)
    }

    @Test func valuesMySQLCannotStoreAreRefused() {
        #expect(throws: MySQLError.self) {
            _ = try MySQLConnection.loadDataText(rows: [Double.infinity]) { (number: Double, writer: inout MySQLRowWriter) throws(MySQLError) in
                try writer.append(number)
            }
        }
        #expect(throws: MySQLError.self) {
            _ = try MySQLConnection.loadDataText(rows: ["1e5"]) { (text: String, writer: inout MySQLRowWriter) throws(MySQLError) in
                try writer.appendDecimal(text)
            }
        }
    }
}
