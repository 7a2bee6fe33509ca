import RepriseAMQP
import RepriseMySQL
import ReprisePostgres

#if canImport(Glibc)
import Glibc
#endif

/// The real servers the integration tests talk to: `scripts/services start` runs them and
/// `scripts/services env` exports these variables. The defaults are that script's defaults,
/// so a missing variable never silently skips a test: it fails with a message saying what to start.
enum TestServers {
    static var postgresURL: String { env("REPRISE_TEST_POSTGRES_URL") ?? "postgresql://reprise:reprise_local_pw@127.0.0.1:55432/reprise_test" }
    static var mysqlURL: String { env("REPRISE_TEST_MYSQL_URL") ?? "mysql://reprise:reprise_local_pw@127.0.0.1:53306/reprise_test" }
    static var amqpURL: String { env("REPRISE_TEST_AMQP_URL") ?? "amqp://reprise:reprise_local_pw@127.0.0.1:55672/%2F" }

    static let hint = "is the server running? start the local servers with: scripts/services start"

    static func postgres() async throws -> PostgresConnection {
        do { return try await PostgresConnection.connect(url: postgresURL) } catch { throw TestSetupError("PostgreSQL: \(error) — \(hint)") }
    }

    static func mysql() async throws -> MySQLConnection {
        do { return try await MySQLConnection.connect(url: mysqlURL) } catch { throw TestSetupError("MySQL: \(error) — \(hint)") }
    }

    static func amqp() async throws -> AMQPConnection {
        do { return try await AMQPConnection.connect(url: amqpURL) } catch { throw TestSetupError("RabbitMQ: \(error) — \(hint)") }
    }

    /// The PostgreSQL test URL pointed at another database of the same server.
    static func postgresURL(database: String) -> String {
        let url = postgresURL
        guard let at = url.lastIndex(of: "@"), let slash = url[at...].firstIndex(of: "/") else { return url }
        let end = url[slash...].firstIndex(of: "?") ?? url.endIndex
        return String(url[...slash]) + database + String(url[end...])
    }

    /// A name no other test (or earlier run) uses.
    static func uniqueName(_ prefix: String) -> String {
        "\(prefix)_\(getpid())_\(UInt32.random(in: 0...UInt32.max))"
    }

    /// The URL with its password replaced.
    static func withPassword(_ url: String, _ password: String) -> String {
        withCredentials(url, user: nil, password: password)
    }

    /// The URL with its user (nil: kept) and password replaced.
    static func withCredentials(_ url: String, user: String?, password: String) -> String {
        guard let schemeEnd = url.firstRange(of: "://"), let at = url.lastIndex(of: "@") else { return url }
        let credentials = url[schemeEnd.upperBound..<at]
        let user = user ?? String(credentials.split(separator: ":", maxSplits: 1).first ?? "")
        return String(url[..<schemeEnd.upperBound]) + user + ":" + password + String(url[at...])
    }

    /// The URL pointed at another port (and host 127.0.0.1).
    static func withPort(_ url: String, _ port: UInt16) -> String {
        guard let at = url.lastIndex(of: "@") else { return url }
        let rest = url[url.index(after: at)...]
        let pathStart = rest.firstIndex(of: "/") ?? rest.endIndex
        return String(url[...at]) + "127.0.0.1:\(port)" + String(rest[pathStart...])
    }

    private static func env(_ name: String) -> String? {
        getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
    }
}

struct TestSetupError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A TCP listener on 127.0.0.1 that completes handshakes (through the kernel backlog) but never
/// says a word: the shape of a hung server, for connect-timeout tests.
final class SilentServer {
    let port: UInt16
    private let descriptor: Int32

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestSetupError("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(descriptor, 16) == 0 else { close(descriptor); throw TestSetupError("bind/listen failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        self.descriptor = descriptor
        port = UInt16(bigEndian: address.sin_port)
    }

    deinit { close(descriptor) }
}

/// A TCP port on 127.0.0.1 where nothing listens.
func closedPort() throws -> UInt16 {
    let server = try SilentServer()
    return server.port  // closed again when `server` is released
}

/// The resident set size of this process, from /proc.
func residentMemoryBytes() -> Int {
    guard let file = fopen("/proc/self/statm", "r") else { return 0 }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 256)
    guard fgets(&buffer, 256, file) != nil else { return 0 }
    let line = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let fields = line.split(separator: " ")
    guard fields.count >= 2, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
