import Testing
@testable import RepriseProjection

@Suite("Required fields")
struct RequiredFieldsTests {
    @Test func formatExampleFields() throws {
        let definition = try ProjectionFileParser.parse(yaml: Fixtures.formatExample, file: "x.yml")
        let keys = ["orderId", "itemCount", "totalCents", "occurredAt", "lineTotalCents", "quantity", "items", "customerId"]
        #expect(definition.requiredFields == Set(keys.map { FieldReference.payload([.key($0)]) }))
    }

    @Test func metadataNestedPathsAndConditions() throws {
        let yaml = Fixtures.projection(handlers: """
              OrderCreated:
                - upsert:
                    table: orders
                    set: { order_id: "concat(metadata.tenant, '-', payload.order.id)", created_at: event.recorded_at }
                    when: "coalesce(payload.flags.0, false)"
                - for_each: payload.order.lines
                  do:
                    - for_each: item.parts
                      do:
                        - upsert: { table: lines, set: { order_id: payload.order.id, line_no: item.n } }
            """)
        let definition = try ProjectionFileParser.parse(yaml: yaml, file: "x.yml")
        #expect(definition.requiredFields == [
            .metadata([.key("tenant")]), .payload([.key("order"), .key("id")]), .payload([.key("flags"), .index(0)]),
            .payload([.key("order"), .key("lines")]),
        ])
    }
}
