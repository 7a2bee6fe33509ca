@testable import RepriseEngine
import RepriseSupport
import Testing

@Suite("Chunk retry policy (no server)")
struct RetryPolicyTests {
    struct Passing: Error {}
    struct Lasting: Error {}
    /// A wrapper's error that says it lost its session.
    struct Lost: ConnectionLossReporting {
        var isConnectionLoss: Bool { true }
    }

    private func policy(inPlace: Bool = true, maxAttempts: Int = 10) -> ChunkRetryPolicy {
        ChunkRetryPolicy(retriesInPlace: inPlace, maxAttempts: maxAttempts) { $0 is Passing }
    }

    @Test func aTransientFailureIsRetriedWithAGrowingWait() {
        let policy = policy()
        #expect(policy.decide(Passing(), failedAttempts: 1) == .retry(after: .milliseconds(250)))
        #expect(policy.decide(Passing(), failedAttempts: 2) == .retry(after: .milliseconds(500)))
        #expect(policy.decide(Passing(), failedAttempts: 9) == .retry(after: .seconds(4)))
    }

    @Test func aFailureThatDoesNotPassStopsAtOnce() {
        #expect(policy().decide(Lasting(), failedAttempts: 1) == .stop)
        #expect(policy().decide(CancellationError(), failedAttempts: 1) == .stop)
    }

    @Test func attemptsEndAtTheLimit() {
        let policy = policy(maxAttempts: 3)
        #expect(policy.decide(Passing(), failedAttempts: 2) != .stop)
        #expect(policy.decide(Passing(), failedAttempts: 3) == .stop)
    }

    @Test func chunksOfLiveTablesAreNeverRetriedInPlace() {
        #expect(policy(inPlace: false).decide(Passing(), failedAttempts: 1) == .stop)
    }

    @Test func byDefaultWhatAnErrorSaysOfItselfDecides() {
        let policy = ChunkRetryPolicy(retriesInPlace: true)
        #expect(policy.decide(Lost(), failedAttempts: 1) == .retry(after: .milliseconds(250)))
        // A code projection's handler that failed on a lost connection: the chunk runs again.
        #expect(policy.decide(EngineError(.handlerFailed, projection: "p", message: "lost", underlying: Lost()), failedAttempts: 1) != .stop)
        #expect(policy.decide(EngineError(.handlerFailed, projection: "p", message: "boom"), failedAttempts: 1) == .stop)
        #expect(policy.decide(Passing(), failedAttempts: 1) == .stop)
    }
}
