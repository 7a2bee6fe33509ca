import Foundation

/// Numeric views of values used by arithmetic, comparison and column checks.
extension ProjectionValue {
    var isString: Bool {
        if case .string = self { return true }
        return false
    }

    /// The value as a Decimal when it is an int or a decimal.
    var decimalValue: Decimal? {
        switch self {
        case .int(let x): Decimal(x)
        case .decimal(let x): x
        default: nil
        }
    }

    /// The value as a Double when it is any number.
    var doubleValue: Double? {
        switch self {
        case .int(let x): Double(x)
        case .decimal(let x): NSDecimalNumber(decimal: x).doubleValue
        case .double(let x): x
        default: nil
        }
    }
}
