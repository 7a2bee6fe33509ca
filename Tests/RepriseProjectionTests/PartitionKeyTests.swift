import Testing
@testable import RepriseProjection

@Suite("Partition keys")
struct PartitionKeyTests {
    func parse(_ key: String) throws -> ProjectionDefinition {
        try ProjectionFileParser.parse(yaml: Fixtures.projection(header: "name: shop\nversion: 1\npartition_key: \(key)"), file: "shop.yml")
    }

    @Test func oneFieldAppliesToEveryHandledType() throws {
        #expect(try parse("payload.orderId").partitionKey == ["OrderCreated": .payload([.key("orderId")])])
        #expect(try parse("event.stream_id").partitionKey == ["OrderCreated": .envelope(.streamID)])
        #expect(try ProjectionFileParser.parse(yaml: Fixtures.projection(), file: "shop.yml").partitionKey == nil)
    }

    @Test func aMappingNamesEachHandledType() throws {
        #expect(try parse("{ OrderCreated: metadata.tenant }").partitionKey == ["OrderCreated": .metadata([.key("tenant")])])
        #expect(throws: ProjectionFileError.self) { try parse("{ OrderShipped: payload.orderId }") }
        #expect(throws: ProjectionFileError.self) { try parse("{}") }
    }

    @Test func onlyPlainFieldsAreKeys() {
        for bad in ["\"payload.a + 1\"", "event.position", "\"'x'\"", "\"lower(payload.a)\""] {
            #expect(throws: ProjectionFileError.self, "\(bad)") { try parse(bad) }
        }
    }

    @Test func theKeyIsNotPartOfTheDefinitionHash() throws {
        #expect(try parse("payload.orderId").definitionHash == (try ProjectionFileParser.parse(yaml: Fixtures.projection(), file: "shop.yml").definitionHash))
    }
}
