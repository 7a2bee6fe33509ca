import Foundation
import Testing
@testable import RepriseProjection

@Suite("Expression evaluation")
struct ExpressionEvaluatorTests {
    let context = DictionaryContext(
        fields: [
            "payload.quantity": .int(3), "payload.price": decimal("2.50"), "payload.ratio": .double(0.5),
            "payload.name": .string("Zoë"), "payload.occurredAt": .string("2026-01-05T10:00:00Z"),
            "payload.flag": .bool(true), "item.sku": .string("SKU-1"), "event.position": .int(42),
        ],
        columns: ["units": .int(10), "total": decimal("7.25"), "missing": .null, "status": .string("created")])

    func value(_ text: String) throws -> ProjectionValue { try evaluate(text, context) }

    func failure(_ text: String) -> String? {
        do {
            _ = try evaluate(text, context)
            return nil
        } catch {
            return error.message
        }
    }

    @Test func arithmeticKinds() throws {
        #expect(try value("units + payload.quantity") == .int(13))
        #expect(try value("units * 2 - 1") == .int(19))
        #expect(try value("units + payload.price") == decimal("12.5"))
        #expect(try value("payload.price * 2") == decimal("5"))
        #expect(try value("units + payload.ratio") == .double(10.5))
        #expect(try value("total - 0.25") == decimal("7"))
        #expect(try value("7 / 2") == decimal("3.5"))
        #expect(try value("6 / 3") == decimal("2"))
        #expect(try value("1.5 / 0.5") == decimal("3"))
        #expect(try value("payload.ratio / 2") == .double(0.25))
        #expect(try value("-units") == .int(-10))
        #expect(try value("-payload.price") == decimal("-2.5"))
        #expect(try value("event.position + 1") == .int(43))
    }

    @Test func nullPropagates() throws {
        #expect(try value("missing + 1") == .null)
        #expect(try value("1 - missing") == .null)
        #expect(try value("-missing") == .null)
        #expect(try value("missing = 1") == .null)
        #expect(try value("missing = null") == .null)
        #expect(try value("payload.nothing * 2") == .null)
        #expect(try value("not missing") == .null)
    }

    @Test func errorsNeverTrap() {
        #expect(failure("9223372036854775807 + 1")?.contains("integer overflow") == true)
        #expect(failure("-9223372036854775807 - 2")?.contains("integer overflow") == true)
        #expect(failure("4611686018427387904 * 2")?.contains("integer overflow") == true)
        #expect(failure("-(-9223372036854775807 - 1)")?.contains("integer overflow") == true)
        #expect(failure("abs(-9223372036854775807 - 1)")?.contains("overflow") == true)
        #expect(failure("units / 0") == "division by zero")
        #expect(failure("total / 0.0") == "division by zero")
        #expect(failure("payload.ratio / 0") == "division by zero")
        #expect(failure("payload.name + 1") == "cannot add string and int")
        #expect(failure("'a' + 'b'") == "cannot add string and string (use concat to join strings)")
        #expect(failure("units - payload.flag") == "cannot subtract bool from int")
        #expect(failure("payload.name * 2") == "cannot multiply string and int")
        #expect(failure("units / 'x'") == "cannot divide int by string")
        #expect(failure("-payload.name") == "cannot negate string")
        #expect(failure("not units") == "cannot apply 'not' to int")
        #expect(failure("units and true") == "cannot apply 'and' to int and bool")
        #expect(failure("payload.name < 3") == "cannot compare string and int with <")
        #expect(failure("payload.flag < true") == "cannot compare bool and bool with < (only = and !=)")
        #expect(failure("payload.flag = 1") == "cannot compare bool and int with =")
    }

    @Test func comparisons() throws {
        #expect(try value("units = 10") == .bool(true))
        #expect(try value("units = 10.0") == .bool(true))
        #expect(try value("units < payload.price * 5") == .bool(true))
        #expect(try value("payload.ratio < 1") == .bool(true))
        #expect(try value("total >= 7.25") == .bool(true))
        #expect(try value("units != 10") == .bool(false))
        #expect(try value("units <> 11") == .bool(true))
        #expect(try value("status = 'created'") == .bool(true))
        #expect(try value("'B' < 'a'") == .bool(true))
        #expect(try value("'a' < 'ab'") == .bool(true))
        #expect(try value("'z' < 'é'") == .bool(true))
        #expect(try value("payload.flag = true") == .bool(true))
        #expect(try value("payload.flag != false") == .bool(true))
    }

    @Test func threeValuedLogic() throws {
        #expect(try value("true and null") == .null)
        #expect(try value("false and null") == .bool(false))
        #expect(try value("null and false") == .bool(false))
        #expect(try value("null or true") == .bool(true))
        #expect(try value("false or null") == .null)
        #expect(try value("null or null") == .null)
        #expect(try value("true or units") == .bool(true))  // short-circuit
        #expect(try value("false and units") == .bool(false))
        #expect(try value("not (units > 3)") == .bool(false))
    }

    @Test func isTrueTreatsNullAsFalse() throws {
        #expect(try ExpressionEvaluator.isTrue(parseExpression("missing > 1"), in: context) == false)
        #expect(try ExpressionEvaluator.isTrue(parseExpression("units > 1"), in: context) == true)
        #expect(throws: ExpressionError.self) { try ExpressionEvaluator.isTrue(parseExpression("units"), in: context) }
        #expect(try ExpressionEvaluator.isTrue(.null) == false)
        #expect(try ExpressionEvaluator.isTrue(.bool(true)) == true)
    }

    @Test func functions() throws {
        #expect(try value("coalesce(missing, payload.nothing, units, 1)") == .int(10))
        #expect(try value("coalesce(missing)") == .null)
        #expect(try value("date(payload.occurredAt)") == .string("2026-01-05"))
        #expect(try value("date('2026-12-31')") == .string("2026-12-31"))
        #expect(try value("date(missing)") == .null)
        #expect(failure("date('2026-1-5')")?.contains("YYYY-MM-DD") == true)
        #expect(failure("date('2026-13-01T00:00:00Z')")?.contains("YYYY-MM-DD") == true)
        #expect(failure("date(units)") == "date expects a string starting with YYYY-MM-DD, got int")
        #expect(try value("concat('a', units, missing, payload.price, true, item.sku)") == .string("a102.5trueSKU-1"))
        #expect(try value("lower(payload.name)") == .string("zoë"))
        #expect(try value("upper(payload.name)") == .string("ZOË"))
        #expect(failure("lower(1)") == "lower expects a string, got int")
        #expect(try value("greatest(1, missing, 2.5, units)") == .int(10))
        #expect(try value("least(units, missing, 2.5, payload.ratio)") == .double(0.5))
        #expect(try value("greatest(missing, null)") == .null)
        #expect(try value("greatest('b', 'a')") == .string("b"))
        #expect(failure("least('b', 1)") == "cannot compare int and string with least")
        #expect(try value("abs(-3)") == .int(3))
        #expect(try value("abs(-2.5)") == decimal("2.5"))
        #expect(try value("abs(missing)") == .null)
        #expect(try value("number('42')") == .int(42))
        #expect(try value("number('-1.50')") == decimal("-1.50"))
        #expect(try value("number(2.5) + number('1')") == decimal("3.5"))
        #expect(try value("number(missing)") == .null)
        #expect(failure("number('12abc')") == "number expects numeric text, got '12abc'")
        #expect(failure("number(true)") == "number expects a number or numeric text, got bool")
        #expect(try value("if(units > 5, 'big', 'small')") == .string("big"))
        #expect(try value("if(missing, 'yes', 'no')") == .string("no"))
        #expect(try value("if(true, 1, 1 / 0)") == .int(1))  // the other branch is not evaluated
        #expect(failure("if(1, 2, 3)") == "a condition must be a bool, got int")
    }

    @Test func contextErrorsPassThrough() {
        struct Failing: ExpressionContext {
            func value(of field: FieldReference) throws(ExpressionError) -> ProjectionValue {
                throw ExpressionError("no field \(field)")
            }
            func value(ofColumn name: String) throws(ExpressionError) -> ProjectionValue { .int(1) }
        }
        #expect(throws: ExpressionError("no field payload.x")) {
            try ExpressionEvaluator.evaluate(parseExpression("1 + payload.x"), in: Failing())
        }
    }
}
