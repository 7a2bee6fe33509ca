import RepriseMySQL
import Testing

@Suite("MySQL bulk load from memory (LOAD DATA LOCAL INFILE through callbacks)")
struct BulkLoadTests {
    static let columns = ["id", "s", "b", "big", "dec", "d", "flag"]
    static let createColumns =
        "(id BIGINT PRIMARY KEY, s TEXT NULL, b BLOB NULL, big BIGINT NULL, `dec` DECIMAL(30,4) NULL, d DOUBLE NULL, flag TINYINT NULL)"
    /// Every row read back as text, binary as hex, so both paths compare byte for byte.
    static func contents(_ db: MySQLConnection, _ table: String) async throws -> [[String?]] {
        try await db.query("SELECT id, s, HEX(b), big, `dec`, d, flag FROM \(table) ORDER BY id").rows
    }

    static let awkwardTexts: [String?] = [
        nil, "", "\t", "\n", "\r\n", "\\", "\\N", "N", "a\tb\nc\\d", "trailing\\", "nul\u{0}byte", "ünïcødé 🎉 𝄞",
        "'quoted' \"double\" `tick`", "\u{1A}ctrl-z", "tab\tat end\t", String(repeating: "long ", count: 3000),
    ]

    static func awkwardRows() -> [[MySQLValue]] {
        let allBytes = (0...255).map { UInt8($0) }
        let integers: [Int64] = [0, -1, Int64.max, Int64.min, 42]
        let decimals = ["0", "-0.0001", "12345678901234567890.1234", "99.5", "-7"]
        let doubles: [Double] = [0.1, -2.5e-300, 1e300, 3]
        return awkwardTexts.enumerated().map { index, text -> [MySQLValue] in
            [
                .int(Int64(index)),
                text.map { .string($0) } ?? .null,
                index % 3 == 0 ? .bytes(allBytes) : (index % 3 == 1 ? .bytes([]) : .null),
                index % 4 == 3 ? .null : .int(integers[index % integers.count]),
                .decimal(decimals[index % decimals.count]),
                index == 1 ? .null : .double(doubles[index % doubles.count]),
                index % 2 == 0 ? .bool(true) : .bool(false),
            ]
        }
    }

    @Test func awkwardValuesRoundTripLikeTheUpsertPath() async throws {
        let db = try await TestServers.mysql()
        let loaded = TestServers.uniqueName("bulk")
        let upserted = TestServers.uniqueName("bulk_upsert")
        try await db.execute("CREATE TABLE \(loaded) \(Self.createColumns)")
        try await db.execute("CREATE TABLE \(upserted) \(Self.createColumns)")
        let rows = Self.awkwardRows()

        let result = try await db.loadRows(into: loaded, columns: Self.columns, rows: rows)
        #expect(result == MySQLBulkLoadResult(records: rows.count, replaced: 0))
        try await db.executeBatch(
            prefix: "INSERT INTO \(upserted) (\(Self.columns.map { MySQLIdentifier.quote($0) }.joined(separator: ", "))) VALUES",
            rows: rows)

        let viaLoad = try await Self.contents(db, loaded)
        let viaInsert = try await Self.contents(db, upserted)
        #expect(viaLoad.count == rows.count)
        #expect(viaLoad == viaInsert)
        // And against the values themselves, not only against the other path.
        for (index, text) in Self.awkwardTexts.enumerated() {
            #expect(viaLoad[index][1] == text, "row \(index)")
        }
        let hexDigits = Array("0123456789ABCDEF")
        #expect(viaLoad[0][2] == String((0...255).flatMap { [hexDigits[$0 >> 4], hexDigits[$0 & 15]] }))
        #expect(viaLoad[1][2] == "")
        #expect(viaLoad[2][2] == nil)
        #expect(viaLoad[2][3] == String(Int64.max))
        #expect(viaLoad[3][3] == nil)
        #expect(viaLoad[4][4] == "-7.0000")
        #expect(viaLoad[1][5] == nil)
        #expect(viaLoad[2][4] == "12345678901234567890.1234")
        try await db.execute("DROP TABLE \(loaded)")
        try await db.execute("DROP TABLE \(upserted)")
        await db.close()
    }

    @Test func errorsNameTheTableAndKeepTheServerError() async throws {
        let db = try await TestServers.mysql()
        let missing = TestServers.uniqueName("bulk_missing")
        do {
            try await db.loadRows(into: missing, columns: ["id"], rows: [[.int(1)]])
            Issue.record("a load into a missing table succeeded")
        } catch {
            #expect(error.code == .server)
            #expect(error.errorNumber == MySQLError.noSuchTable)
            #expect(error.message.contains("bulk load into `\(missing)`"))
        }

        let table = TestServers.uniqueName("bulk_dup")
        try await db.execute("CREATE TABLE \(table) (id INT PRIMARY KEY, name VARCHAR(4) NOT NULL)")
        try await db.loadRows(into: table, columns: ["id", "name"], rows: [[.int(1), "one"], [.int(2), "two"]])
        // LOAD DATA LOCAL downgrades duplicates and values that do not fit to warnings: they must still fail.
        do {
            try await db.loadRows(into: table, columns: ["id", "name"], rows: [[.int(2), "dup"], [.int(3), "new"]])
            Issue.record("a duplicate key was loaded without an error")
        } catch {
            #expect(error.code == .bulkLoadRejected)
            #expect(error.message.contains("`\(table)`"))
            #expect(error.message.contains("1 skipped"))
        }
        await #expect {
            try await db.loadRows(into: table, columns: ["id", "name"], rows: [[.int(9), "far too long"]])
        } throws: { error in
            (error as? MySQLError)?.code == .bulkLoadRejected && "\(error)".contains(table)
        }
        // A row of the wrong width is refused before anything is sent.
        await #expect {
            try await db.loadRows(into: table, columns: ["id", "name"], rows: [[.int(4)]])
        } throws: { error in
            (error as? MySQLError)?.code == .parameterMismatch && "\(error)".contains("row 0")
        }
        let replaced = try await db.loadRows(
            into: table, columns: ["id", "name"], rows: [[.int(1), "uno"], [.int(5), "five"]], duplicates: .replace)
        #expect(replaced == MySQLBulkLoadResult(records: 2, replaced: 1))
        let names = try await db.query("SELECT name FROM \(table) WHERE id IN (1, 5) ORDER BY id").rows.map { $0[0] }
        #expect(names == ["uno", "five"])
        try await db.execute("DROP TABLE \(table)")
        await db.close()
    }

    @Test func aLoadInsideATransactionRollsBack() async throws {
        let db = try await TestServers.mysql()
        let table = TestServers.uniqueName("bulk_tx")
        try await db.execute("CREATE TABLE \(table) (id INT PRIMARY KEY) ENGINE=InnoDB")
        try await db.begin()
        try await db.loadRows(into: table, columns: ["id"], rows: (1...1000).map { [MySQLValue.int(Int64($0))] })
        #expect(try await db.query("SELECT COUNT(*) FROM \(table)").int(0, 0) == 1000)
        try await db.rollback()
        #expect(try await db.query("SELECT COUNT(*) FROM \(table)").int(0, 0) == 0)
        try await db.execute("DROP TABLE \(table)")
        await db.close()
    }

    @Test func theServerCannotReadAFileOfThisMachine() async throws {
        let db = try await TestServers.mysql()
        let table = TestServers.uniqueName("bulk_file")
        try await db.execute("CREATE TABLE \(table) (line TEXT)")
        // LOCAL INFILE is on for bulk loads, but only an in-memory buffer of a running load is served.
        await #expect {
            try await db.execute("LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE \(table)")
        } throws: { error in
            (error as? MySQLError).map { $0.message.contains("only served from memory") } ?? false
        }
        #expect(try await db.query("SELECT COUNT(*) FROM \(table)").int(0, 0) == 0)
        // The connection still works, and a real load after the refusal still succeeds.
        try await db.loadRows(into: table, columns: ["line"], rows: [["after"]])
        #expect(try await db.query("SELECT line FROM \(table)").string(0, 0) == "after")
        try await db.execute("DROP TABLE \(table)")
        await db.close()
    }

    /// Loads of many slices: the text is rendered as the server reads it (docs/throughput-render.md).
    @Test func aLoadOfManySlicesArrivesWhole() async throws {
        let db = try await TestServers.mysql()
        let table = TestServers.uniqueName("bulk_slices")
        try await db.execute("CREATE TABLE \(table) (id BIGINT PRIMARY KEY, s LONGTEXT NULL)")
        // 20,000 rows of about 40 escaped bytes and one of 400 KB: many 64 KiB slices, one row longer than a slice.
        let big = String(repeating: "tab\there\\ new\nline ", count: 20_000)
        let rows: [[MySQLValue]] = (0..<20_000).map { index in
            [.int(Int64(index)), index == 12_345 ? .string(big) : (index % 7 == 0 ? .null : .string("row \(index)\t\\\n\u{0}é"))]
        }
        let result = try await db.loadRows(into: table, columns: ["id", "s"], rows: rows)
        #expect(result == MySQLBulkLoadResult(records: rows.count, replaced: 0))
        #expect(try await db.query("SELECT COUNT(*), COUNT(s) FROM \(table)").rows == [["20000", String(20_000 - 2_858)]])
        #expect(try await db.query("SELECT s FROM \(table) WHERE id = 12345").string(0, 0) == big)
        #expect(try await db.query("SELECT s FROM \(table) WHERE id = 19998").string(0, 0) == "row 19998\t\\\n\u{0}é")
        try await db.execute("DROP TABLE \(table)")
        await db.close()
    }

    @Test func aRowRefusedAfterTheFirstSliceFailsTheLoadAndItsTransactionRollsBack() async throws {
        let db = try await TestServers.mysql()
        let table = TestServers.uniqueName("bulk_refused")
        try await db.execute("CREATE TABLE \(table) (id BIGINT PRIMARY KEY, d DOUBLE NULL) ENGINE=InnoDB")
        // Row 15,000 is far past the first 64 KiB: the server has read the rows before it when it is refused.
        let rows: [[MySQLValue]] = (0..<20_000).map { [.int(Int64($0)), .double($0 == 15_000 ? .infinity : Double($0) / 3)] }
        try await db.begin()
        await #expect {
            try await db.loadRows(into: table, columns: ["id", "d"], rows: rows)
        } throws: { error in
            guard let error = error as? MySQLError else { return false }
            return error.code == .invalidValue && error.message.contains("bulk load into `\(table)`") && error.message.contains("inf")
        }
        try await db.rollback()
        #expect(try await db.query("SELECT COUNT(*) FROM \(table)").int(0, 0) == 0)
        // The connection goes on: a load after the refused one succeeds.
        try await db.loadRows(into: table, columns: ["id", "d"], rows: [[.int(1), .double(0.5)]])
        #expect(try await db.query("SELECT d FROM \(table) WHERE id = 1").string(0, 0) == "0.5")
        try await db.execute("DROP TABLE \(table)")
        await db.close()
    }
}
