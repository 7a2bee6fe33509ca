import RepriseProjection
import RepriseSupport

/// A JSON value as the engine keeps it: only the parts of a payload that handlers read.
/// Numbers keep their text until a handler reads them, so nothing is converted twice.
public indirect enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The value at `path`, or nil when a segment is missing or of the wrong kind.
    public func value(at path: ArraySlice<PathSegment>) -> JSONValue? {
        guard let first = path.first else { return self }
        switch (first, self) {
        case (.key(let key), .object(let members)):
            return members[key]?.value(at: path.dropFirst())
        case (.index(let index), .array(let elements)):
            return index >= 0 && index < elements.count ? elements[index].value(at: path.dropFirst()) : nil
        case (.key(let key), .array(let elements)):
            // A numeric key on an array ("items.0") parses as .index; accept its text too.
            guard let index = Int(key), index >= 0, index < elements.count else { return nil }
            return elements[index].value(at: path.dropFirst())
        default:
            return nil
        }
    }

    /// The value as a projection value. Arrays and objects become their JSON text (for `json` columns).
    public var projectionValue: ProjectionValue {
        switch self {
        case .null: .null
        case .bool(let flag): .bool(flag)
        case .number(let text): JSONValue.plainInteger(text).map { .int($0) } ?? ProjectionValue(jsonNumberText: text) ?? .string(text)
        case .string(let text): .string(text)
        case .array, .object: .string(jsonText)
        }
    }

    /// Compact JSON text.
    public var jsonText: String {
        switch self {
        case .null: "null"
        case .bool(let flag): flag ? "true" : "false"
        case .number(let text): text
        case .string(let text): JSONValue.quote(text)
        case .array(let elements): "[" + elements.map(\.jsonText).joined(separator: ",") + "]"
        case .object(let members):
            "{" + members.sorted { $0.key < $1.key }.map { JSONValue.quote($0.key) + ":" + $0.value.jsonText }.joined(separator: ",") + "}"
        }
    }

    static func quote(_ text: String) -> String { JSONText.quoted(text) }

    /// `-?[0-9]{1,18}` read straight from the bytes: the value `Int64(text)` gives (the common
    /// case, spared the generic parse); nil for anything else, which takes the general path.
    static func plainInteger(_ text: String) -> Int64? {
        text.utf8.withContiguousStorageIfAvailable { plainInteger(digits: $0) } ?? nil
    }

    /// `-?[0-9]{1,18}` as an Int64 (18 digits cannot overflow); nil for anything else.
    static func plainInteger<Bytes: RandomAccessCollection<UInt8>>(digits bytes: Bytes) -> Int64? where Bytes.Index == Int {
        var index = bytes.startIndex
        let negative = bytes.first == UInt8(ascii: "-")
        if negative { index += 1 }
        guard bytes.endIndex - index >= 1, bytes.endIndex - index <= 18 else { return nil }
        var value: Int64 = 0
        while index < bytes.endIndex {
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            value = value * 10 + Int64(byte - UInt8(ascii: "0"))
            index += 1
        }
        return negative ? -value : value
    }
}
