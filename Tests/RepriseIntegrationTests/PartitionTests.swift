import RepriseAMQP
import RepriseLive
import Testing

extension BrokerSuites {
/// Partitioned relays: the outbox split into shares by hash of the stream id, one relay per share.
@Suite("Partitions: relays sharing an outbox (real servers)")
struct PartitionedRelayTests {
    /// Every message in a queue bound to all event types: (position, stream) in delivery order.
    static func owned(_ reports: Reports<OutboxRelay.Event>) async -> [Int] {
        await reports.events.reduce([]) { last, event in if case .sharesOwned(let shares) = event { shares } else { last } }
    }

    @Test func twoRelaysPublishTheirSharesInPerStreamOrderAndTakeOverEachOther() async throws {
        try await RebuildEnvironment.with { environment in
            let harness = LiveHarness(environment: environment)
            try await harness.declareCatchAllQueue()

            var first = harness.relayConfiguration(), second = harness.relayConfiguration()
            first.owner = "r1"
            second.owner = "r2"
            first.shares = 4
            first.maxShares = 2
            second.shares = 4
            let firstReports = Reports<OutboxRelay.Event>(), secondReports = Reports<OutboxRelay.Event>()
            let firstStop = StopSignal(), secondStop = StopSignal()
            let firstTask = Task { [first] in try await OutboxRelay(first).run(stop: firstStop) { event in Task { await firstReports.add(event) } } }
            try await waitUntil("the first relay to take two shares") { await Self.owned(firstReports).count == 2 }
            let secondTask = Task { [second] in try await OutboxRelay(second).run(stop: secondStop) { event in Task { await secondReports.add(event) } } }
            try await waitUntil("the second relay to take the other two") { await Self.owned(secondReports).count == 2 }
            let (firstShares, secondShares) = (await Self.owned(firstReports), await Self.owned(secondReports))
            #expect(Set(firstShares + secondShares) == [0, 1, 2, 3])
            // `reprise status` shows who publishes which shares, from the relays' sessions.
            let outbox = "\(environment.storeSchema.schema).\(environment.storeSchema.outboxTable)"
            try await waitUntil("both relays to announce their shares") {
                let announced = try await OutboxRelay.announcements(on: environment.postgres).filter { $0.outbox == outbox }
                return announced.map(\.owner).sorted() == ["r1", "r2"]
                    && announced.first { $0.owner == "r1" }?.shares == firstShares && announced.first { $0.owner == "r2" }?.shares == secondShares
                    && announced.allSatisfy { $0.of == 4 }
            }

            try await environment.seed(events: 1_500, seed: 190)
            let unpublished = { try await environment.unpublishedCount() }
            try await waitUntil("both relays to publish everything") { try await unpublished() == 0 }
            let published = { (reports: Reports<OutboxRelay.Event>) in
                await reports.events.reduce(0) { sum, event in if case .published(let count, _, _) = event { sum + count } else { sum } }
            }
            let (firstCount, secondCount) = (await published(firstReports), await published(secondReports))
            #expect(firstCount > 0 && secondCount > 0, "both relays published")

            // The first relay goes away: the second takes its shares over.
            firstStop.stop()
            try await firstTask.value
            try await waitUntil("the second relay to take over every share") { await Self.owned(secondReports) == [0, 1, 2, 3] }
            try await environment.seed(events: 500, seed: 191)
            try await waitUntil("the second relay to publish the rest") { try await unpublished() == 0 }
            secondStop.stop()
            try await secondTask.value

            // Every event once, and each stream's events in position order.
            let messages = try await drainQueue(harness.queue)
            let events = try await environment.postgres.query("SELECT count(*) FROM \(environment.storeSchema.qualifiedEvents)").int(0, 0) ?? 0
            #expect(messages.count == events)
            #expect(Set(messages.map(\.position)).count == events)
            var last: [String: Int64] = [:]
            var outOfOrder = 0
            for message in messages {
                if let previous = last[message.stream], previous > message.position { outOfOrder += 1 }
                last[message.stream] = message.position
            }
            #expect(outOfOrder == 0, "\(outOfOrder) messages arrived before an earlier event of their stream")
            #expect(Set(messages.map(\.stream)).count > 50)
            await harness.cleanUp()
        }
    }
}
}
