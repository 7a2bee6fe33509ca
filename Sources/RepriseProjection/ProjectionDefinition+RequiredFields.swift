/// Which event fields a projection reads, so the engine can decode only those.
public extension ProjectionDefinition {
    /// Every payload and metadata field any expression or `for_each` reads (the array path of a
    /// `for_each` itself included). `item.…` references are relative to an element and left out;
    /// envelope fields are always available and left out too.
    var requiredFields: Set<FieldReference> {
        // The fields read as values, and the arrays `for_each` walks (their elements' paths are
        // relative to the element).
        valueFields.union(forEachItemPaths.keys)
    }
}
