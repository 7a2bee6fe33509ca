import RepriseDemo
import RepriseEventStore
import RepriseSupport
import Testing

@Suite("Demo history")
struct DemoHistoryTests {
    private func allEvents(seed: UInt64, total: Int, batch: Int = 500) -> [StreamAppend] {
        var history = DemoHistory(seed: seed, totalEvents: total)
        var appends: [StreamAppend] = []
        while let next = history.nextBatch(maxEvents: batch) { appends += next }
        return appends
    }

    @Test func sameSeedGivesTheSameHistory() {
        #expect(allEvents(seed: 7, total: 3_000) == allEvents(seed: 7, total: 3_000))
        #expect(allEvents(seed: 7, total: 3_000) != allEvents(seed: 8, total: 3_000))
    }

    @Test func batchSizeDoesNotChangeTheHistory() {
        #expect(allEvents(seed: 3, total: 2_000, batch: 1) == allEvents(seed: 3, total: 2_000, batch: 777))
    }

    @Test func producesExactlyTheRequestedNumberOfEvents() {
        for total in [1, 2, 999, 5_000] {
            #expect(allEvents(seed: 1, total: total).reduce(0) { $0 + $1.events.count } == total)
        }
    }

    @Test func versionsFollowEachOtherPerStream() {
        var versions: [String: Int64] = [:]
        for append in allEvents(seed: 11, total: 20_000) {
            let current = versions[append.streamID] ?? 0
            switch append.expectedVersion {
            case .noStream: #expect(current == 0, "\(append.streamID) created twice")
            case .exact(let expected): #expect(expected == current, "\(append.streamID) expected \(expected) but is at \(current)")
            case .any: Issue.record("demo appends always state their expected version")
            }
            versions[append.streamID] = current + Int64(append.events.count)
        }
    }

    @Test func coversEveryEventTypeWithSkew() {
        let appends = allEvents(seed: 5, total: 50_000)
        let types = Set(appends.flatMap { $0.events.map(\.type) })
        #expect(types == Set(DemoEventType.all))
        // Hot customers: the busiest customer has many more orders than the median one.
        var ordersPerCustomer: [String: Int] = [:]
        for append in appends {
            for event in append.events where event.type == DemoEventType.orderCreated {
                let customer = event.payload.split(separator: "\"customerId\":\"")[1].prefix { $0 != "\"" }
                ordersPerCustomer[String(customer), default: 0] += 1
            }
        }
        let counts = ordersPerCustomer.values.sorted()
        #expect((counts.last ?? 0) >= 10 * counts[counts.count / 2])
    }

    @Test func payloadsAreValidJSONWithEscapedText() {
        #expect(JSONText.quoted("O'Neil \"x\" \\ \n\u{01}") == #""O'Neil \"x\" \\ \n\u0001""#)
    }
}
