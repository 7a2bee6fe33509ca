import Yams

/// A node of a projection file's YAML tree together with its field path, so every reader can
/// report a precise `ProjectionFileError` without threading the path by hand.
struct YAMLNode {
    let node: Node
    /// `tables.orders.columns.total`, `handlers.OrderCreated[0]`; empty for the root.
    let path: String
    let file: String

    func error(_ message: String) -> ProjectionFileError {
        ProjectionFileError(file: file, path: path, message: message, line: node.mark?.line)
    }

    func child(_ key: String, _ node: Node) -> YAMLNode {
        YAMLNode(node: node, path: path.isEmpty ? key : "\(path).\(key)", file: file)
    }

    /// What the node is, for "expected ..., found ..." messages.
    var kindDescription: String {
        switch node {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        case .scalar(let scalar):
            scalar.string.isEmpty && scalar.style == .plain ? "nothing" : "'\(scalar.string.prefix(60))'"
        }
    }

    /// The entries of a mapping in document order; keys must be plain text.
    func entries(_ expected: String = "a mapping") throws(ProjectionFileError) -> [(key: String, value: YAMLNode)] {
        guard case .mapping(let mapping) = node else { throw error("expected \(expected), found \(kindDescription)") }
        var result: [(key: String, value: YAMLNode)] = []
        for (key, value) in mapping {
            guard case .scalar(let scalar) = key else {
                throw child("?", key).error("mapping keys must be text, found \(YAMLNode(node: key, path: path, file: file).kindDescription)")
            }
            result.append((scalar.string, child(scalar.string, value)))
        }
        return result
    }

    /// The entries of a mapping whose keys are fixed words; unknown keys (typos) and missing
    /// required keys are errors.
    func fields(allowed: [String], required: [String] = [], what: String? = nil) throws(ProjectionFileError) -> YAMLFields {
        var found: [String: YAMLNode] = [:]
        let expected = what.map { "a mapping (\($0))" } ?? "a mapping with keys \(allowed.joined(separator: ", "))"
        for (key, value) in try entries(expected) {
            guard allowed.contains(key) else {
                throw value.error("unknown key '\(key)'\(Suggestion.didYouMean(key, among: allowed)) (expected one of: \(allowed.joined(separator: ", ")))")
            }
            found[key] = value
        }
        for key in required where found[key] == nil {
            throw error("missing key '\(key)'")
        }
        return YAMLFields(values: found)
    }

    /// A list's elements, with `[i]` paths. A single value where a list is expected is an error.
    func elements(_ expected: String = "a list") throws(ProjectionFileError) -> [YAMLNode] {
        guard case .sequence(let sequence) = node else { throw error("expected \(expected), found \(kindDescription)") }
        return sequence.enumerated().map { YAMLNode(node: $1, path: "\(path)[\($0)]", file: file) }
    }

    var isMapping: Bool {
        if case .mapping = node { return true }
        return false
    }

    var isSequence: Bool {
        if case .sequence = node { return true }
        return false
    }

    /// The text of a scalar.
    func text(_ expected: String = "text") throws(ProjectionFileError) -> String {
        guard case .scalar(let scalar) = node else { throw error("expected \(expected), found \(kindDescription)") }
        return scalar.string
    }

    /// The text of a scalar, which must not be empty.
    func nonEmptyText(_ expected: String = "text") throws(ProjectionFileError) -> String {
        let value = try text(expected)
        guard !value.isEmpty else { throw error("expected \(expected), found nothing") }
        return value
    }

    /// A scalar holding a decimal integer, optionally negative (callers check the range).
    func integer(_ expected: String) throws(ProjectionFileError) -> Int {
        let value = try text(expected)
        var digits = Substring(value)
        if value.hasPrefix("-") { digits = digits.dropFirst() }
        guard !digits.isEmpty, digits.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let number = Int(value) else {
            throw error("expected \(expected), found \(kindDescription)")
        }
        return number
    }

    /// `true` or `false` (any case).
    func bool(_ expected: String) throws(ProjectionFileError) -> Bool {
        switch try text(expected).lowercased() {
        case "true": return true
        case "false": return false
        default: throw error("expected \(expected) (true or false), found \(kindDescription)")
        }
    }
}
