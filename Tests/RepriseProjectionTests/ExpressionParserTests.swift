import Foundation
import Testing
@testable import RepriseProjection

@Suite("Expression parser")
struct ExpressionParserTests {
    @Test func literals() throws {
        #expect(try parseExpression("42") == .literal(.int(42)))
        #expect(try parseExpression("12.50") == .literal(decimal("12.5")))
        #expect(try parseExpression("'it''s'") == .literal(.string("it's")))
        #expect(try parseExpression("''") == .literal(.string("")))
        #expect(try parseExpression("TRUE") == .literal(.bool(true)))
        #expect(try parseExpression("false") == .literal(.bool(false)))
        #expect(try parseExpression("Null") == .literal(.null))
        #expect(try parseExpression("-7") == .literal(.int(-7)))
        #expect(try parseExpression("-0.5") == .literal(decimal("-0.5")))
        #expect(try parseExpression("9223372036854775808") == .literal(decimal("9223372036854775808")))
    }

    @Test func references() throws {
        #expect(try parseExpression("payload.a.b") == .field(.payload([.key("a"), .key("b")])))
        #expect(try parseExpression("payload.items.0.sku") == .field(.payload([.key("items"), .index(0), .key("sku")])))
        #expect(try parseExpression("metadata.correlationId") == .field(.metadata([.key("correlationId")])))
        #expect(try parseExpression("item.unitPriceCents") == .field(.item([.key("unitPriceCents")])))
        #expect(try parseExpression("item") == .field(.item([])))
        #expect(try parseExpression("total_cents") == .column("total_cents"))
        #expect(try parseExpression("_hidden") == .column("_hidden"))
        for field in EnvelopeField.allCases {
            #expect(try parseExpression("event.\(field.rawValue)") == .field(.envelope(field)))
        }
    }

    @Test func precedence() throws {
        let a = ProjectionExpression.column("a"), b = Expression.column("b"), c = Expression.column("c")
        #expect(try parseExpression("a + b * c") == .binary(.add, a, .binary(.multiply, b, c)))
        #expect(try parseExpression("a - b - c") == .binary(.subtract, .binary(.subtract, a, b), c))
        #expect(try parseExpression("(a + b) * c") == .binary(.multiply, .binary(.add, a, b), c))
        #expect(try parseExpression("a or b and c") == .binary(.or, a, .binary(.and, b, c)))
        #expect(try parseExpression("not a = b") == .unary(.not, .binary(.equal, a, b)))
        #expect(try parseExpression("a < b + 1 AND NOT c") ==
            .binary(.and, .binary(.less, a, .binary(.add, b, .literal(.int(1)))), .unary(.not, c)))
        #expect(try parseExpression("-a * b") == .binary(.multiply, .unary(.negate, a), b))
        #expect(try parseExpression("a <> b") == .binary(.notEqual, a, b))
        #expect(try parseExpression("a >= b") == .binary(.greaterOrEqual, a, b))
    }

    @Test func functions() throws {
        #expect(try parseExpression("COALESCE(a, 0)") == .call(.coalesce, [.column("a"), .literal(.int(0))]))
        #expect(try parseExpression("if(a > 1, 'x', 'y')") ==
            .call(.if, [.binary(.greater, .column("a"), .literal(.int(1))), .literal(.string("x")), .literal(.string("y"))]))
        // A column may share a function's name: only `name(` is a call.
        #expect(try parseExpression("date") == .column("date"))
    }

    @Test(arguments: [
        ("a +", 3, "expected a value"),
        ("(a + b", 6, "expected ')'"),
        ("'open", 0, "unterminated string"),
        ("foo(1)", 0, "unknown function 'foo'"),
        ("date(a, b)", 0, "date takes 1 argument, got 2"),
        ("if(a, b)", 0, "if takes 3 arguments, got 2"),
        ("coalesce()", 0, "coalesce needs at least 1 argument"),
        ("a = b = c", 6, "comparisons do not chain"),
        ("a == b", 2, "use '='"),
        ("payload.", 8, "expected a field name"),
        ("payload", 0, "needs a field path"),
        ("event.nope", 6, "unknown event field 'nope'"),
        ("event", 0, "needs a field"),
        ("Status", 0, "column names are lowercase"),
        ("a b", 2, "after a complete expression"),
        ("1.", 2, "expected digits"),
        ("a # b", 2, "unexpected character '#'"),
        ("a and", 5, "expected a value"),
    ])
    func syntaxErrors(text: String, offset: Int, fragment: String) {
        #expect {
            _ = try ExpressionParser.parse(text)
        } throws: { error in
            guard let error = error as? ExpressionError else { return false }
            return error.offset == offset && error.message.contains(fragment)
        }
    }

    @Test func errorDescriptionShowsColumn() {
        do {
            _ = try ExpressionParser.parse("a + * b")
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "at column 5: expected a value, found '*'")
        }
    }

    @Test func deepNestingIsRefusedNotCrashing() {
        let deep = String(repeating: "(", count: 10_000) + "1" + String(repeating: ")", count: 10_000)
        #expect(throws: ExpressionError.self) { try ExpressionParser.parse(deep) }
        let long = Array(repeating: "a", count: 5_000).joined(separator: " + ")
        #expect(throws: ExpressionError.self) { try ExpressionParser.parse(long) }
        let negations = String(repeating: "not ", count: 5_000) + "a"
        #expect(throws: ExpressionError.self) { try ExpressionParser.parse(negations) }
        let wide = "concat(" + Array(repeating: "'x'", count: 5_000).joined(separator: ", ") + ")"
        #expect(throws: Never.self) { try ExpressionParser.parse(wide) }
    }

    @Test(arguments: [
        "a + b * c", "(a + b) * c", "a - (b - c)", "a - b - c", "-(a + b)", "a * -1", "a - -1.5",
        "not (a or b) and c", "(not a) = b", "not a = b", "(a = b) = c", "a / (b * c)",
        "coalesce(first_order_at, payload.occurredAt)", "concat('it''s', payload.items.0.sku, event.position)",
        "if(a > 1 and not b, greatest(1, 2.0, c), least(-3, abs(d)))", "date(payload.occurredAt) >= '2026-01-01'",
        "lower(upper(item.name)) != 'x'", "12.0 + 3", "item", "a <= b or a >= c or a < d",
    ])
    func descriptionRoundTrips(text: String) throws {
        let expression: ProjectionExpression = try ExpressionParser.parse(text)
        let printed = expression.description
        #expect(try ExpressionParser.parse(printed) == expression, "\(text) printed as \(printed)")
    }

    @Test func descriptionIsMinimal() throws {
        #expect(try parseExpression("((a + (b * c)))").description == "a + b * c")
        #expect(try parseExpression("a-(b-c)").description == "a - (b - c)")
        #expect(try parseExpression("NOT(a)AND b").description == "not a and b")
        #expect(try parseExpression("12.50").description == "12.5")
        #expect(try parseExpression("12.0").description == "12.0")
        #expect(try parseExpression("'a''b'").description == "'a''b'")
        #expect(try parseExpression("- - a").description == "-(-a)")
    }
}
