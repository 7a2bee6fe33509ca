import Foundation
import Testing
@testable import RepriseProjection

@Suite("ProjectionValue text")
struct ProjectionValueTests {
    @Test func descriptionIsTheMySQLText() {
        #expect(ProjectionValue.int(-42).description == "-42")
        #expect(decimal("12.50").description == "12.5")
        #expect(decimal("1e-20").description == "0.00000000000000000001")
        #expect(decimal("1e25").description == "10000000000000000000000000")
        #expect(ProjectionValue.double(0.1).description == "0.1")
        #expect(Double(ProjectionValue.double(1.0 / 3.0).description) == 1.0 / 3.0)
        #expect(ProjectionValue.bool(true).description == "true")
        #expect(ProjectionValue.bool(false).description == "false")
        #expect(ProjectionValue.string("O'Neil").description == "O'Neil")
        #expect(ProjectionValue.null.description == "null")
    }

    @Test func jsonNumbers() {
        #expect(ProjectionValue(jsonNumberText: "42") == .int(42))
        #expect(ProjectionValue(jsonNumberText: "-0") == .int(0))
        #expect(ProjectionValue(jsonNumberText: "9223372036854775807") == .int(.max))
        #expect(ProjectionValue(jsonNumberText: "9223372036854775808") == decimal("9223372036854775808"))
        #expect(ProjectionValue(jsonNumberText: "12.50") == decimal("12.5"))
        #expect(ProjectionValue(jsonNumberText: "1e3") == decimal("1000"))
        #expect(ProjectionValue(jsonNumberText: "-2.5E-3") == decimal("-0.0025"))
        #expect(ProjectionValue(jsonNumberText: "1e300") == .double(1e300))
        #expect(ProjectionValue(jsonNumberText: "1e400") == nil)
        #expect(ProjectionValue(jsonNumberText: "12abc") == nil)
        #expect(ProjectionValue(jsonNumberText: "+1") == nil)
        #expect(ProjectionValue(jsonNumberText: "1.") == nil)
        #expect(ProjectionValue(jsonNumberText: "") == nil)
        #expect(ProjectionValue(jsonNumberText: "42"[...]) == .int(42))
    }

    @Test func kindNames() {
        let names = [ProjectionValue.null, .bool(true), .int(1), decimal("1.5"), .double(1), .string("")].map(\.kindName)
        #expect(names == ["null", "bool", "int", "decimal", "double", "string"])
    }
}
