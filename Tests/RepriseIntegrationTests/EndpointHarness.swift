import Logging
import RepriseHTTP
import ServiceLifecycle

/// Runs a `StatusEndpoint` (Hummingbird, on a free port of 127.0.0.1) for the length of `body`,
/// then shuts it down gracefully and waits for it, also when `body` throws.
func withStatusEndpoint<T: Sendable>(_ endpoint: StatusEndpoint, _ body: (_ port: UInt16) async throws -> T) async throws -> T {
    var endpoint = endpoint
    endpoint.port = 0
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let logger = Logger(label: "reprise.test.http")
    let service = endpoint.service(logger: logger) { port in continuation.yield(port) }
    let group = ServiceGroup(configuration: .init(services: [service], logger: logger))
    return try await withThrowingTaskGroup(of: Void.self) { tasks in
        tasks.addTask { try await group.run() }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestSetupError("the status endpoint did not start") }
        let result: Result<T, any Error>
        do {
            result = .success(try await body(UInt16(port)))
        } catch {
            result = .failure(error)
        }
        await group.triggerGracefulShutdown()
        try await tasks.waitForAll()
        return try result.get()
    }
}
