import Testing
@testable import RepriseMySQL

/// Check queries are pointed at a build's tables by rewriting table names in their SQL: only
/// real references may change, never text inside literals or comments.
@Suite("SQL identifier rewriting and placeholders")
struct SQLScannerTests {
    let green = "`orders__7`"

    func rewrite(_ sql: String) -> String { MySQLIdentifier.replacingTable("orders", with: green, in: sql) }

    @Test func bareAndQuotedReferencesAreRewritten() {
        #expect(rewrite("SELECT * FROM orders WHERE total < 0") == "SELECT * FROM `orders__7` WHERE total < 0")
        #expect(rewrite("SELECT * FROM `orders` o JOIN orders p USING (id)") == "SELECT * FROM `orders__7` o JOIN `orders__7` p USING (id)")
        #expect(rewrite("SELECT orders.id FROM orders") == "SELECT `orders__7`.id FROM `orders__7`")
        #expect(rewrite("SELECT 1 FROM orders,orders_archive") == "SELECT 1 FROM `orders__7`,orders_archive")
    }

    @Test func longerWordsQualifiedNamesAndOtherIdentifiersStay() {
        #expect(rewrite("SELECT * FROM orders_archive, old_orders, orders2, $orders") == "SELECT * FROM orders_archive, old_orders, orders2, $orders")
        #expect(rewrite("SELECT t.orders FROM reports.orders t") == "SELECT t.orders FROM reports.orders t")
        #expect(rewrite("SELECT * FROM `orders_x`, `ord``ers`") == "SELECT * FROM `orders_x`, `ord``ers`")
        #expect(rewrite("SELECT * FROM reports.`orders`") == "SELECT * FROM reports.`orders`")
    }

    @Test func stringLiteralsWithEscapedQuotesStay() {
        #expect(rewrite(#"SELECT * FROM orders WHERE note = 'it''s orders' AND x = orders.id"#)
            == #"SELECT * FROM `orders__7` WHERE note = 'it''s orders' AND x = `orders__7`.id"#)
        #expect(rewrite(#"SELECT * FROM orders WHERE note = 'a \' orders' OR orders.id = 1"#)
            == #"SELECT * FROM `orders__7` WHERE note = 'a \' orders' OR `orders__7`.id = 1"#)
        #expect(rewrite(#"SELECT "orders \" orders" FROM orders"#) == #"SELECT "orders \" orders" FROM `orders__7`"#)
    }

    @Test func commentsStay() {
        #expect(rewrite("SELECT * FROM orders -- not orders\nWHERE 1") == "SELECT * FROM `orders__7` -- not orders\nWHERE 1")
        #expect(rewrite("SELECT * FROM orders # orders\n") == "SELECT * FROM `orders__7` # orders\n")
        #expect(rewrite("SELECT /* orders */ * FROM orders") == "SELECT /* orders */ * FROM `orders__7`")
        // `--` without a space after it is two minus signs, not a comment.
        #expect(rewrite("SELECT 1--orders\nFROM orders") == "SELECT 1--`orders__7`\nFROM `orders__7`")
    }

    @Test func unterminatedLiteralsSwallowTheRest() {
        #expect(rewrite("SELECT * FROM orders WHERE x = 'orders") == "SELECT * FROM `orders__7` WHERE x = 'orders")
        #expect(rewrite("SELECT * FROM orders /* orders") == "SELECT * FROM `orders__7` /* orders")
    }

    @Test func nonASCIITextIsKept() {
        #expect(rewrite("SELECT 'café' AS é FROM orders WHERE ordersé = 1") == "SELECT 'café' AS é FROM `orders__7` WHERE ordersé = 1")
    }

    @Test func placeholdersAreFoundOnlyInCode() {
        let sql = #"SELECT ? FROM t WHERE a = '?' AND b = "\"?" AND `c?` = ? -- ?"# + "\n/* ? */ # ?\n AND d = ?"
        let offsets = PlaceholderScanner.placeholderOffsets(in: sql)
        let bytes = Array(sql.utf8)
        #expect(offsets.count == 3)
        #expect(offsets.allSatisfy { bytes[$0] == UInt8(ascii: "?") })
        #expect(PlaceholderScanner.placeholderOffsets(in: "SELECT 'it''s ?', ?") == [18])
    }
}
