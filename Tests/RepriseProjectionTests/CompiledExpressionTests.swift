import Foundation
import Testing
@testable import RepriseProjection

/// A compiled expression must mean exactly what its tree means: same value, same error.
@Suite("Compiled expressions")
struct CompiledExpressionTests {
    /// Reads fields by index and columns by slot, answering what `PoolContext` answers for the
    /// names they were compiled from.
    struct SlotPool: CompiledExpressionContext {
        let pool: FuzzTests.PoolContext
        let fields: [FieldReference]
        let columns: [String]

        func value(ofField index: Int) throws(ExpressionError) -> ProjectionValue { pool.pick(fields[index].description) }
        func value(ofColumn slot: Int) -> ProjectionValue { pool.pick(columns[slot]) }
        func value(ofLookup alias: String, column: String) throws(ExpressionError) -> ProjectionValue {
            throw ExpressionError("lookup '\(alias)' is not available here")
        }
    }

    static func compile(_ expression: ProjectionExpression, knownColumns: [String]) -> (CompiledExpression, [FieldReference], [String]) {
        var fields: [FieldReference] = []
        let compiled = CompiledExpression(
            expression,
            field: { reference in
                if let index = fields.firstIndex(of: reference) { return index }
                fields.append(reference)
                return fields.count - 1
            },
            column: { knownColumns.firstIndex(of: $0) })
        return (compiled, fields, knownColumns)
    }

    static func outcome(_ body: () throws(ExpressionError) -> ProjectionValue) -> Result<ProjectionValue, ExpressionError> {
        do { return .success(try body()) } catch { return .failure(error) }
    }

    @Test func generatedTreesEvaluateAlike() {
        var random = SeededRandom(state: 0xC0)
        for _ in 0..<4_000 {
            let tree = FuzzTests.randomTree(depth: 5, random: &random)
            let (compiled, fields, columns) = Self.compile(tree, knownColumns: ["units", "status"])
            for _ in 0..<3 {
                let pool = FuzzTests.PoolContext(salt: random.next())
                let expected = Self.outcome { () throws(ExpressionError) in try ExpressionEvaluator.evaluate(tree, in: pool) }
                let actual = Self.outcome { () throws(ExpressionError) in
                    try ExpressionEvaluator.evaluate(compiled, in: SlotPool(pool: pool, fields: fields, columns: columns))
                }
                #expect(actual == expected, "\(tree)")
            }
        }
    }

    @Test func anUnknownColumnReadsNull() throws {
        let tree = try parseExpression("coalesce(nope, 7)")
        let (compiled, fields, columns) = Self.compile(tree, knownColumns: [])
        let value = try ExpressionEvaluator.evaluate(compiled, in: SlotPool(pool: FuzzTests.PoolContext(salt: 1), fields: fields, columns: columns))
        #expect(value == .int(7))
    }

    @Test func shortCircuitsAndArityAsTheTreeDoes() throws {
        let pool = FuzzTests.PoolContext(salt: 3)
        for text in ["false and 1 / 0 = 1", "true or 1 / 0 = 1", "if(true, 1, 1 / 0)", "coalesce(2, 1 / 0)", "1 / 0 = 1 and false",
                     "date('2026-02-30')", "number('1.5x')", "not 3", "- 'a'", "'a' + 'b'", "concat('a', null, 2)"] {
            let tree = try parseExpression(text)
            let (compiled, fields, columns) = Self.compile(tree, knownColumns: [])
            let expected = Self.outcome { () throws(ExpressionError) in try ExpressionEvaluator.evaluate(tree, in: pool) }
            let actual = Self.outcome { () throws(ExpressionError) in
                try ExpressionEvaluator.evaluate(compiled, in: SlotPool(pool: pool, fields: fields, columns: columns))
            }
            #expect(actual == expected, "\(text)")
        }
    }
}
