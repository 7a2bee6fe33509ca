import Foundation

/// A MariaDB instance of its own (data folder and port) that a test may stop and start without
/// disturbing the tests running beside it on the shared servers. Started by `scripts/services`.
struct PrivateMariaDB {
    let folder: String
    let port: Int

    var environment: [String: String] { ["REPRISE_LOCAL_DIR": folder, "REPRISE_MYSQL_PORT": String(port)] }
    var url: String { "mysql://reprise:reprise_local_pw@127.0.0.1:\(port)/reprise_test" }

    static func start(port: Int) throws -> PrivateMariaDB {
        let server = PrivateMariaDB(folder: "/tmp/reprise-private-mariadb-\(port)-\(getpid())", port: port)
        try server.run("start")
        return server
    }

    func restart() throws {
        try run("stop")
        try run("start")
    }

    func stop() throws { try run("stop") }
    func startAgain() throws { try run("start") }

    func remove() {
        try? run("stop")
        try? FileManager.default.removeItem(atPath: folder)
        try? FileManager.default.removeItem(atPath: "/tmp/reprise-private-mariadb-\(port)-\(getpid()).log")
    }

    private func run(_ command: String) throws {
        // Output to a file and inherited descriptors closed: the server it starts would otherwise
        // hold the test's pipes open forever.
        let log = "/tmp/reprise-private-mariadb-\(port)-\(getpid()).log"
        let outcome = try runProcess(
            "/bin/bash", ["-c", "for fd in /proc/$$/fd/*; do n=${fd##*/}; if [ \"$n\" -gt 2 ]; then eval \"exec $n>&-\"; fi; done 2>/dev/null; bash \"$0\" \"$1\" mariadb >>\"$2\" 2>&1 </dev/null", RebuildEnvironment.repositoryRoot() + "/scripts/services", command, log],
            environment: environment)
        guard outcome.status == 0 else {
            throw TestSetupError("private MariaDB \(command) failed: \((try? String(contentsOfFile: log, encoding: .utf8)) ?? "")")
        }
    }
}
