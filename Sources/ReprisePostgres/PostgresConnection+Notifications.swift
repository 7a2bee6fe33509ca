import CLibPQ

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A notification received through LISTEN.
public struct PostgresNotification: Sendable, Equatable {
    public var channel: String
    public var payload: String
    public var senderPID: Int32
}

extension PostgresConnection {
    /// Subscribes this connection to a channel.
    public func listen(_ channel: String) async throws(PostgresError) {
        try await execute("LISTEN \(PostgresIdentifier.quote(channel))")
    }

    public func unlisten(_ channel: String) async throws(PostgresError) {
        try await execute("UNLISTEN \(PostgresIdentifier.quote(channel))")
    }

    /// Sends a notification (delivered at commit when inside a transaction).
    public func notify(_ channel: String, payload: String = "") async throws(PostgresError) {
        try await execute("SELECT pg_notify($1, $2)", [.text(channel), .text(payload)])
    }

    /// Waits up to `timeoutMilliseconds` for notifications and returns those received (maybe none).
    /// Blocks only this connection's executor.
    public func waitForNotifications(timeoutMilliseconds: Int32) throws(PostgresError) -> [PostgresNotification] {
        let handle = try liveHandle(for: nil)
        var received = drainNotifications(handle)
        if !received.isEmpty { return received }
        let socket = PQsocket(handle)
        guard socket >= 0 else { throw connectionError(sql: nil) }
        var descriptor = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, timeoutMilliseconds)
        if ready < 0 && errno != EINTR {
            throw PostgresError(code: .connectionLost, message: "poll failed with errno \(errno)", server: server)
        }
        if ready > 0 {
            guard PQconsumeInput(handle) == 1 else { throw connectionError(sql: nil) }
            received = drainNotifications(handle)
        }
        return received
    }

    private func drainNotifications(_ handle: OpaquePointer) -> [PostgresNotification] {
        var result: [PostgresNotification] = []
        _ = PQconsumeInput(handle)
        while let notify = PQnotifies(handle) {
            let channel = notify.pointee.relname.map { String(cString: $0) } ?? ""
            let payload = notify.pointee.extra.map { String(cString: $0) } ?? ""
            result.append(PostgresNotification(channel: channel, payload: payload, senderPID: notify.pointee.be_pid))
            PQfreemem(notify)
        }
        return result
    }
}
