@testable import RepriseEngine
import RepriseProjection
import Testing

/// Member names are found through a table keyed by length, first and last byte: it must find each
/// wanted name, nothing else, and leave names it cannot separate to the plain scan.
@Suite("JSON member table (no server)")
struct JSONFieldMemberTableTests {
    static let sampleNames = ["amountCents", "country", "customerId", "itemCount", "items", "lineTotalCents", "name", "occurredAt",
                              "orderId", "quantity", "sku", "totalCents"]

    @Test func eachNameFindsItselfAndOnlyItself() throws {
        let names = Self.sampleNames.map { Array($0.utf8) }
        let table = try #require(FieldSlotLayout.MemberTable(names))
        for (position, name) in names.enumerated() {
            #expect(table.candidate(length: name.count, first: name[0], last: name[name.count - 1]) == position, "\(Self.sampleNames[position])")
        }
        // A name of another length or other ends has no candidate, or one the caller's comparison refuses.
        for other in ["orderID", "order", "customerid", "x", ""] {
            let bytes = Array(other.utf8)
            if let position = table.candidate(length: bytes.count, first: bytes.first ?? 0, last: bytes.last ?? 0) {
                #expect(names[position] != bytes, "\(other)")
            }
        }
    }

    @Test func namesSharingLengthAndEndsHaveNoTable() {
        #expect(FieldSlotLayout.MemberTable([Array("axb".utf8), Array("ayb".utf8)]) == nil)
        #expect(FieldSlotLayout.MemberTable([]) == nil)
    }

    /// Documents decoded into slots through the table (or the scan) read as the tree decoder reads them.
    @Test func slotsThroughTheTableReadWhatTheTreeHolds() throws {
        func key(_ names: String...) -> [PathSegment] { names.map { .key($0) } }
        let pathSets: [[[PathSegment]]] = [
            Self.sampleNames.map { key($0) },
            [key("axb"), key("ayb"), key("orderId")],  // no table: the scan
            [key(""), key("a"), key("é"), key("\u{212A}")],  // empty name; non-ASCII names take the string path
            [key("customer", "name"), key("customer", "nane"), key("c")],
        ]
        let documents = [
            #"{"orderId":"o-1","orderID":"no","orderIe":"no","axb":1,"ayb":2,"azb":3,"":4,"a":5,"items":[{"sku":"A"}],"sku":"s"}"#,
            #"{"axb":1,"axb":{"x":1},"customer":{"name":"n","nane":"m","namd":"z"},"c":true}"#,
            #"{"\u006frderId":"escaped","\u0061xb":6,"K":7,"\u212A":8,"é":9,"e\u0301":10,"lineTotalCents":-5,"name":"Zoë"}"#,
            #"{"amountCents":1,"country":"DE","customerId":"c","itemCount":2,"lineTotalCents":3,"occurredAt":"t","quantity":4,"totalCents":5}"#,
            #"{"customer":{"name":"x"},"customer":{"nane":"y"}}"#,
            #"{"orderId":"unterminated"#, #"{"axb" 1}"#,
        ]
        for paths in pathSets {
            let decoder = JSONFieldDecoder(paths: paths)
            let layout = try #require(decoder.slotLayout)
            for document in documents {
                var copy = document
                let tree = Result { () throws(JSONDecodingError) in try decoder.decode(document) }
                let fields = copy.withUTF8 { buffer in
                    Result { () throws(JSONDecodingError) in try decoder.decodeFields(UnsafeRawBufferPointer(buffer), layout: layout) }
                }
                switch (tree, fields) {
                case (.success(let tree), .success(let fields)):
                    #expect(fields.tree == tree, "\(paths) \(document)")
                    for path in paths {
                        #expect(fields.value(FieldPathIDs.id(path)) == (tree.value(at: path[...])?.projectionValue ?? .null), "\(path) in \(document)")
                    }
                case (.failure(let expected), .failure(let actual)):
                    #expect(actual.description == expected.description, "\(document)")
                default:
                    Issue.record("one decoder accepted what the other refused: \(document)")
                }
            }
        }
    }
}
