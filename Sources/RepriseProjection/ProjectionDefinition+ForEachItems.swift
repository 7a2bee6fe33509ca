/// What a projection's `for_each` operations read on the elements of the arrays they walk, so the
/// engine can decode each element's fields into slots instead of a tree per element.
public extension ProjectionDefinition {
    /// Per payload or metadata array a `for_each` walks: the paths its operations read on an
    /// element (`item.sku` gives `[sku]`; a nested `for_each` over `item.parts` reads `parts`
    /// whole). References inside a nested `for_each` are relative to the inner element and not
    /// included. An array walked by several operations gets the union.
    var forEachItemPaths: [FieldReference: Set<[PathSegment]>] {
        var arrays: [FieldReference: Set<[PathSegment]>] = [:]
        for operations in handlers.values { Self.collectArrays(operations, into: &arrays) }
        return arrays
    }

    /// The payload and metadata fields expressions read as values: `requiredFields` without the
    /// arrays only `for_each` reads.
    var valueFields: Set<FieldReference> {
        var fields: Set<FieldReference> = []
        for operations in handlers.values { Self.collectValues(operations, into: &fields) }
        return fields
    }

    private static func collectArrays(_ operations: [RowOperation], into arrays: inout [FieldReference: Set<[PathSegment]>]) {
        for operation in operations {
            guard case .forEach(let path, let nested) = operation else { continue }
            switch path {
            case .payload, .metadata:
                var items: Set<[PathSegment]> = []
                collectItemPaths(nested, into: &items)
                arrays[path, default: []].formUnion(items)
            case .item, .envelope:
                break
            }
            collectArrays(nested, into: &arrays)
        }
    }

    /// The `item.…` paths of `operations` (one `for_each` level: nested ones read their own items).
    private static func collectItemPaths(_ operations: [RowOperation], into items: inout Set<[PathSegment]>) {
        for operation in operations {
            if case .forEach(let path, _) = operation {
                if case .item(let itemPath) = path { items.insert(itemPath) }
                continue
            }
            operation.visitExpressions { expression in
                expression.visit { (part: Expression) in
                    if case .field(.item(let path)) = part { items.insert(path) }
                }
            }
        }
    }

    private static func collectValues(_ operations: [RowOperation], into fields: inout Set<FieldReference>) {
        for operation in operations {
            if case .forEach(_, let nested) = operation {
                collectValues(nested, into: &fields)
                continue
            }
            operation.visitExpressions { expression in
                expression.visit { (part: Expression) in
                    if case .field(let reference) = part {
                        switch reference {
                        case .payload, .metadata: fields.insert(reference)
                        case .envelope, .item: break
                        }
                    }
                }
            }
        }
    }
}

extension RowOperation {
    /// Calls `body` with every expression of this operation (not of operations nested in `for_each`).
    func visitExpressions(_ body: (Expression) -> Void) {
        switch self {
        case .insert(_, let values, let when), .upsert(_, let values, let when):
            values.forEach { body($0.value) }
            when.map(body)
        case .update(_, let key, let set, let when, _):
            (key + set).forEach { body($0.value) }
            when.map(body)
        case .delete(_, let key, let when):
            key.forEach { body($0.value) }
            when.map(body)
        case .forEach:
            break
        case .lookup(let lookup):
            lookup.key.forEach { body($0.value) }
        }
    }
}
