import Foundation
@testable import RepriseEngine
import RepriseProjection
import Testing

/// Decoding a payload into slots must give every field exactly what the tree decoder gives:
/// the same values, the same arrays, the same rebuilt document and the same errors.
@Suite("JSON field slots (no server)")
struct JSONFieldSlotsTests {
    static func key(_ names: String...) -> [PathSegment] { names.map { .key($0) } }

    static let pathSets: [[[PathSegment]]] = [
        [key("orderId"), key("totalCents"), key("occurredAt"), key("items")],
        [key("customer", "name"), key("customer", "address", "city"), key("totalCents")],
        [key("customer", "name"), key("customer")],  // a path below another kept whole
        [key("items"), key("items", "sku"), key("name")],
        [key("\u{212A}"), key("é")],  // Kelvin sign (equal to "K" as a Swift string), precomposed é
    ]

    static let documents: [String] = [
        #"{"orderId":"o-1","totalCents":1234,"occurredAt":"2026-01-05T10:00:00.123456Z","items":[{"sku":"A","quantity":2}]}"#,
        #"{"orderId":"o\"1\\\u00e9\n\t/\/","totalCents":9223372036854775807}"#,
        #"{"totalCents":-9223372036854775808}"#,
        #"{"totalCents":9223372036854775808}"#,
        #"{"totalCents":-9223372036854775809}"#,
        #"{"totalCents":123456789012345678}"#,
        #"{"totalCents":-123456789012345678}"#,
        #"{"totalCents":12.50}"#, #"{"totalCents":1e3}"#, #"{"totalCents":-0}"#, #"{"totalCents":0}"#, #"{"totalCents":012}"#,
        #"{"totalCents":1.5.5}"#, #"{"totalCents":-0.0}"#, #"{"totalCents":0.1}"#, #"{"totalCents":123456789012345678901234567890}"#,
        #"{"totalCents":null}"#, #"{}"#, #" { "totalCents" : 5 , "orderId" : "x" } "#,
        #"{"customer":{"name":"Zoë","address":{"city":"Köln","zip":"50667"}},"totalCents":true}"#,
        #"{"customer":"flat"}"#, #"{"customer":[1,{"name":"in array"}]}"#, #"{"customer":null}"#, #"{"customer":{}}"#,
        #"{"customer":{"address":null}}"#, #"{"customer":{"address":[{"city":"x"}]}}"#,
        #"{"orderId":"a","orderId":"b"}"#,
        #"{"customer":{"name":"x","address":{"city":"c"}},"customer":5}"#,
        #"{"customer":5,"customer":{"name":"y"}}"#,
        #"{"\u006frderId":"escaped-name","t\u006ftalCents":7}"#,
        #"{"K":1,"é":2}"#, #"{"\u212A":3,"e\u0301":4}"#,
        #"[1,2]"#, #""just text""#, #"null"#, #"5"#, #"true"#,
        #"{"items":[]}"#, #"{"items":{"sku":"x"}}"#, #"{"items":"no"}"#, #"{"items":[{"sku":"a"},{"sku":"b","n":[1,2,{"d":null}]}]}"#,
        #"{"name":"\ud83d\ude00 \u0000 end"}"#, #"{"name":""}"#, #"{"name":"a\u00e9b","extra":{"deep":[1,[2,[3]]]}}"#,
        // Malformed: both decoders must refuse them alike.
        #"{"a":}"#, #"{"a":1,}"#, #"{"a" 1}"#, "{\"orderId\":\"\u{01}\"}", #"{"a":1} x"#, #"{"orderId":"unterminated"#,
        #"{"orderId":"\ud800"}"#, #"{"orderId":"\q"}"#, #"{"customer":{"name":tru}}"#, #"{"totalCents":-}"#, "", #"{"items":[1,}"#,
    ]

    static func outcome<T>(_ body: () throws(JSONDecodingError) -> T) -> Result<T, JSONDecodingError> {
        do { return .success(try body()) } catch { return .failure(error) }
    }

    @Test func slotsReadWhatTheTreeHolds() throws {
        for paths in Self.pathSets {
            let decoder = JSONFieldDecoder(paths: paths)
            let layout = try #require(decoder.slotLayout)
            for document in Self.documents {
                let tree = Self.outcome { () throws(JSONDecodingError) in try decoder.decode(document) }
                var copy = document
                let fields = copy.withUTF8 { buffer in
                    Self.outcome { () throws(JSONDecodingError) in try decoder.decodeFields(UnsafeRawBufferPointer(buffer), layout: layout) }
                }
                switch (tree, fields) {
                case (.success(let tree), .success(let fields)):
                    #expect(fields.tree == tree, "\(paths) \(document)")
                    for path in paths {
                        let id = FieldPathIDs.id(path)
                        #expect(fields.value(id) == (tree.value(at: path[...])?.projectionValue ?? .null), "\(path) in \(document)")
                        #expect(fields.json(id) == .some(tree.value(at: path[...])), "\(path) in \(document)")
                    }
                case (.failure(let expected), .failure(let actual)):
                    #expect(actual.description == expected.description, "\(document)")
                default:
                    Issue.record("one decoder accepted what the other refused: \(document) tree \(tree) slots \(fields)")
                }
            }
        }
    }

    @Test func typedValuesAtTheLimits() throws {
        let decoder = JSONFieldDecoder(paths: [Self.key("n"), Self.key("s"), Self.key("o", "x")])
        let layout = try #require(decoder.slotLayout)
        func read(_ document: String, _ path: [PathSegment]) throws -> ProjectionValue? {
            var copy = document
            let fields = try copy.withUTF8 { try decoder.decodeFields(UnsafeRawBufferPointer($0), layout: layout) }
            return fields.value(FieldPathIDs.id(path))
        }
        #expect(try read(#"{"n":9223372036854775807}"#, Self.key("n")) == .int(.max))
        #expect(try read(#"{"n":-9223372036854775808}"#, Self.key("n")) == .int(.min))
        #expect(try read(#"{"n":9223372036854775808}"#, Self.key("n")) == .decimal(Decimal(string: "9223372036854775808")!))
        #expect(try read(#"{"n":12.50}"#, Self.key("n")) == .decimal(Decimal(string: "12.5")!))
        #expect(try read(#"{"n":-0}"#, Self.key("n")) == .int(0))
        #expect(try read(#"{"s":"tab\there \"q\" \u00e9 \ud83d\ude00"}"#, Self.key("s")) == .string("tab\there \"q\" é 😀"))
        // Null and missing both read as null; a path through a non-object reads null.
        #expect(try read(#"{"n":null}"#, Self.key("n")) == .null)
        #expect(try read(#"{}"#, Self.key("n")) == .null)
        #expect(try read(#"{"o":"flat"}"#, Self.key("o", "x")) == .null)
        #expect(try read(#"{"o":{"x":{"y":[1,"a"]}}}"#, Self.key("o", "x")) == .string(#"{"y":[1,"a"]}"#))
        // A path the decoder does not keep is not answered from slots.
        #expect(try read(#"{"n":1}"#, Self.key("other")) == nil)
    }

    @Test func pathsSlotsCannotServeKeepATree() {
        #expect(JSONFieldDecoder(paths: [[]]).slotLayout == nil)
        #expect(JSONFieldDecoder(paths: []).slotLayout == nil)
        #expect(JSONFieldDecoder(paths: [[.key("items"), .index(0), .key("sku")]]).slotLayout == nil)
        #expect(JSONFieldDecoder(paths: [[.key("items"), .key("0")]]).slotLayout == nil)
    }

    @Test func anEventFromSlotsShowsTheTreeAsPayload() throws {
        let decoder = JSONFieldDecoder(paths: [Self.key("a", "b"), Self.key("c")])
        let layout = try #require(decoder.slotLayout)
        let document = #"{"a":{"b":[1,2],"z":0},"c":"x","d":1}"#
        var copy = document
        let fields = try copy.withUTF8 { try decoder.decodeFields(UnsafeRawBufferPointer($0), layout: layout) }
        var event = ProjectionEvent(position: 1, transactionID: "1", eventID: "e", streamID: "s", streamVersion: 1, type: "T",
                                    recordedAt: "2026-01-05T10:00:00Z", payload: .fields(fields), metadata: .tree(.null))
        #expect(event.payload == (try decoder.decode(document)))
        #expect(event.payload["c"] == .string("x"))
        event.payload = .string("replaced")
        #expect(event.payload == .string("replaced"))
    }
}
