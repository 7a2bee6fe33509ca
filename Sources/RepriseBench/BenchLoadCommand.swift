import ArgumentParser
import Foundation
import RepriseCommandLine
import RepriseMySQL

#if canImport(Glibc)
import Glibc
#endif

/// Writing new rows two ways in one run: the multi-row upsert the engine uses today
/// (`INSERT … VALUES (…),(…) ON DUPLICATE KEY UPDATE`, `executeBatch`) against a bulk load from
/// memory (`LOAD DATA LOCAL INFILE` through the local-infile callbacks, `loadRows`). The rows
/// look like order_summary's; each path gets a fresh table and the same rows in the same
/// transactions of `--batch-rows` rows.
struct BenchLoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-load",
        abstract: "Benchmark: new rows by multi-row upsert vs by bulk load from memory (LOAD DATA LOCAL INFILE).")

    @OptionGroup var mysql: MySQLOptions

    @Option(help: "Rows to write with each path.")
    var rows = 200_000

    @Option(help: "Rows per transaction (the engine commits a chunk at a time).")
    var batchRows = 10_000

    @Option(help: "Rounds; each round runs both paths on fresh tables, alternating which goes first.")
    var rounds = 2

    @Flag(help: "Print one JSON object instead of the table.")
    var json = false

    static let columns = [
        "order_id", "customer_id", "status", "item_count", "total_cents", "paid_cents", "created_at", "updated_at", "last_position",
    ]
    static let tableDefinition = """
        (order_id VARCHAR(64) NOT NULL, customer_id VARCHAR(64), status VARCHAR(16) NOT NULL DEFAULT 'created',
         item_count INT NOT NULL DEFAULT 0, total_cents BIGINT NOT NULL DEFAULT 0, paid_cents BIGINT NOT NULL DEFAULT 0,
         created_at DATETIME, updated_at DATETIME, last_position BIGINT NOT NULL DEFAULT 0,
         PRIMARY KEY (order_id), KEY (customer_id), KEY (status, created_at)) ENGINE=InnoDB
        """

    /// Deterministic rows shaped like the demo's order_summary rows.
    static func makeRows(_ count: Int) -> [[MySQLValue]] {
        let statuses: [MySQLValue] = ["created", "paid", "shipped", "cancelled"]
        return (0..<count).map { index -> [MySQLValue] in
            let second = index % 86_400
            let time = String(format: "2026-%02d-%02d %02d:%02d:%02d", 1 + index % 12, 1 + index % 28, second / 3600, second / 60 % 60, second % 60)
            return [
                .string(String(format: "ord-%08x-%04d", index &* 2_654_435_761 & 0xFFFF_FFFF, index % 10_000)),
                .string("cus-\(index % 50_000)"), statuses[index % 4], .int(Int64(1 + index % 7)),
                .int(Int64(1_000 + index % 90_000)), .int(Int64(index % 3 == 0 ? 0 : 1_000 + index % 90_000)),
                .string(time), .string(time), .int(Int64(index) * 3 + 1),
            ]
        }
    }

    struct Measurement {
        var seconds = 0.0
        var clientCPUSeconds = 0.0
    }

    func run() async throws {
        try await reportingFailures {
            guard rows > 0, batchRows > 0, rounds > 0 else { throw ValidationError("--rows, --batch-rows and --rounds must be positive") }
            let my = try await MySQLConnection.connect(url: try mysql.resolvedURL())
            let data = Self.makeRows(rows)
            let names = Self.columns.map { MySQLIdentifier.quote($0) }
            let updates = Self.columns.dropFirst().map { "\(MySQLIdentifier.quote($0)) = VALUES(\(MySQLIdentifier.quote($0)))" }
            let prefix = { (table: String) in "INSERT INTO \(MySQLIdentifier.quote(table)) (\(names.joined(separator: ", "))) VALUES" }
            let suffix = "ON DUPLICATE KEY UPDATE " + updates.joined(separator: ", ")
            let stem = "bench_load_\(getpid())"
            var upsert = Measurement(), bulk = Measurement()

            for round in 0..<rounds {
                for path in round % 2 == 0 ? ["upsert", "bulk"] : ["bulk", "upsert"] {
                    let table = "\(stem)_\(path)"
                    try await my.execute("DROP TABLE IF EXISTS \(MySQLIdentifier.quote(table))")
                    try await my.execute("CREATE TABLE \(MySQLIdentifier.quote(table)) \(Self.tableDefinition)")
                    let measured = try await Self.measure {
                        var start = 0
                        while start < data.count {
                            let batch = Array(data[start..<min(start + batchRows, data.count)])
                            try await my.begin()
                            if path == "bulk" {
                                try await my.loadRows(into: table, columns: Self.columns, rows: batch)
                            } else {
                                try await my.executeBatch(prefix: prefix(table), rows: batch, suffix: suffix)
                            }
                            try await my.commit()
                            start += batch.count
                        }
                    }
                    let count = try await my.query("SELECT COUNT(*) FROM \(MySQLIdentifier.quote(table))").int(0, 0)
                    guard count == rows else { throw ValidationError("\(path): \(count ?? -1) rows in the table, \(rows) written") }
                    try await my.execute("DROP TABLE \(MySQLIdentifier.quote(table))")
                    if path == "bulk" {
                        bulk.seconds += measured.seconds; bulk.clientCPUSeconds += measured.clientCPUSeconds
                    } else {
                        upsert.seconds += measured.seconds; upsert.clientCPUSeconds += measured.clientCPUSeconds
                    }
                }
            }
            await my.close()
            let total = Double(rows * rounds)
            let upsertRate = total / upsert.seconds, bulkRate = total / bulk.seconds
            if json {
                Terminal.output(
                    "{\"rows\":\(rows),\"batch_rows\":\(batchRows),\"rounds\":\(rounds),"
                        + "\"upsert_seconds\":\(Self.fixed(upsert.seconds)),\"upsert_client_cpu_seconds\":\(Self.fixed(upsert.clientCPUSeconds)),"
                        + "\"upsert_rows_per_second\":\(Int(upsertRate)),"
                        + "\"bulk_seconds\":\(Self.fixed(bulk.seconds)),\"bulk_client_cpu_seconds\":\(Self.fixed(bulk.clientCPUSeconds)),"
                        + "\"bulk_rows_per_second\":\(Int(bulkRate)),\"ratio\":\(Self.fixed(bulkRate / upsertRate))}")
            } else {
                Terminal.output("new rows like order_summary's: \(rows) rows x \(rounds) rounds, \(batchRows) rows per transaction")
                Terminal.output(Self.line("multi-row upsert (executeBatch)", upsert, total))
                Terminal.output(Self.line("bulk load from memory (loadRows)", bulk, total))
                Terminal.output("bulk load / upsert (rows per second): \(String(format: "%.2f", bulkRate / upsertRate))x")
            }
        }
    }

    static func fixed(_ value: Double) -> String { String(format: "%.3f", value) }

    static func line(_ label: String, _ measurement: Measurement, _ total: Double) -> String {
        label.padding(toLength: 36, withPad: " ", startingAt: 0)
            + String(format: "%8.2f s %10.0f rows/s   client CPU %6.2f s (%.2f µs/row)", measurement.seconds, total / measurement.seconds,
                measurement.clientCPUSeconds, measurement.clientCPUSeconds * 1e6 / total)
    }

    /// Wall time and this process's CPU time (user + system) of `body`.
    static func measure(_ body: () async throws -> Void) async throws -> Measurement {
        let cpuBefore = processCPUSeconds()
        let started = ContinuousClock.now
        try await body()
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Measurement(seconds: seconds, clientCPUSeconds: processCPUSeconds() - cpuBefore)
    }

    static func processCPUSeconds() -> Double {
        var usage = rusage()
        guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return 0 }
        func seconds(_ time: timeval) -> Double { Double(time.tv_sec) + Double(time.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }
}
