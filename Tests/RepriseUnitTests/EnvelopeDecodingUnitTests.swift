@testable import RepriseEngine
import RepriseProjection
import Testing

/// The decode thread's cheaper structures must give what the plain ones give: interned event
/// types, events whose copies share one storage, member names found through a table.
@Suite("Envelope and member decoding structures (no server)")
struct EnvelopeDecodingUnitTests {
    static func withBytes<R>(_ text: String, _ body: (UnsafeRawBufferPointer) -> R) -> R {
        var copy = text
        return copy.withUTF8 { body(UnsafeRawBufferPointer($0)) }
    }

    @Test func internedTypesEqualTheDecodedOnes() {
        var mapped: [String] = []
        var names = EventTypeNames { stored in
            mapped.append(stored)
            return stored == "order.created.v1" ? "OrderCreated" : stored
        }
        let stored = ["CustomerRegistered", "order.created.v1", "CustomerRegistered", "", "Bestellung_erstellt_é", "Customer", "order.created.v1",
                      "CustomerRegistereD", "Bestellung_erstellt_é", ""]
        for name in stored {
            let expected = name == "order.created.v1" ? "OrderCreated" : name
            #expect(Self.withBytes(name) { names.type($0) } == expected, "\(name)")
        }
        // Each distinct stored name is decoded and mapped once.
        #expect(mapped == ["CustomerRegistered", "order.created.v1", "", "Bestellung_erstellt_é", "Customer", "CustomerRegistereD"])
    }

    /// Stored names are compared 8 bytes at a time: names of one length that differ in any one
    /// byte stay apart, at every length around the word size.
    @Test func typesOfOneLengthDifferingAnywhereStayApart() {
        for length in 1...20 {
            let base = String(repeating: "a", count: length)
            var names = [base]
            for position in 0..<length {
                var bytes = Array(base.utf8)
                bytes[position] = UInt8(ascii: "b")
                names.append(String(decoding: bytes, as: UTF8.self))
            }
            var table = EventTypeNames { "T:" + $0 }
            for round in 0..<2 {
                for name in names {
                    #expect(Self.withBytes(name) { table.type($0) } == "T:" + name, "length \(length), round \(round)")
                }
            }
        }
    }

    @Test func namesBeyondTheTableStillDecode() {
        var calls = 0
        var names = EventTypeNames { calls += 1; return "T:" + $0 }
        let count = EventTypeNames.capacity + 8
        for round in 0..<2 {
            for index in 0..<count {
                #expect(Self.withBytes("Type\(index)") { names.type($0) } == "T:Type\(index)", "round \(round)")
            }
        }
        // The first `capacity` names are kept; the others are decoded on every row.
        #expect(calls == count + (count - EventTypeNames.capacity))
    }

    @Test func aCopyOfAnEventIsChangedAlone() {
        let original = ProjectionEvent(position: 7, transactionID: "42", eventID: "00000000-0000-7000-8000-000000000001", streamID: "order-1",
                                       streamVersion: 3, type: "CustomerRegistered", recordedAt: "2026-01-05T10:00:00.123456Z",
                                       payload: .object(["orderId": .string("o-1")]), metadata: .object(["m": .bool(true)]))
        var copy = original
        copy.position = 8
        copy.transactionID = "43"
        copy.eventID = "e2"
        copy.streamID = "order-2"
        copy.streamVersion = 4
        copy.type = "OrderCreated"
        copy.recordedAt = "2026-01-06T00:00:00Z"
        copy.payload = .string("p")
        copy.metadata = .null
        #expect(original.position == 7 && original.transactionID == "42" && original.eventID == "00000000-0000-7000-8000-000000000001")
        #expect(original.streamID == "order-1" && original.streamVersion == 3 && original.type == "CustomerRegistered")
        #expect(original.recordedAt == "2026-01-05T10:00:00.123456Z")
        #expect(original.payload == .object(["orderId": .string("o-1")]) && original.metadata == .object(["m": .bool(true)]))
        #expect(copy.position == 8 && copy.transactionID == "43" && copy.eventID == "e2" && copy.streamID == "order-2")
        #expect(copy.streamVersion == 4 && copy.type == "OrderCreated" && copy.recordedAt == "2026-01-06T00:00:00Z")
        #expect(copy.payload == .string("p") && copy.metadata == .null)
    }
}
