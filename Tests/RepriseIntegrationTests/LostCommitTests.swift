import RepriseEngine
import RepriseMySQL
import Testing

/// Lets a fault fire once.
actor FireOnce {
    private var fired = false
    func fire() -> Bool {
        defer { fired = true }
        return !fired
    }
}

@Suite("Faults: a COMMIT whose answer is lost (real servers)")
struct LostCommitTests {
    /// The server committed the chunk but the connection dropped before its answer came back:
    /// the engine finds the checkpoint already at the chunk's end, counts the chunk as done and
    /// goes on, instead of applying it again or stopping with "moved on under us".
    @Test(arguments: [1, 4])
    func aChunkWhoseCommitAnswerIsLostCountsOnceAndTheRebuildGoesOn(chunk: Int) async throws {
        try await RebuildEnvironment.with { environment in
            try await environment.seed(events: 2_000, seed: 350)
            let once = FireOnce()
            var hooks = RebuildHooks()
            hooks.afterCommitStatement = { number in
                if number == chunk, await once.fire() {
                    throw MySQLError(code: .connectionLost, message: "the connection dropped after COMMIT (fault test)")
                }
            }
            let definition = try streamCounts()
            let results = try await environment.engine { $0.chunkSize = 200; $0.fetchSize = 200 }.rebuild([.file(definition)], hooks: hooks)
            try #require(await !once.fire(), "the fault fired")
            // Simulated: the hook throws the error a lost connection gives, on a connection that is fine.
            FaultLedger.record(.simulated, "connection lost after a chunk's COMMIT reached the server")
            try #require(try await environment.rows("stream_counts") == (try await expectedStreamCounts(environment)))
            let handled = try await environment.handledEventCount(definition)
            try #require(results.first?.eventsApplied == handled)
            let recorded = try await environment.mysql.query("SELECT events_applied FROM reprise_builds WHERE state = 'active'").int64(0, 0)
            try #require(recorded == handled, "each event counted once in the checkpoint")
            FaultLedger.record(.recovered, "connection lost after a chunk's COMMIT reached the server")
        }
    }
}
