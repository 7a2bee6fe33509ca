@testable import RepriseEngine
import RepriseProjection
import Testing

/// Member names and strings are scanned 8 bytes at a time and names compared 8 bytes at a time
/// (`plainTextEnd`, `sameBytes`): wherever a quote, backslash, control or non-ASCII byte falls
/// in a word, and wherever the document ends, the slots must read what the tree decoder reads
/// and refuse what it refuses, with the same message and offset.
@Suite("JSON word-at-a-time scanning (no server)")
struct JSONFieldWordScanTests {
    static func key(_ names: String...) -> [PathSegment] { names.map { .key($0) } }

    static func outcome<T>(_ body: () throws(JSONDecodingError) -> T) -> Result<T, JSONDecodingError> {
        do { return .success(try body()) } catch { return .failure(error) }
    }

    /// Decodes `document` both ways through a buffer of exactly its bytes and compares.
    static func expectSame(_ decoder: JSONFieldDecoder, _ paths: [[PathSegment]], _ document: String,
                           sourceLocation: SourceLocation = #_sourceLocation) throws {
        let layout = try #require(decoder.slotLayout)
        var copy = document
        let tree = outcome { () throws(JSONDecodingError) in try decoder.decode(document) }
        let fields = copy.withUTF8 { buffer in
            outcome { () throws(JSONDecodingError) in try decoder.decodeFields(UnsafeRawBufferPointer(buffer), layout: layout) }
        }
        switch (tree, fields) {
        case (.success(let tree), .success(let fields)):
            #expect(fields.tree == tree, "\(document)", sourceLocation: sourceLocation)
            for path in paths {
                #expect(fields.value(FieldPathIDs.id(path)) == (tree.value(at: path[...])?.projectionValue ?? .null),
                        "\(path) in \(document)", sourceLocation: sourceLocation)
            }
        case (.failure(let expected), .failure(let actual)):
            #expect(actual.description == expected.description, "\(document)", sourceLocation: sourceLocation)
        default:
            Issue.record("one decoder accepted what the other refused: \(document)", sourceLocation: sourceLocation)
        }
    }

    /// Wanted names of every length from 1 to 20 next to names that differ from them in one byte
    /// (first, last, each in between), are one byte longer or shorter, or share length and ends.
    @Test func namesOfEveryLengthMatchOnlyThemselves() throws {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz")
        let wanted = (1...20).map { length in String((0..<length).map { alphabet[($0 * 7 + length) % 26] }) }
        let paths = wanted.map { Self.key($0) }
        let decoder = JSONFieldDecoder(paths: paths)
        for (number, name) in wanted.enumerated() {
            var variants: [String] = [name + "x", String(name.dropLast()), name.uppercased()]
            for index in name.indices {
                var changed = name
                changed.replaceSubrange(index...index, with: name[index] == "z" ? "y" : "z")
                variants.append(changed)
            }
            for variant in variants where !wanted.contains(variant) {
                // The variant first, then the name: the variant must not take the name's slot.
                try Self.expectSame(decoder, paths, #"{"\#(variant)":"no","\#(name)":\#(number)}"#)
                try Self.expectSame(decoder, paths, #"{"\#(name)":\#(number),"\#(variant)":"no"}"#)
            }
            // The name as the last bytes of the document and at the very start of the buffer.
            try Self.expectSame(decoder, paths, #"{"\#(name)":1}"#)
            try Self.expectSame(decoder, paths, #"{"\#(name)""#)
            try Self.expectSame(decoder, paths, #"{"\#(name)"#)
        }
        let all = "{" + wanted.enumerated().map { #""\#($1)":\#($0)"# }.joined(separator: ",") + "}"
        try Self.expectSame(decoder, paths, all)
    }

    /// A quote, backslash escape, control character or non-ASCII byte at every offset of a name
    /// and of a string value (read and skipped), so each falls at each place in a word.
    @Test func specialBytesAtEveryOffset() throws {
        let paths = [Self.key("customerId"), Self.key("occurredAt"), Self.key("sku"), Self.key("orderIdentifier")]
        let decoder = JSONFieldDecoder(paths: paths)
        let specials = [#"\""#, #"\\"#, #"\u0041"#, #"\ud83d\ude00"#, "é", "\u{1}", "\t", #"\n"#, #"\/"#, #"\q"#, #"\u00"#, "\u{7f}", "€"]
        let base = "occurredAtXYZ0123456789"
        for special in specials {
            for offset in 0...base.count {
                let text = String(base.prefix(offset)) + special + String(base.dropFirst(offset))
                for document in [
                    #"{"customerId":"\#(text)","sku":"s"}"#,  // a string read
                    #"{"skipped":"\#(text)","sku":"s"}"#,  // a string skipped
                    #"{"\#(text)":1,"sku":"s"}"#,  // a member name
                    #"{"items":[{"x":"\#(text)"}],"occurredAt":"\#(text)"}"#,
                    #"{"sku":"\#(text)"#,  // unterminated at the end of the buffer
                ] {
                    try Self.expectSame(decoder, paths, document)
                }
            }
        }
        // Escaped spellings of wanted names still name them; a name split by an escape at each offset.
        try Self.expectSame(decoder, paths, #"{"customer\u0049d":"escaped","\u0073ku":"also","occurredA\u0074":"t"}"#)
        try Self.expectSame(decoder, paths, #"{"orderIdentifie\u0072":"long escaped","orderIdentifier":"plain"}"#)
    }

    /// Unicode that only compares equal as Swift strings (canonical equivalence) and names that
    /// are equal as bytes: both paths of the matching must agree with the tree decoder.
    @Test func unicodeNamesAndValues() throws {
        let paths = [Self.key("café"), Self.key("Zoë"), Self.key("name"), Self.key("occurredAt")]
        let decoder = JSONFieldDecoder(paths: paths)
        for document in [
            #"{"café":1,"cafe\u0301":2,"Zoë":"x","Zoe\u0308":"y","name":"Zoë 😀 \u00e9\u0301","occurredAt":"2026-01-01T00:00:00Z"}"#,
            #"{"cafe\u0301":2,"name":"\ud83d\ude00\ud83d\ude00\ud83d\ude00","occurredAt":"\u0032026"}"#,
            #"{"name":"\ud83d","occurredAt":"x"}"#, #"{"name":"a\udc00"}"#,
        ] {
            try Self.expectSame(decoder, paths, document)
        }
    }

    /// Repeated members replace the earlier value whole, for leaves, objects and item arrays;
    /// item arrays longer than the first allocation keep every element.
    @Test func duplicatesNestingAndLongItemArrays() throws {
        let paths = [Self.key("orderId"), Self.key("customer", "name"), Self.key("customer", "address", "city"), Self.key("items")]
        let decoder = JSONFieldDecoder(paths: paths, forEachItems: [Self.key("items"): [Self.key("sku"), Self.key("quantity")]])
        let elements = (0..<37).map { #"{"sku":"s\#($0)","quantity":\#($0),"sku":"t\#($0)"}"# }.joined(separator: ",")
        for document in [
            #"{"orderId":"a","orderId":"b","orderId":null}"#,
            #"{"customer":{"name":"n","address":{"city":"c"}},"customer":{"address":{"zip":"z"}}}"#,
            #"{"customer":{"name":"n"},"customer":"flat","customer":{"address":{"city":[1,{"a":"b"}]}}}"#,
            #"{"items":[\#(elements)],"orderId":"o"}"#,
            #"{"items":[\#(elements)],"items":[{"sku":"only"}]}"#,
            #"{"items":[{"sku":"a"},{"sku":"b"},{"sku":"c"},{"sku":"d"},{"sku":"e"}]}"#,
            #"{"items":[{"sku":"a"},{"sku":"b"},{"sku":"c"},{"sku":"d"},{"sku":"e"},]}"#,
            #"{"customer":{"address":{"city":{"deep":{"deeper":[[[["x"]]]]}}}}}"#,
        ] {
            try Self.expectSame(decoder, paths, document)
        }
        var copy = #"{"items":[\#(elements)]}"#
        let layout = try #require(decoder.slotLayout)
        let fields = try copy.withUTF8 { try decoder.decodeFields(UnsafeRawBufferPointer($0), layout: layout) }
        guard case .slots(let items)? = fields.elements(FieldPathIDs.id(Self.key("items"))) else {
            Issue.record("items not decoded into item slots")
            return
        }
        #expect(items.count == 37)
        #expect(items.value(36, FieldPathIDs.id(Self.key("sku"))) == .string("t36"))
        #expect(items.value(0, FieldPathIDs.id(Self.key("quantity"))) == .int(0))
    }

    /// Numbers at the edges keep the values the tree decoder gives them.
    @Test func numbersAtTheEdges() throws {
        let paths = [Self.key("n"), Self.key("longerNumberName")]
        let decoder = JSONFieldDecoder(paths: paths)
        for number in ["0", "-0", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "-9223372036854775809",
                       "1e400", "-1e-400", "0.1", "1.0", "1E+2", "00", "01", "-", "1.", ".5", "+1", "123456789012345678", "1234567890123456789"] {
            try Self.expectSame(decoder, paths, #"{"n":\#(number),"longerNumberName":\#(number)}"#)
            try Self.expectSame(decoder, paths, #"{"longerNumberName":\#(number)"#)
        }
    }
}
