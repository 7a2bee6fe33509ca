/// Which event fields a projection reads, so the engine can decode only those.
public extension ProjectionDefinition {
    /// Every payload and metadata field any expression or `for_each` reads (the array path of a
    /// `for_each` itself included). `item.…` references are relative to an element and left out;
    /// envelope fields are always available and left out too.
    var requiredFields: Set<FieldReference> {
        var fields: Set<FieldReference> = []
        for operations in handlers.values {
            Self.collect(operations, into: &fields)
        }
        return fields
    }

    private static func collect(_ operations: [RowOperation], into fields: inout Set<FieldReference>) {
        for operation in operations {
            switch operation {
            case .insert(_, let values, let when), .upsert(_, let values, let when):
                collect(values.map(\.value) + [when].compactMap { $0 }, into: &fields)
            case .update(_, let key, let set, let when, _):
                collect((key + set).map(\.value) + [when].compactMap { $0 }, into: &fields)
            case .delete(_, let key, let when):
                collect(key.map(\.value) + [when].compactMap { $0 }, into: &fields)
            case .forEach(let path, let nested):
                insert(path, into: &fields)
                collect(nested, into: &fields)
            case .lookup(let lookup):
                collect(lookup.key.map(\.value), into: &fields)
            }
        }
    }

    private static func collect(_ expressions: [Expression], into fields: inout Set<FieldReference>) {
        for expression in expressions {
            expression.visit { (part: Expression) in
                if case .field(let reference) = part { insert(reference, into: &fields) }
            }
        }
    }

    private static func insert(_ reference: FieldReference, into fields: inout Set<FieldReference>) {
        switch reference {
        case .payload, .metadata: fields.insert(reference)
        case .envelope, .item: break
        }
    }
}
