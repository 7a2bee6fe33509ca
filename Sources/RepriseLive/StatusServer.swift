import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.0 server for `GET /metrics` (Prometheus text) and `GET /health` (JSON).
/// Read-only by construction: no endpoint changes state. Binds 127.0.0.1 unless told otherwise,
/// and runs on its own thread, never on the cooperative pool.
public final class StatusServer: Sendable {
    public let port: UInt16
    private let descriptor: Int32
    private let metrics: MetricsRegistry
    private let healthyWithin: Double
    private let stopped = Atomic<Bool>(false)

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Listens on `host:port` (port 0 picks a free port; see `port`).
    public init(host: String = "127.0.0.1", port: UInt16, metrics: MetricsRegistry, healthyWithinSeconds: Double = 30) throws {
        self.metrics = metrics
        self.healthyWithin = healthyWithinSeconds
        let socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socketDescriptor >= 0 else { throw StartError(description: "cannot create a socket for the status server") }
        var reuse: Int32 = 1
        setsockopt(socketDescriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(socketDescriptor)
            throw StartError(description: "status server: '\(host)' is not an IPv4 address")
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(socketDescriptor, 16) == 0 else {
            close(socketDescriptor)
            throw StartError(description: "status server: cannot listen on \(host):\(port) (errno \(errno))")
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketDescriptor, $0, &length) }
        }
        descriptor = socketDescriptor
        self.port = UInt16(bigEndian: address.sin_port)
        // A queue of its own: the blocking accept() occupies one of its threads, never the cooperative pool's.
        DispatchQueue(label: "reprise.status-server").async { [self] in self.serve() }
    }

    public func stop() {
        stopped.store(true, ordering: .releasing)
        shutdown(descriptor, Int32(SHUT_RDWR))
        close(descriptor)
    }

    private func serve() {
        while !stopped.load(ordering: .acquiring) {
            let client = accept(descriptor, nil, nil)
            guard client >= 0 else {
                if stopped.load(ordering: .acquiring) { return }
                continue
            }
            handle(client)
            close(client)
        }
    }

    private func handle(_ client: Int32) {
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 2048)
        let count = recv(client, &buffer, buffer.count, 0)
        guard count > 0 else { return }
        let request = String(decoding: buffer[0..<count], as: UTF8.self)
        let line = request.split(separator: "\r\n", maxSplits: 1).first.map(String.init) ?? ""
        let parts = line.split(separator: " ")
        let (status, type, body): (String, String, String)
        if parts.count >= 2, parts[0] == "GET", parts[1] == "/metrics" {
            (status, type, body) = ("200 OK", "text/plain; version=0.0.4", metrics.prometheusText())
        } else if parts.count >= 2, parts[0] == "GET", parts[1] == "/health" {
            let age = metrics.secondsSinceHeartbeat
            let healthy = age <= healthyWithin
            (status, type, body) = (
                healthy ? "200 OK" : "503 Service Unavailable", "application/json",
                "{\"status\":\"\(healthy ? "ok" : "stalled")\",\"seconds_since_progress\":\(Int(age))}\n"
            )
        } else if parts.count >= 1, parts[0] != "GET" {
            (status, type, body) = ("405 Method Not Allowed", "text/plain", "read-only: GET /metrics or /health\n")
        } else {
            (status, type, body) = ("404 Not Found", "text/plain", "GET /metrics or /health\n")
        }
        let response = "HTTP/1.0 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)"
        var bytes = Array(response.utf8)
        var sent = 0
        while sent < bytes.count {
            let written = bytes.withUnsafeMutableBytes { send(client, $0.baseAddress.map { $0 + sent }, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if written <= 0 { return }
            sent += written
        }
    }
}
