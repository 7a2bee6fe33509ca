@testable import RepriseProjection

/// An expression context over dictionaries: fields keyed by their printed reference
/// (`payload.orderId`, `item.sku`), columns by name; anything absent reads as null.
struct DictionaryContext: ExpressionContext {
    var fields: [String: ProjectionValue] = [:]
    var columns: [String: ProjectionValue] = [:]

    func value(of field: FieldReference) throws(ExpressionError) -> ProjectionValue {
        fields[field.description] ?? .null
    }

    func value(ofColumn name: String) throws(ExpressionError) -> ProjectionValue {
        columns[name] ?? .null
    }
}
