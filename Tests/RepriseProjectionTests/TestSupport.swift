import Foundation
import Testing
@testable import RepriseProjection

// Helpers the test suites share: expecting file errors, parsing and evaluating in one call.

/// Parses `yaml` and expects a `ProjectionFileError` at `path` whose message contains `fragment`.
func expectFileError(_ yaml: String, path: String, _ fragment: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
    do {
        let definition = try ProjectionFileParser.parse(yaml: yaml, file: "test.yml")
        Issue.record("expected an error at \(path), but \(definition.name) loaded", sourceLocation: sourceLocation)
    } catch {
        #expect(error.file == "test.yml", sourceLocation: sourceLocation)
        #expect(error.path == path, "\(error)", sourceLocation: sourceLocation)
        #expect(error.message.contains(fragment), "\(error)", sourceLocation: sourceLocation)
    }
}

func parseExpression(_ text: String) throws(ExpressionError) -> ProjectionExpression {
    try ExpressionParser.parse(text)
}

func evaluate(_ text: String, _ context: DictionaryContext = DictionaryContext()) throws(ExpressionError) -> ProjectionValue {
    try ExpressionEvaluator.evaluate(try ExpressionParser.parse(text), in: context)
}

func decimal(_ text: String) -> ProjectionValue {
    .decimal(Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) ?? .nan)
}
