import RepriseSupport
import RepriseEventStore
import ReprisePostgres

/// Errors of demo seeding.
public enum DemoSeedError: Error, Sendable, CustomStringConvertible {
    case alreadySeeded(seed: UInt64)
    public var description: String {
        switch self {
        case .alreadySeeded(let seed):
            "the event store already holds the demo history of seed \(seed); use another --seed, or reset the store"
        }
    }
}

/// Writes a `DemoHistory` through the append API, in batches (one transaction each).
public struct DemoSeeder: Sendable {
    public let store: EventStore
    public let batchSize: Int
    public let writeOutbox: Bool

    public init(store: EventStore = EventStore(), batchSize: Int = 2_000, writeOutbox: Bool = true) {
        self.store = store
        self.batchSize = batchSize
        self.writeOutbox = writeOutbox
    }

    /// Seeds `events` events; `progress` is called after each batch with the events written so far.
    ///
    /// With several connections, each batch is split by stream and the parts are appended in
    /// parallel transactions (streams never share a part, so versions stay in order); the next
    /// batch starts when every part has committed. Per stream, the history is the same for any
    /// number of connections; only how streams interleave in global positions differs.
    public func seed(
        events: Int, seed: UInt64, on connections: [PostgresConnection], progress: (Int) -> Void = { _ in }
    ) async throws -> Int {
        precondition(!connections.isEmpty, "seeding needs at least one connection")
        var history = DemoHistory(seed: seed, totalEvents: events)
        if try await store.streamVersion(history.firstStreamID, on: connections[0]) > 0 {
            throw DemoSeedError.alreadySeeded(seed: seed)
        }
        let store = self.store, writeOutbox = self.writeOutbox
        while let batch = history.nextBatch(maxEvents: batchSize) {
            if connections.count == 1 {
                try await store.append(batch, writeOutbox: writeOutbox, on: connections[0])
            } else {
                var parts = Array(repeating: [StreamAppend](), count: connections.count)
                for append in batch {
                    parts[Self.partition(of: append.streamID, among: connections.count)].append(append)
                }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (part, connection) in zip(parts, connections) where !part.isEmpty {
                        group.addTask { try await store.append(part, writeOutbox: writeOutbox, on: connection) }
                    }
                    try await group.waitForAll()
                }
            }
            progress(history.producedEvents)
        }
        return history.producedEvents
    }

    /// Seeds through one connection: global positions follow the history's order exactly.
    public func seed(events: Int, seed: UInt64, on connection: PostgresConnection, progress: (Int) -> Void = { _ in }) async throws -> Int {
        try await self.seed(events: events, seed: seed, on: [connection], progress: progress)
    }

    static func partition(of streamID: String, among count: Int) -> Int {
        Int(FNV1a.hash(streamID) % UInt64(count))
    }
}
