import RepriseProjection

/// Decodes only the fields handlers read from a JSON document, straight from its bytes.
///
/// The rebuild's hot path: a payload of ~200 bytes with eight fields, of which a projection
/// reads three. Unread members are skipped without allocating; read ones become `JSONValue`s.
/// Built once per rebuild from the union of the projections' `requiredFields`.
public struct JSONFieldDecoder: Sendable {
    /// A trie of the paths to keep. `keepAll` keeps the whole subtree (for `for_each` arrays).
    final class PathNode: @unchecked Sendable {
        // @unchecked: built once in init, never mutated afterwards.
        var children: [String: PathNode] = [:]
        var keepAll = false
    }

    private let root: PathNode
    public let isEmpty: Bool
    /// Set when every path is a chain of member names: `decodeFields` then fills one slot per
    /// path instead of building a tree (the rebuild's hot path).
    let slotLayout: FieldSlotLayout?

    /// A node that keeps everything below it.
    static let keepEverything: PathNode = {
        let node = PathNode()
        node.keepAll = true
        return node
    }()

    /// `paths` are payload (or metadata) paths; a path ending at an array or object keeps all of it.
    /// `forEachItems`: arrays among them that only `for_each` reads, with the paths its
    /// operations read on an element: the slots decode their elements into item slots (the tree
    /// decoder keeps them whole).
    public init(paths: [[PathSegment]], forEachItems: [[PathSegment]: [[PathSegment]]] = [:]) {
        root = PathNode()
        for path in paths {
            var node = root
            for segment in path {
                if node.keepAll { break }
                let name = segment.description
                let child = node.children[name] ?? PathNode()
                node.children[name] = child
                node = child
            }
            // The end of a path keeps everything below it.
            node.keepAll = true
            node.children = [:]
        }
        isEmpty = paths.isEmpty
        slotLayout = FieldSlotLayout(paths: paths, forEachItems: forEachItems)
    }

    /// The arrays of payload and of metadata that the projections' `for_each` operations walk
    /// and no expression reads as a value, with the item paths read on their elements (the
    /// union over the projections).
    static func forEachItems(_ definitions: [ProjectionDefinition])
        -> (payload: [[PathSegment]: [[PathSegment]]], metadata: [[PathSegment]: [[PathSegment]]]) {
        var arrays: [FieldReference: Set<[PathSegment]>] = [:]
        var values: Set<FieldReference> = []
        for definition in definitions {
            arrays.merge(definition.forEachItemPaths) { $0.union($1) }
            values.formUnion(definition.valueFields)
        }
        var payload: [[PathSegment]: [[PathSegment]]] = [:], metadata: [[PathSegment]: [[PathSegment]]] = [:]
        for (array, items) in arrays where !values.contains(array) {
            switch array {
            case .payload(let path): payload[path] = Array(items)
            case .metadata(let path): metadata[path] = Array(items)
            case .item, .envelope: break
            }
        }
        return (payload, metadata)
    }

    /// Decodes `bytes` into the slots of `slotLayout` (which must be set); the same errors as `decode`.
    func decodeFields(_ bytes: UnsafeRawBufferPointer, layout: FieldSlotLayout) throws(JSONDecodingError) -> DecodedFields {
        var parser = Parser(bytes: bytes)
        let buffer = SlotBuffer.make(layout, capacity: 1)
        parser.skipWhitespace()
        // `buffer` holds the slots while they are written.
        try parser.parseSlots(0, layout, into: buffer.appendElement())
        parser.skipWhitespace()
        guard parser.offset == bytes.count else { throw parser.error("unexpected text after the JSON value") }
        return DecodedFields(buffer: buffer)
    }

    /// Decodes `bytes`; throws `JSONDecodingError` with the byte offset of the problem.
    public func decode(_ bytes: UnsafeRawBufferPointer) throws(JSONDecodingError) -> JSONValue {
        var parser = Parser(bytes: bytes)
        parser.skipWhitespace()
        let value = try parser.parseValue(keep: isEmpty ? nil : root)
        parser.skipWhitespace()
        guard parser.offset == bytes.count else { throw parser.error("unexpected text after the JSON value") }
        return value ?? .null
    }

    public func decode(_ text: String) throws(JSONDecodingError) -> JSONValue {
        var copy = text
        let result: Result<JSONValue, JSONDecodingError> = copy.withUTF8 { buffer in
            do throws(JSONDecodingError) { return .success(try decode(UnsafeRawBufferPointer(buffer))) } catch { return .failure(error) }
        }
        return try result.get()
    }

    struct Parser {
        let bytes: UnsafeRawBufferPointer
        var offset = 0
        /// Set inside arrays the tree decoder would keep whole: skipped strings then fail on a
        /// bad escape as decoded ones do.
        var strictSkipping = false

        init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        func error(_ message: String) -> JSONDecodingError { JSONDecodingError(message: message, offset: offset) }

        @inline(__always)
        mutating func skipWhitespace() {
            // Most documents have none: one test.
            if offset < bytes.count, bytes[offset] > 0x20 { return }
            while offset < bytes.count {
                switch bytes[offset] {
                case 0x20, 0x09, 0x0A, 0x0D: offset += 1
                default: return
                }
            }
        }

        /// Parses a value; returns nil (after skipping it) when `keep` is nil.
        mutating func parseValue(keep: PathNode?) throws(JSONDecodingError) -> JSONValue? {
            guard offset < bytes.count else { throw error("unexpected end of JSON") }
            switch bytes[offset] {
            case UInt8(ascii: "{"): return try parseObject(keep: keep)
            case UInt8(ascii: "["): return try parseArray(keep: keep)
            case UInt8(ascii: "\""):
                if keep == nil { try skipString(); return nil }
                return .string(try parseString())
            case UInt8(ascii: "t"): try expectLiteral("true"); return keep == nil ? nil : .bool(true)
            case UInt8(ascii: "f"): try expectLiteral("false"); return keep == nil ? nil : .bool(false)
            case UInt8(ascii: "n"): try expectLiteral("null"); return keep == nil ? nil : .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                let start = offset
                try skipNumber()
                guard keep != nil else { return nil }
                return .number(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self))
            default:
                throw error("unexpected character '\(Character(Unicode.Scalar(bytes[offset])))'")
            }
        }

        mutating func parseObject(keep: PathNode?) throws(JSONDecodingError) -> JSONValue? {
            offset += 1
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if offset < bytes.count && bytes[offset] == UInt8(ascii: "}") {
                offset += 1
                return keep == nil ? nil : .object(members)
            }
            while true {
                skipWhitespace()
                guard offset < bytes.count, bytes[offset] == UInt8(ascii: "\"") else { throw error("expected a member name") }
                let child: PathNode?
                let key: String?
                if let keep {
                    let name = try parseString()
                    key = name
                    child = keep.keepAll ? keep : keep.children[name]
                } else {
                    try skipString()
                    key = nil
                    child = nil
                }
                skipWhitespace()
                guard offset < bytes.count, bytes[offset] == UInt8(ascii: ":") else { throw error("expected ':'") }
                offset += 1
                skipWhitespace()
                let value = try parseValue(keep: child)
                if let key, let value { members[key] = value }
                skipWhitespace()
                guard offset < bytes.count else { throw error("unterminated object") }
                if bytes[offset] == UInt8(ascii: ",") { offset += 1; continue }
                if bytes[offset] == UInt8(ascii: "}") { offset += 1; break }
                throw error("expected ',' or '}'")
            }
            return keep == nil ? nil : .object(members)
        }

        mutating func parseArray(keep: PathNode?) throws(JSONDecodingError) -> JSONValue? {
            offset += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if offset < bytes.count && bytes[offset] == UInt8(ascii: "]") {
                offset += 1
                return keep == nil ? nil : .array(elements)
            }
            var index = 0
            while true {
                skipWhitespace()
                // Elements not on a kept path still occupy their index: keep them as null.
                let child: PathNode? = keep.flatMap { $0.keepAll ? $0 : $0.children[String(index)] }
                let value = try parseValue(keep: child)
                if keep != nil { elements.append(value ?? .null) }
                index += 1
                skipWhitespace()
                guard offset < bytes.count else { throw error("unterminated array") }
                if bytes[offset] == UInt8(ascii: ",") { offset += 1; continue }
                if bytes[offset] == UInt8(ascii: "]") { offset += 1; break }
                throw error("expected ',' or ']'")
            }
            return keep == nil ? nil : .array(elements)
        }

        mutating func expectLiteral(_ literal: StaticString) throws(JSONDecodingError) {
            let count = literal.utf8CodeUnitCount
            guard offset + count <= bytes.count else { throw error("unexpected end of JSON") }
            let pointer = literal.utf8Start
            for index in 0..<count where bytes[offset + index] != pointer[index] {
                throw error("invalid literal")
            }
            offset += count
        }

        mutating func skipNumber() throws(JSONDecodingError) {
            let start = offset
            if bytes[offset] == UInt8(ascii: "-") { offset += 1 }
            var digits = 0
            while offset < bytes.count {
                let byte = bytes[offset]
                if (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "e")
                    || byte == UInt8(ascii: "E") || byte == UInt8(ascii: "+") || (byte == UInt8(ascii: "-") && offset > start)
                {
                    if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") { digits += 1 }
                    offset += 1
                } else {
                    break
                }
            }
            guard digits > 0 else { throw error("invalid number") }
        }

        /// The index of the first byte from `start` on that ends plain string text: a quote, a
        /// backslash, a control character, or (with `stopAtNonASCII`) a byte of 0x80 or more;
        /// `bytes.count` when there is none. Eight bytes at a time while eight remain.
        @inline(__always)
        func plainTextEnd(from start: Int, stopAtNonASCII: Bool) -> Int {
            var index = start
            if let base = bytes.baseAddress {
                let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
                while index + 8 <= bytes.count {
                    let word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                    // The high bit of each byte that is a quote, a backslash or below 0x20 (exact
                    // up to the first such byte, which is all that is read).
                    let quote = word ^ (ones &* 0x22), backslash = word ^ (ones &* 0x5C)
                    var stops = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((word &- ones &* 0x20) & ~word)
                    stops &= highs
                    if stopAtNonASCII { stops |= word & highs }
                    if stops != 0 { return index + stops.trailingZeroBitCount >> 3 }
                    index += 8
                }
            }
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 || (stopAtNonASCII && byte >= 0x80) { return index }
                index += 1
            }
            return index
        }

        mutating func skipString() throws(JSONDecodingError) {
            offset += 1
            while offset < bytes.count {
                offset = plainTextEnd(from: offset, stopAtNonASCII: false)
                guard offset < bytes.count else { break }
                let byte = bytes[offset]
                if byte == UInt8(ascii: "\"") { offset += 1; return }
                if byte == UInt8(ascii: "\\") {
                    if strictSkipping { _ = try escape() } else { offset += 2 }
                    continue
                }
                if byte < 0x20 { throw error("control character in string") }
                offset += 1
            }
            throw error("unterminated string")
        }

        /// What an escape stands for: one byte, or a scalar (`\u`).
        enum Escape {
            case byte(UInt8)
            case scalar(Unicode.Scalar)
        }

        /// Reads the escape at the backslash at `offset`.
        mutating func escape() throws(JSONDecodingError) -> Escape {
            guard offset + 1 < bytes.count else { throw error("unterminated escape") }
            let escaped = bytes[offset + 1]
            offset += 2
            switch escaped {
            case UInt8(ascii: "\""): return .byte(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): return .byte(UInt8(ascii: "\\"))
            case UInt8(ascii: "/"): return .byte(UInt8(ascii: "/"))
            case UInt8(ascii: "b"): return .byte(0x08)
            case UInt8(ascii: "f"): return .byte(0x0C)
            case UInt8(ascii: "n"): return .byte(0x0A)
            case UInt8(ascii: "r"): return .byte(0x0D)
            case UInt8(ascii: "t"): return .byte(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if (0xD800...0xDBFF).contains(code) {
                    guard offset + 1 < bytes.count, bytes[offset] == UInt8(ascii: "\\"), bytes[offset + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate")
                    }
                    offset += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                guard let scalar = Unicode.Scalar(code) else { throw error("invalid \\u escape") }
                return .scalar(scalar)
            default:
                throw error("invalid escape")
            }
        }

        mutating func parseString() throws(JSONDecodingError) -> String {
            offset += 1
            let start = offset
            // Fast path: no escapes.
            offset = plainTextEnd(from: offset, stopAtNonASCII: false)
            while offset < bytes.count {
                let byte = bytes[offset]
                if byte == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<offset]), as: UTF8.self)
                    offset += 1
                    return text
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw error("control character in string") }
                offset += 1
            }
            var scalars = String.UnicodeScalarView()
            var buffer: [UInt8] = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<offset]))
            func flush() {
                scalars.append(contentsOf: String(decoding: buffer, as: UTF8.self).unicodeScalars)
                buffer.removeAll(keepingCapacity: true)
            }
            while offset < bytes.count {
                let byte = bytes[offset]
                if byte == UInt8(ascii: "\"") {
                    offset += 1
                    flush()
                    return String(scalars)
                }
                if byte < 0x20 { throw error("control character in string") }
                guard byte == UInt8(ascii: "\\") else {
                    buffer.append(byte)
                    offset += 1
                    continue
                }
                switch try escape() {
                case .byte(let byte): buffer.append(byte)
                case .scalar(let scalar):
                    flush()
                    scalars.append(scalar)
                }
            }
            throw error("unterminated string")
        }

        mutating func hex4() throws(JSONDecodingError) -> UInt32 {
            guard offset + 4 <= bytes.count else { throw error("short \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let byte = bytes[offset]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: throw error("invalid \\u escape")
                }
                value = value << 4 | digit
                offset += 1
            }
            return value
        }
    }
}

/// A payload that is not valid JSON, with the byte offset where decoding stopped.
public struct JSONDecodingError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var offset: Int
    public var description: String { "invalid JSON at byte \(offset): \(message)" }
}
