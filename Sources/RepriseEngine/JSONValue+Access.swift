extension JSONValue {
    /// The member `key` of an object; `.null` when this is not an object or has no such member,
    /// as a projection file reads `payload.key`. For Swift projections: `event.payload["customerId"]`.
    public subscript(key: String) -> JSONValue {
        if case .object(let members) = self, let member = members[key] { return member }
        return .null
    }
}
