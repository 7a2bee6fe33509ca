import Foundation
import RepriseAMQP
import RepriseLive
import Testing

/// Helpers every integration suite shares: scoped environments and folders (cleaned up even when
/// a check throws), bounded waiting, collected reports.

extension RebuildEnvironment {
    /// Runs `body` in a fresh environment and drops its schema and database afterwards, also when
    /// `body` throws (a failed `try #require` included), so nothing is left on the shared servers.
    static func with<Result>(_ body: (RebuildEnvironment) async throws -> Result) async throws -> Result {
        let environment = try await make()
        do {
            let result = try await body(environment)
            await environment.tearDown()
            return result
        } catch {
            await environment.tearDown()
            throw error
        }
    }
}

/// A fresh temporary folder for `body`, removed afterwards, also when `body` throws.
func withTemporaryFolder<Result>(_ prefix: String = "reprise-test", _ body: (String) async throws -> Result) async throws -> Result {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent(TestServers.uniqueName(prefix)).path
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    return try await body(folder)
}

/// Waits until `condition` holds (polling), failing after `limit`: a bound, not a timing assertion.
func waitUntil(_ what: String, limit: Duration = .seconds(60), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(50))
    }
    throw TestSetupError("timed out waiting for \(what)")
}

/// Collects what a worker or relay reports, for assertions.
actor Reports<Event: Sendable> {
    var events: [Event] = []
    func add(_ event: Event) { events.append(event) }
}

/// A running total shared with a polling closure.
actor Counter {
    private(set) var value: Int64 = 0
    func add(_ amount: Int64) { value += amount }
}

/// Messages waiting in `queue` now (a connection of its own, closed before returning).
func queueMessageCount(_ queue: String) async throws -> Int {
    let amqp = try await TestServers.amqp()
    do {
        let count = try await amqp.queueInfo(queue).messageCount
        await amqp.close()
        return Int(count)
    } catch {
        await amqp.close()
        throw error
    }
}

/// Takes every message out of `queue` (acknowledged), as (position, stream id) from the relay's
/// message headers.
func drainQueue(_ queue: String) async throws -> [(position: Int64, stream: String)] {
    let amqp = try await TestServers.amqp()
    var messages: [(Int64, String)] = []
    do {
        while let delivery = try await amqp.get(queue: queue) {
            try await amqp.ack(delivery.deliveryTag)
            guard let position = EventMessage.position(of: delivery), case .string(let stream)? = delivery.properties.headers[EventMessage.streamHeader] else {
                Issue.record("a message without position or stream")
                continue
            }
            messages.append((position, stream))
        }
    } catch {
        await amqp.close()
        throw error
    }
    await amqp.close()
    return messages
}
