import Foundation
import Testing
@testable import RepriseProjection
import RepriseSupport

/// Random and mutated inputs, with fixed seeds: nothing may crash, every failure must be the
/// typed error with a sensible location, and everything that parses must print and hash stably.
@Suite("Fuzzing")
struct FuzzTests {
    static let expressionCorpus = [
        "item_count + 1", "total_cents + payload.lineTotalCents", "payload.quantity > 0 and not (status = 'x')",
        "coalesce(first_order_at, payload.occurredAt)", "date(payload.occurredAt)", "concat('a''b', item.sku, event.position)",
        "if(a > 1, greatest(1, 2.5, b), least(-3, abs(c)))", "lower(upper(payload.name)) <> 'x' or null",
        "-(a - -1.5) * 7 / 2", "payload.items.0.sku", "metadata.tenant != event.type", "true and false or null",
        "9223372036854775807 + 1", "item", "units * item.quantity * item.unitPriceCents",
    ]

    /// Values a field or column may hold, including the awkward ones.
    static let valuePool: [ProjectionValue] = [
        .null, .bool(true), .bool(false), .int(0), .int(1), .int(-3), .int(.max), .int(.min),
        decimal("12.50"), decimal("-0.001"), decimal("99999999999999999999999999999999999999"), .double(0.5),
        .double(-1e308), .double(1e308), .string(""), .string("2026-01-05T10:00:00Z"), .string("Zoë"), .string("'; DROP"),
    ]

    /// Answers every read from `valuePool`, chosen by the name and a per-run salt.
    struct PoolContext: ExpressionContext {
        var salt: UInt64

        func pick(_ name: String) -> ProjectionValue {
            var hasher = FNV1a(value: salt)
            hasher.add(name)
            return FuzzTests.valuePool[Int(hasher.value % UInt64(FuzzTests.valuePool.count))]
        }

        func value(of field: FieldReference) throws(ExpressionError) -> ProjectionValue { pick(field.description) }
        func value(ofColumn name: String) throws(ExpressionError) -> ProjectionValue { pick(name) }
    }

    /// Parses, and for what parses: prints, reparses and evaluates.
    static func exercise(expression text: String, random: inout SeededRandom) {
        let scalarCount = text.unicodeScalars.count
        let expression: ProjectionExpression
        do {
            expression = try ExpressionParser.parse(text)
        } catch {
            #expect(!error.message.isEmpty)
            #expect(error.offset.map { (0...scalarCount).contains($0) } == true, "offset \(String(describing: error.offset)) for \(text.debugDescription)")
            return
        }
        let printed = expression.description
        #expect((try? ExpressionParser.parse(printed)) == expression, "\(text.debugDescription) printed as \(printed)")
        evaluate(expression, random: &random)
    }

    static func evaluate(_ expression: ProjectionExpression, random: inout SeededRandom) {
        for _ in 0..<3 {
            let context = PoolContext(salt: random.next())
            do {
                let value = try ExpressionEvaluator.evaluate(expression, in: context)
                if case .double(let number) = value { #expect(number.isFinite) }
                _ = value.description
            } catch {
                #expect(!error.message.isEmpty)
                #expect(error.offset == nil)
            }
        }
    }

    static func mutate(_ text: String, random: inout SeededRandom, alphabet: [Character]) -> String {
        var characters = Array(text)
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let position = characters.isEmpty ? 0 : Int.random(in: 0..<characters.count, using: &random)
            switch Int.random(in: 0..<5, using: &random) {
            case 0 where !characters.isEmpty:
                characters.remove(at: position)
            case 1:
                characters.insert(alphabet.randomElement(using: &random) ?? " ", at: position)
            case 2 where !characters.isEmpty:
                characters[position] = alphabet.randomElement(using: &random) ?? " "
            case 3 where !characters.isEmpty:
                let end = min(characters.count, position + Int.random(in: 1...12, using: &random))
                characters.insert(contentsOf: characters[position..<end], at: position)
            default:
                let end = min(characters.count, position + Int.random(in: 1...8, using: &random))
                characters.removeSubrange(position..<end)
            }
        }
        return String(characters)
    }

    static func randomBytesText(random: inout SeededRandom, maximumLength: Int, alphabet: [Character]) -> String {
        let length = Int.random(in: 0...maximumLength, using: &random)
        if Bool.random(using: &random) {
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            return String(decoding: bytes, as: UTF8.self)
        }
        return String((0..<length).map { _ in alphabet.randomElement(using: &random) ?? " " })
    }

    static let expressionAlphabet = Array("abcdefghijklmnopqrstuvwxyz_ABCZ0123456789.'()+-*/=<>!, \t\n\u{0}\u{7F}é😀#;")

    @Test func randomExpressionText() {
        var random = SeededRandom(state: 0xE1)
        for _ in 0..<4_000 {
            Self.exercise(expression: Self.randomBytesText(random: &random, maximumLength: 40, alphabet: Self.expressionAlphabet), random: &random)
        }
    }

    @Test func mutatedExpressions() {
        var random = SeededRandom(state: 0xE2)
        let words = ["payload.", "item.", "event.position", "and ", "or ", "not ", "null", "coalesce(", "date(", "if(", "'", "''", "(", ")"]
        for index in 0..<6_000 {
            var text = Self.expressionCorpus[index % Self.expressionCorpus.count]
            if index % 7 == 0 { text += " " + (words.randomElement(using: &random) ?? "") }
            Self.exercise(expression: Self.mutate(text, random: &random, alphabet: Self.expressionAlphabet), random: &random)
        }
    }

    @Test func generatedTreesPrintAndEvaluate() {
        var random = SeededRandom(state: 0xE3)
        for _ in 0..<3_000 {
            let tree = Self.randomTree(depth: 5, random: &random)
            #expect((try? ExpressionParser.parse(tree.description)) == tree, "\(tree)")
            Self.evaluate(tree, random: &random)
        }
    }

    /// A tree in the canonical form the parser produces (no `-` applied to a number literal,
    /// no doubles, no Int64.min literal).
    static func randomTree(depth: Int, random: inout SeededRandom) -> ProjectionExpression {
        let leaves: [ProjectionExpression] = [
            .literal(.int(Int64.random(in: -5...5, using: &random))), .literal(.int(.max)), .literal(decimal("2.50")),
            .literal(decimal("-0.125")), .literal(.string("it's")), .literal(.bool(true)), .literal(.null),
            .column("units"), .column("status"), .field(.payload([.key("amount")])), .field(.item([.key("sku"), .index(2)])),
            .field(.envelope(.position)), .field(.metadata([.key("tenant")])), .literal(.string("2026-01-05T00:00:00Z")),
        ]
        if depth == 0 || Int.random(in: 0..<4, using: &random) == 0 {
            return leaves.randomElement(using: &random) ?? .literal(.null)
        }
        let child = { (random: inout SeededRandom) in randomTree(depth: depth - 1, random: &random) }
        switch Int.random(in: 0..<4, using: &random) {
        case 0:
            let operand = child(&random)
            if case .literal(let value) = operand, value.decimalValue != nil { return .unary(.not, operand) }
            return .unary(Bool.random(using: &random) ? .negate : .not, operand)
        case 1, 2:
            let operators: [BinaryOperator] = [.add, .subtract, .multiply, .divide, .equal, .notEqual, .less,
                                               .lessOrEqual, .greater, .greaterOrEqual, .and, .or]
            return .binary(operators.randomElement(using: &random) ?? .add, child(&random), child(&random))
        default:
            let function = Function.allCases.randomElement(using: &random) ?? .coalesce
            let (minimum, maximum) = ExpressionParser.arity(of: function)
            let count = maximum ?? Int.random(in: minimum...(minimum + 3), using: &random)
            return .call(function, (0..<count).map { _ in child(&random) })
        }
    }

    static let yamlAlphabet = Array("abcdefghijklmnopqrstuvwxyz_0123456789 :-[]{},'\"#&*!|>~.\n\t\u{0}é")

    static func exercise(yaml: String, file: String, random: inout SeededRandom) {
        let definition: ProjectionDefinition
        do {
            definition = try ProjectionFileParser.parse(yaml: yaml, file: file)
        } catch {
            #expect(error.file == file)
            #expect(!error.message.isEmpty)
            return
        }
        #expect(definition.definitionHash == (try? ProjectionFileParser.parse(yaml: yaml, file: file))?.definitionHash)
        _ = definition.requiredFields
        for operations in definition.handlers.values {
            visit(operations) { evaluate($0, random: &random) }
        }
    }

    static func visit(_ operations: [RowOperation], _ body: (ProjectionExpression) -> Void) {
        for operation in operations {
            switch operation {
            case .insert(_, let values, let when), .upsert(_, let values, let when):
                values.forEach { body($0.value) }
                when.map(body)
            case .update(_, let key, let set, let when, _):
                (key + set).forEach { body($0.value) }
                when.map(body)
            case .delete(_, let key, let when):
                key.forEach { body($0.value) }
                when.map(body)
            case .forEach(_, let nested):
                visit(nested, body)
            case .lookup(let lookup):
                lookup.key.forEach { body($0.value) }
            }
        }
    }

    static func yamlCorpus() throws -> [String] {
        let directory = Fixtures.projectionsDirectory
        let samples = try FileManager.default.contentsOfDirectory(atPath: directory).sorted().map {
            try String(contentsOfFile: directory + "/" + $0, encoding: .utf8)
        }
        return [Fixtures.formatExample, Fixtures.projection()] + samples
    }

    @Test func randomYAML() {
        var random = SeededRandom(state: 0xF1)
        for index in 0..<1_500 {
            Self.exercise(yaml: Self.randomBytesText(random: &random, maximumLength: 200, alphabet: Self.yamlAlphabet),
                     file: "random-\(index).yml", random: &random)
        }
    }

    @Test func mutatedYAML() throws {
        var random = SeededRandom(state: 0xF2)
        let corpus = try Self.yamlCorpus()
        #expect(corpus.count == 7)
        let tokens = ["payload.x", "item.sku", "'", "''", ": ", "- ", "[", "]", "{", "}", "&a ", "*a", "<<: *a", "~", "!!int ",
                      "null", "-1", "99999999999999999999", "reprise_", "varchar(0)", "decimal(66,2)", "if_missing: error",
                      "when: ", "for_each: payload.items", "do:", "`", ";", "\t", "\u{0}", "#"]
        var accepted = 0
        for index in 0..<3_000 {
            var lines = corpus[index % corpus.count].components(separatedBy: "\n")
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                guard !lines.isEmpty else { break }
                let line = Int.random(in: 0..<lines.count, using: &random)
                switch Int.random(in: 0..<7, using: &random) {
                case 0: lines.remove(at: line)
                case 1: lines.insert(lines[line], at: line)
                case 2 where line + 1 < lines.count: lines.swapAt(line, line + 1)
                case 3: lines[line] = "  " + lines[line]
                case 4: lines[line] = String(lines[line].drop { $0 == " " }.prefix(80))
                case 5:
                    var text = lines[line]
                    let position = text.index(text.startIndex, offsetBy: Int.random(in: 0...text.count, using: &random))
                    text.insert(contentsOf: tokens.randomElement(using: &random) ?? "", at: position)
                    lines[line] = text
                default: lines[line] = Self.mutate(lines[line], random: &random, alphabet: Self.yamlAlphabet)
                }
            }
            let yaml = lines.joined(separator: "\n")
            if (try? ProjectionFileParser.parse(yaml: yaml, file: "m.yml")) != nil { accepted += 1 }
            Self.exercise(yaml: yaml, file: "mutated-\(index).yml", random: &random)
        }
        // Some mutations are harmless (comments, reordering): the valid path gets exercised too.
        #expect(accepted > 100)
    }
}

extension FNV1a {
    init(value: UInt64) {
        self.init()
        add(String(value))
    }
}
