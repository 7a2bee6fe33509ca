import Testing
@testable import RepriseProjection

@Suite("Partition keys")
struct PartitionKeyTests {
    func yaml(_ key: String) -> String {
        Fixtures.projection(header: "name: shop\nversion: 1\npartition_key: \(key)")
    }

    func parse(_ key: String) throws -> ProjectionDefinition {
        try ProjectionFileParser.parse(yaml: yaml(key), file: "shop.yml")
    }

    @Test func oneFieldAppliesToEveryHandledType() throws {
        #expect(try parse("payload.orderId").partitionKey == ["OrderCreated": .payload([.key("orderId")])])
        #expect(try parse("event.stream_id").partitionKey == ["OrderCreated": .envelope(.streamID)])
        #expect(try ProjectionFileParser.parse(yaml: Fixtures.projection(), file: "shop.yml").partitionKey == nil)
    }

    @Test func aMappingNamesEachHandledType() throws {
        #expect(try parse("{ OrderCreated: metadata.tenant }").partitionKey == ["OrderCreated": .metadata([.key("tenant")])])
        expectFileError(yaml("{ OrderShipped: payload.orderId }"), path: "partition_key.OrderShipped", "is not an event type this projection handles")
        expectFileError(yaml("{}"), path: "partition_key", "no partition key for handled event type 'OrderCreated'")
    }

    @Test func onlyPlainFieldsAreKeys() {
        for bad in ["\"payload.a + 1\"", "event.position", "\"'x'\"", "\"lower(payload.a)\""] {
            expectFileError(yaml(bad), path: "partition_key", "a partition key is one field")
        }
    }

    @Test func theKeyIsNotPartOfTheDefinitionHash() throws {
        #expect(try parse("payload.orderId").definitionHash == (try ProjectionFileParser.parse(yaml: Fixtures.projection(), file: "shop.yml").definitionHash))
    }
}
