import Foundation
import RepriseEngine
import RepriseLive
import Testing

/// SIGTERM to the real `reprise live` process while it drains a backlog: it finishes the chunk in
/// flight, commits, stops its services in order and exits 0; a worker started afterwards
/// continues from the checkpoint, and the tables equal those of a rebuild (nothing lost, nothing
/// applied twice).
extension BrokerSuites {
@Suite("SIGTERM to reprise live (real process, real servers)", .serialized)
struct LiveShutdownTests {
    @Test func sigtermDuringABacklogDrainExitsZeroWithNothingLostOrAppliedTwice() async throws {
        let environment = try await RebuildEnvironment.make()
        let harness = LiveHarness(environment: environment)
        try await environment.seed(events: 200, seed: 94)
        _ = try await environment.engine().rebuild([.file(try streamCounts())])
        // The backlog: appended while no worker runs; `reprise live` drains it chunk by chunk.
        try await environment.seed(events: 10_000, seed: 95)
        let before = try await appliedByActiveBuild(environment)
        let folder = try streamCountsFolder()
        let logPath = folder + "/live.log"
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else { throw TestSetupError("cannot create \(logPath)") }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))

        let process = Process()
        process.executableURL = URL(fileURLWithPath: RebuildEnvironment.repriseBinary())
        process.arguments = [
            "live", "stream_counts", "--projections-dir", folder, "--store-schema", environment.storeSchema.schema,
            "--exchange", harness.exchange, "--queue", harness.queue, "--chunk-size", "50", "--metrics-port", "0", "--log-format", "json",
        ]
        var variables = ProcessInfo.processInfo.environment
        for (key, value) in environment.processVariables { variables[key] = value }
        variables["REPRISE_AMQP_URL"] = TestServers.amqpURL
        process.environment = variables
        process.standardOutput = log
        process.standardError = log
        try process.run()

        // Some chunks of the drain are committed: now SIGTERM.
        try await waitUntil("the drain to commit its first chunks") { try await appliedByActiveBuild(environment) > before }
        process.terminate()
        try await waitUntil("reprise live to exit after SIGTERM", limit: .seconds(120)) { !process.isRunning }
        try log.close()
        let lines = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        #expect(process.terminationReason == .exit && process.terminationStatus == 0, "\(lines)")
        // The log says why it stopped and with which exit code, as JSON lines, without passwords.
        #expect(lines.contains(#""event":"live.stopping""#), "\(lines)")
        #expect(lines.contains(#""event":"live.stopped""#) && lines.contains(#""exit_code":"0""#), "\(lines)")
        #expect(!lines.contains("reprise_local_pw"))
        for line in lines.split(separator: "\n") where line.hasPrefix("{") {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "not a JSON line: \(line)")
        }

        // A new worker continues from the committed checkpoint to the head.
        let stop = StopSignal()
        let worker = Task { try await harness.worker(.file(try streamCounts())).run(stop: stop) }
        let expected = try await expectedStreamCounts(environment)
        try await waitUntil("the rest of the backlog to be applied") { try await environment.rows("stream_counts") == expected }
        stop.stop()
        try await worker.value
        // Nothing lost or applied twice: the live tables equal a full rebuild.
        let live = try await environment.rows("stream_counts")
        _ = try await environment.engine().rebuild([.file(try streamCounts())])
        #expect(try await environment.rows("stream_counts") == live)

        await harness.cleanUp()
        try? FileManager.default.removeItem(atPath: folder)
        await environment.tearDown()
    }

    private func appliedByActiveBuild(_ environment: RebuildEnvironment) async throws -> Int64 {
        try await environment.mysql.query(
            "SELECT events_applied FROM reprise_builds WHERE projection = 'stream_counts' AND state = 'active'").int64(0, 0) ?? 0
    }
}
}
