import RepriseSupport

/// How long a chunk's commit takes against the time the handlers took to gather it.
///
/// While a chunk commits, the handlers gather the next one, so the two chunks' rows are held
/// together until the commit ends, when the chunk being gathered holds about `ratio` of a chunk.
/// Measured on the three samples (docs/throughput-10m.md): 0.55-0.7 at 1M and 10M events alike.
struct CommitPace: Sendable {
    /// Commit time over gathering time, smoothed over the last chunks. Starts at 1 (a commit as
    /// long as its gathering) until a commit was timed.
    private(set) var ratio: Double = 1

    /// A chunk's handlers took `gathering` and its commit took `committing`. Chunks gathered in
    /// under 10 ms (a catch-up's last events) say nothing about the pace and are ignored.
    mutating func record(gathering: Duration, committing: Duration) {
        let gathered = gathering.seconds, committed = committing.seconds
        guard gathered >= 0.01, committed >= 0 else { return }
        // Half from this chunk, half from those before: a slow moment counts at once, one odd
        // chunk does not count all the way.
        ratio = (ratio + committed / gathered) / 2
    }
}
