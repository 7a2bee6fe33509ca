import Foundation
@testable import RepriseEngine
import RepriseProjection
import Testing

/// The elements of an array only `for_each` reads are decoded into item slots: every item path
/// must read exactly what it reads on the element of the tree decoder's (whole) array, the
/// arrays nested in elements must be what the tree holds, and malformed documents must fail
/// with the same message and offset.
@Suite("JSON item slots of for_each arrays (no server)")
struct JSONFieldItemSlotsTests {
    static func key(_ names: String...) -> [PathSegment] { names.map { .key($0) } }

    /// (the array path, the item paths read on its elements, other payload paths)
    static let cases: [(array: [PathSegment], items: [[PathSegment]], others: [[PathSegment]])] = [
        (key("items"), [key("sku"), key("quantity"), key("unitPriceCents")], [key("orderId")]),
        (key("items"), [key("sku"), key("parts"), key("detail", "name"), key("é"), key("\u{212A}")], []),
        (key("items"), [], [key("orderId")]),  // only counted: for_each with no item reads
        (key("order", "lines"), [key("n"), key("detail")], [key("order", "id")]),
    ]

    static let documents: [String] = [
        #"{"orderId":"o-1","items":[{"sku":"A","quantity":2,"unitPriceCents":150},{"sku":"B","quantity":1,"unitPriceCents":999}]}"#,
        // Missing members, null, numbers as strings, decimals, past Int64, booleans, objects and arrays as values.
        #"{"items":[{"sku":"A"},{"quantity":null},{"quantity":"3","unitPriceCents":"12.50"},{"quantity":12.50,"unitPriceCents":1e3}]}"#,
        #"{"items":[{"quantity":9223372036854775808,"unitPriceCents":-9223372036854775808},{"quantity":-0,"sku":true}]}"#,
        #"{"items":[{"sku":{"x":1},"quantity":[1,2]},{"sku":"","quantity":012}]}"#,
        // Elements that are not objects read null for every path.
        #"{"items":[1,"two",null,[{"sku":"in array"}],true,{"sku":"last"}]}"#,
        // Nested arrays and objects in elements (kept whole where read, skipped where not).
        #"{"items":[{"sku":"A","parts":[{"n":1},{"n":2,"deep":[[3]]}],"detail":{"name":"Zoë","z":[1]}},{"parts":[],"detail":null}]}"#,
        #"{"items":[{"parts":"not an array"},{"parts":{"n":1}},{"detail":{"name":{"nested":true}}},{"detail":"flat"}]}"#,
        // Non-ASCII and escaped member names: compared as Swift strings compare them.
        #"{"items":[{"é":1,"K":2},{"e\u0301":3,"\u212A":4},{"\u00e9":5,"\u0073ku":"escaped"}]}"#,
        // Repeated members: the last wins whole.
        #"{"items":[{"sku":"a","sku":"b"},{"detail":{"name":"x"},"detail":5},{"detail":5,"detail":{"name":"y"}}]}"#,
        // Escapes in read and unread strings.
        #"{"items":[{"sku":"a\"b\\c\u00e9\ud83d\ude00\n","other":"x\/y\t\u0000"}]}"#,
        // The array itself: empty, missing, null, not an array.
        #"{"items":[]}"#, #"{"orderId":"x"}"#, #"{"items":null}"#, #"{"items":{"sku":"obj"}}"#, #"{"items":"text"}"#, #"{"items":5}"#,
        #" { "items" : [ { "sku" : "spaced" } , { } ] } "#, #"{"items":[{}]}"#,
        #"{"order":{"id":"o","lines":[{"n":1,"detail":"d"},{"n":"2"}]}}"#, #"{"order":{"lines":[]}}"#, #"{"order":"flat"}"#,
        #"{"items":[{"sku":"a"}],"items":[{"sku":"b"},{"sku":"c"}]}"#,
        // Malformed, also inside members the items do not read: both decoders must refuse alike.
        #"{"items":[{"sku":"a"},}"#, #"{"items":[{"sku":"a"}"#, #"{"items":[{"other":"\q"}]}"#, #"{"items":[{"other":"\ud800"}]}"#,
        #"{"items":[{"other":"\u12"}]}"#, #"{"items":[{"other":["\x"]}]}"#, #"{"items":[{"sku":tru}]}"#, #"{"items":[1 2]}"#,
        #"{"items":[{"other":"a\"#, "{\"items\":[{\"other\":\"\u{01}\"}]}", #"{"items":[{"sku":"a"}]"#, #"{"items":[-]}"#,
        #"{"items":[{"other":"\udc00"}]}"#, #"{"items":[{"\q":1}]}"#,
    ]

    static func outcome<T>(_ body: () throws(JSONDecodingError) -> T) -> Result<T, JSONDecodingError> {
        do { return .success(try body()) } catch { return .failure(error) }
    }

    /// What `for_each` would walk, as trees, for comparing.
    static func walked(_ elements: ForEachElements) -> [JSONValue]? {
        switch elements {
        case .none: []
        case .notArray: nil
        case .trees(let trees): trees
        case .slots(let items): (0..<items.count).map(items.tree)
        }
    }

    @Test func itemSlotsReadWhatTheTreeElementsHold() throws {
        for entry in Self.cases {
            let paths = [entry.array] + entry.others
            let whole = JSONFieldDecoder(paths: paths)
            let decoder = JSONFieldDecoder(paths: paths, forEachItems: [entry.array: entry.items])
            let layout = try #require(decoder.slotLayout)
            let arrayID = FieldPathIDs.id(entry.array)
            for document in Self.documents {
                let tree = Self.outcome { () throws(JSONDecodingError) in try whole.decode(document) }
                var copy = document
                let fields = copy.withUTF8 { buffer in
                    Self.outcome { () throws(JSONDecodingError) in try decoder.decodeFields(UnsafeRawBufferPointer(buffer), layout: layout) }
                }
                switch (tree, fields) {
                case (.success(let tree), .success(let fields)):
                    for path in entry.others {
                        #expect(fields.value(FieldPathIDs.id(path)) == (tree.value(at: path[...])?.projectionValue ?? .null), "\(path) \(document)")
                    }
                    let array = tree.value(at: entry.array[...])
                    let elements = try #require(fields.elements(arrayID))
                    switch (elements, array) {
                    case (.slots(let items), .array(let trees)?):
                        #expect(items.count == trees.count, "\(document)")
                        for (index, element) in trees.enumerated() {
                            for path in entry.items {
                                let id = FieldPathIDs.id(path)
                                let expected = element.value(at: path[...])
                                #expect(items.value(index, id) == (expected?.projectionValue ?? .null), "item \(index) \(path) in \(document)")
                                let nested = try #require(items.elements(index, id))
                                #expect(Self.walked(nested) == Self.walked(ForEachElements(expected)), "item \(index) \(path) in \(document)")
                            }
                            // An item path the slots do not keep is not answered from them.
                            #expect(items.value(index, FieldPathIDs.id(Self.key("not", "read"))) == nil)
                        }
                    case (.slots, _):
                        Issue.record("item slots for a value that is not an array: \(document)")
                    default:
                        // Not an array (or missing): walked exactly as the tree's value.
                        #expect(Self.walked(elements) == Self.walked(ForEachElements(array)), "\(document)")
                    }
                case (.failure(let expected), .failure(let actual)):
                    #expect(actual.description == expected.description, "\(document)")
                default:
                    Issue.record("one decoder accepted what the other refused: \(entry.items) \(document) tree \(tree) slots \(fields)")
                }
            }
        }
    }

    @Test func theRebuiltPayloadKeepsTheMembersItemsRead() throws {
        let decoder = JSONFieldDecoder(paths: [Self.key("items"), Self.key("orderId")], forEachItems: [Self.key("items"): [Self.key("sku")]])
        let layout = try #require(decoder.slotLayout)
        var document = #"{"orderId":"o","items":[{"sku":"A","quantity":2},7],"other":1}"#
        let fields = try document.withUTF8 { try decoder.decodeFields(UnsafeRawBufferPointer($0), layout: layout) }
        #expect(fields.tree == .object(["orderId": .string("o"), "items": .array([.object(["sku": .string("A")]), .number("7")])]))
        #expect(fields.value(FieldPathIDs.id(Self.key("items"))) == .string(#"[{"sku":"A"},7]"#))
    }

    @Test func arraysAlsoReadOtherwiseKeepTheirTree() throws {
        // A path below the array: the array stays a tree.
        let below = try #require(FieldSlotLayout(paths: [Self.key("items"), Self.key("items", "sku")], forEachItems: [Self.key("items"): [Self.key("sku")]]))
        #expect(below.nodes.allSatisfy { $0.items == nil })
        // A path a layout cannot serve (the whole element, an index): the array stays a tree.
        let whole = try #require(FieldSlotLayout(paths: [Self.key("items")], forEachItems: [Self.key("items"): [[]]]))
        #expect(whole.nodes.allSatisfy { $0.items == nil })
        let indexed = try #require(FieldSlotLayout(paths: [Self.key("items")], forEachItems: [Self.key("items"): [[.key("a"), .index(0)]]]))
        #expect(indexed.nodes.allSatisfy { $0.items == nil })
        let sliced = try #require(FieldSlotLayout(paths: [Self.key("items")], forEachItems: [Self.key("items"): [Self.key("sku")]]))
        #expect(sliced.nodes.contains { $0.items != nil })
    }

    static let tables = """
          lines:
            columns:
              sku: varchar(32) not null
              units: bigint not null default 0
              total: text
            primary_key: [sku]
        """

    static func definition(_ handlers: String) throws -> ProjectionDefinition {
        try ProjectionFileParser.parse(yaml: "name: shop\nversion: 1\ntables:\n\(tables)\nhandlers:\n\(handlers)\n", file: "x.yml")
    }

    @Test func theItemPathsOfAProjection() throws {
        let walked = try Self.definition("""
              OrderCreated:
                - for_each: payload.items
                  do:
                    - upsert: { table: lines, set: { sku: item.sku, units: "units + item.quantity" }, when: "item.ok" }
                    - for_each: item.parts
                      do:
                        - upsert: { table: lines, set: { sku: item.code } }
                - for_each: metadata.tags
                  do:
                    - upsert: { table: lines, set: { sku: item } }
              OrderItemAdded:
                - for_each: payload.items
                  do:
                    - upsert: { table: lines, set: { sku: item.detail.name, total: payload.total } }
            """)
        #expect(walked.forEachItemPaths == [
            .payload(Self.key("items")): [Self.key("sku"), Self.key("quantity"), Self.key("ok"), Self.key("parts"), Self.key("detail", "name")],
            .metadata(Self.key("tags")): [[]],
        ])
        #expect(walked.valueFields == [.payload(Self.key("total"))])
        let items = JSONFieldDecoder.forEachItems([walked])
        #expect(Set(items.payload[Self.key("items")] ?? []) == [Self.key("sku"), Self.key("quantity"), Self.key("ok"), Self.key("parts"), Self.key("detail", "name")])
        #expect(items.metadata[Self.key("tags")] == [[]])
        // Another projection of the group reads the array as a value: it stays a tree.
        let reader = try Self.definition("""
              OrderCreated:
                - upsert: { table: lines, set: { sku: payload.orderId, total: payload.items } }
            """)
        #expect(JSONFieldDecoder.forEachItems([walked, reader]).payload.isEmpty)
    }
}
