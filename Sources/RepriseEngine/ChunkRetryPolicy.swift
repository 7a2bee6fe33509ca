/// Decides whether a chunk whose attempt failed is applied again, and after which wait.
///
/// Running a chunk again never applies it twice: its rows and checkpoint commit in one
/// transaction, and an attempt whose COMMIT answer was lost is recognized from the checkpoint
/// before the chunk is applied again. So the policy only weighs whether the failure can pass.
///
/// ```swift
/// let policy = ChunkRetryPolicy(group: group)
/// if case .retry(let wait) = policy.decide(error, failedAttempts: 1) { try await Task.sleep(for: wait) }
/// ```
struct ChunkRetryPolicy: Sendable {
    enum Decision: Equatable, Sendable {
        case retry(after: Duration)
        case stop
    }

    /// Attempts per chunk: with the backoff, about 25 s for a server to come back.
    var maxAttempts = 10
    /// Whether a failed chunk may run again in place. Not for live tables: a reconnect loses the
    /// named locks (projection or partition apply lock) that keep a swap, or a new owner after a
    /// lease expired, away. The live worker reopens its runner instead, takes the locks again and
    /// resumes from the committed checkpoints.
    var retriesInPlace: Bool
    /// Whether a failure passes when the server comes back: by default what the wrappers' errors
    /// say of themselves (a lost or refused connection, a deadlock, a lock wait timeout); a
    /// handler's error or a checkpoint that moved on under us stops.
    var isTransient: @Sendable (any Error) -> Bool

    init(retriesInPlace: Bool, maxAttempts: Int = 10, isTransient: @escaping @Sendable (any Error) -> Bool = TransientFailure.isTransient) {
        self.retriesInPlace = retriesInPlace
        self.maxAttempts = maxAttempts
        self.isTransient = isTransient
    }

    /// The policy for the chunks of a group of builds.
    init(group: [ActiveBuild]) {
        self.init(retriesInPlace: !group.contains(where: \.writesLiveTables))
    }

    /// What to do after `failedAttempts` attempts of a chunk failed, the last one with `error`.
    func decide(_ error: any Error, failedAttempts: Int) -> Decision {
        guard retriesInPlace, failedAttempts < maxAttempts, isTransient(error) else { return .stop }
        return .retry(after: TransientFailure.backoff(attempt: failedAttempts))
    }
}
