/// The values of a fixed-key mapping read by `YAMLNode.fields`.
struct YAMLFields {
    let values: [String: YAMLNode]

    subscript(key: String) -> YAMLNode? { values[key] }

    /// A key listed as required in `fields(allowed:required:)`, so it is present.
    func required(_ key: String, in parent: YAMLNode) throws(ProjectionFileError) -> YAMLNode {
        guard let value = values[key] else { throw parent.error("missing key '\(key)'") }
        return value
    }
}
