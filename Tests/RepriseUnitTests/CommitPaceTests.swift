@testable import RepriseEngine
import Testing

/// How long commits take against gathering, which sets the resident size a rebuild's bounds imply.
@Suite("The commits' pace (no server)")
struct CommitPaceTests {
    @Test func untimedCommitsCountAsLongAsTheirGathering() {
        #expect(CommitPace().ratio == 1)
    }

    @Test func theRatioFollowsTheCommitsHalfFromEachNewChunk() {
        var pace = CommitPace()
        pace.record(gathering: .seconds(2), committing: .seconds(1))
        #expect(abs(pace.ratio - 0.75) < 1e-9, "half of 1 and half of 0.5")
        for _ in 0..<30 { pace.record(gathering: .seconds(2), committing: .milliseconds(1_200)) }
        #expect(abs(pace.ratio - 0.6) < 1e-6)
        pace.record(gathering: .seconds(1), committing: .seconds(1))
        #expect(abs(pace.ratio - 0.8) < 1e-6, "a slow commit counts at once, not all the way")
    }

    @Test func chunksGatheredInAnInstantDoNotMoveThePace() {
        var pace = CommitPace()
        pace.record(gathering: .milliseconds(2), committing: .seconds(1))
        #expect(pace.ratio == 1)
    }
}
