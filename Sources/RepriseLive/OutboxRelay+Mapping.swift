import RepriseAMQP
import RepriseEngine
import RepriseEventSource
import ReprisePostgres

/// Why a relay refuses to run.
public enum OutboxRelayError: Error, Sendable, CustomStringConvertible {
    /// Another relay of the same outbox splits it into another number of shares: both would
    /// publish the same rows.
    case sharesMismatch(outbox: String, requested: Int, running: OutboxRelay.Announcement)

    public var description: String {
        switch self {
        case .sharesMismatch(let outbox, let requested, let running):
            let held = running.shares.isEmpty ? "standing by" : "holding shares \(running.shares.map(String.init).joined(separator: ","))"
            return "relay \(running.owner) publishes \(outbox) split into \(running.of) shares (\(held)); this relay was started with --shares \(requested), "
                + "which would publish the same rows twice: start it with --shares \(running.of), or stop every relay of \(outbox) first"
        }
    }
}

extension OutboxRelay {
    /// One batch ready to publish: the messages, and what marks their rows published.
    struct Batch: Sendable {
        var messages: [AMQPOutgoingMessage]
        /// Reprise's outbox: global positions. A mapped outbox: message ids.
        var positions: [Int64] = []
        var messageIDs: [String] = []
        var lastPosition: Int64
        var count: Int { messages.count }
        var isEmpty: Bool { messages.isEmpty }
    }

    /// Where the relay reads rows: Reprise's own outbox (each row joined with its event), or a
    /// mapped table checked against the catalog.
    enum Source: Sendable {
        case reprise
        case mapped(ResolvedOutboxMapping, SafeHeadTracker?)

        static func prepare(_ configuration: Configuration, on connection: PostgresConnection) async throws -> Source {
            guard let mapping = configuration.outbox, !mapping.isReprise else { return .reprise }
            let resolved = try await ResolvedOutboxMapping.resolve(mapping, on: connection)
            if case .settleWindow(let milliseconds) = mapping.safeHead {
                return .mapped(resolved, SafeHeadTracker(window: .milliseconds(milliseconds)))
            }
            return .mapped(resolved, nil)
        }

        /// Only Reprise's own outbox is cleaned up: an application's table is its own.
        var cleansUp: Bool {
            if case .reprise = self { return true }
            return false
        }

        func next(_ relay: OutboxRelay, _ connection: PostgresConnection, shares: [Int]) async throws -> Batch {
            let configuration = relay.configuration
            switch self {
            case .reprise:
                let rows = try await relay.unpublished(connection, shares: shares)
                return Batch(
                    messages: rows.map { EventMessage.message($0, exchange: configuration.exchange, persistent: configuration.persistentMessages) },
                    positions: rows.map(\.position), lastPosition: rows.last?.position ?? 0)
            case .mapped(let resolved, let tracker):
                var head: Int64 = 0
                if let tracker, let query = resolved.headQuery {
                    head = try await tracker.settledHead(observed: try await connection.query(query).int64(0, 0) ?? 0)
                }
                let rows = try await resolved.unpublished(limit: configuration.batchSize, shares: shares, of: configuration.shares, settledHead: head, on: connection)
                return Batch(
                    messages: rows.map { Self.message($0, resolved.mapping, configuration) }, messageIDs: rows.map(\.messageID),
                    lastPosition: rows.last?.order ?? 0)
            }
        }

        func backlog(_ relay: OutboxRelay, _ connection: PostgresConnection, shares: [Int]) async throws -> Int64 {
            switch self {
            case .reprise: try await relay.backlog(connection, shares: shares)
            case .mapped(let resolved, _): try await resolved.backlog(shares: shares, of: relay.configuration.shares, on: connection)
            }
        }

        func markPublished(_ batch: Batch, _ relay: OutboxRelay, _ connection: PostgresConnection) async throws {
            switch self {
            case .reprise: try await relay.markPublished(batch.positions, connection)
            case .mapped(let resolved, _): try await resolved.markPublished(batch.messageIDs, on: connection)
            }
        }

        /// A mapped row as a message: the body as stored, the message id for consumers to
        /// deduplicate by (delivery is at least once), the stream key in a header.
        static func message(_ row: ResolvedOutboxMapping.Row, _ mapping: OutboxMapping, _ configuration: Configuration) -> AMQPOutgoingMessage {
            var headers: [String: AMQPFieldValue] = [EventMessage.streamHeader: .string(row.streamKey)]
            if let text = row.headersJSON, case .object(let members)? = try? JSONFieldDecoder(paths: [[]]).decode(text) {
                for (key, value) in members { headers[key] = field(value) }
            }
            for (name, value) in row.headerValues { headers[name] = .string(value) }
            return AMQPOutgoingMessage(
                exchange: configuration.exchange, routingKey: row.routingKey, body: row.body,
                properties: AMQPMessageProperties(
                    contentType: mapping.bodyEncoding == .bytea ? "application/octet-stream" : "application/json", messageID: row.messageID,
                    type: row.routingKey, persistent: configuration.persistentMessages, headers: headers),
                mandatory: true)
        }

        static func field(_ value: JSONValue) -> AMQPFieldValue {
            switch value {
            case .string(let text): .string(text)
            case .bool(let flag): .bool(flag)
            case .number(let text): Int64(text).map { .int($0) } ?? Double(text).map { .double($0) } ?? .string(text)
            case .null, .array, .object: .string(value.jsonText)
            }
        }
    }

    /// Refuses to run beside a relay of the same outbox split into another number of shares, and
    /// announces this one (standing by until it holds shares). Serialized by a lock, so two relays
    /// started at once cannot both miss each other.
    func joinRelays(on leader: PostgresConnection) async throws {
        let key = LockNames.relayJoin(outbox: outboxName)
        try await leader.advisoryLock(key)
        do {
            if let other = try await Self.announcements(on: leader).first(where: { $0.outbox == outboxName && $0.of != configuration.shares }) {
                throw OutboxRelayError.sharesMismatch(outbox: outboxName, requested: configuration.shares, running: other)
            }
            try await announce([], on: leader)
        } catch {
            _ = try? await leader.advisoryUnlock(key)
            throw error
        }
        try await leader.advisoryUnlock(key)
    }
}
