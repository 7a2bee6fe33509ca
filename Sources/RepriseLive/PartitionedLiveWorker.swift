import RepriseEngine
import RepriseEventSource
import RepriseMySQL
import ReprisePostgres

/// Several `reprise live --partitions N` processes sharing the live work.
///
/// The relay stamps every message with its stream's slot; each of the N live partitions owns a
/// range of slots, has its own queue (bound by slot, single active consumer) and its own
/// checkpoint per projection (see `LivePartitions`). Each process:
/// - joins the group (a shared PostgreSQL advisory lock, so members can be counted) and claims
///   free partitions (exclusive advisory locks, one per projection and partition) up to its fair
///   share (`N / members`, one more for the first `N % members` members by session, so the shares
///   add up to N), or `maxPartitions`; a member below its share whose claims find nothing free
///   looks less often (up to every eight polls) until the group changes;
/// - runs one `LiveWorker` per owned partition, each with its own connections, as child tasks of
///   one task group: none outlives `run`;
/// - gives partitions up when more members join (after the current batch is acknowledged), and
///   takes over a dead member's partitions at its next look (its session ended, so its locks went).
/// Per-key order holds because a partition is applied by one worker at a time, in event store
/// order; the queue only says when to look.
public struct PartitionedLiveWorker: Sendable {
    public enum Event: Sendable {
        /// The partitions this process owns now (reported when they change).
        case partitionsOwned([Int], members: Int)
        /// Something one partition's worker reported.
        case partition(Int, LiveWorker.Event)
        /// The PostgreSQL session holding the partitions' locks was lost: every partition's worker
        /// stopped; the process reconnects and claims again.
        case leaderUnavailable(String, attempt: Int)
        /// Another process's partition was silent past the lease: its sessions were ended, so its
        /// partitions can be claimed.
        case fencedSilentOwner(partition: Int, owner: String, silentSeconds: Int)
    }

    public let configuration: LiveWorker.Configuration
    public let partitions: Int
    /// At most this many partitions (nil: the fair share).
    public let maxPartitions: Int?
    /// A partition whose owner applied and looked at nothing for this long is taken from it.
    public let leaseSeconds: Int
    /// Shown in `reprise status` as the owner of this process's partitions.
    public let owner: String
    public let projections: [RunnableProjection]
    public let resolve: @Sendable (String, Int, String) throws -> RunnableProjection?

    public init(
        _ configuration: LiveWorker.Configuration, partitions: Int, maxPartitions: Int? = nil, owner: String, leaseSeconds: Int = 60,
        projections: [RunnableProjection],
        resolve: @escaping @Sendable (String, Int, String) throws -> RunnableProjection? = { _, _, _ in nil }
    ) {
        self.configuration = configuration
        self.partitions = partitions
        self.maxPartitions = maxPartitions
        self.leaseSeconds = leaseSeconds
        self.owner = owner
        self.projections = projections
        self.resolve = resolve
    }

    /// Runs until `stop` is set; every partition's batch finishes and is acknowledged first.
    /// A lost PostgreSQL session (which held the partitions' locks) stops every partition's
    /// worker, then the process reconnects and claims again.
    public func run(stop: StopSignal, metrics: MetricsRegistry? = nil, report: @escaping @Sendable (Event) -> Void = { _ in }) async throws {
        guard (1...PartitionSlots.count).contains(partitions) else {
            throw EngineError(.invalidRequest, message: "--partitions must be between 1 and \(PartitionSlots.count)")
        }
        try LiveProjectionRunner.requirePartitionKeys(projections)
        guard Duration.seconds(leaseSeconds) >= configuration.pollInterval * 5 else {
            throw EngineError(.invalidRequest, message: "the lease (\(leaseSeconds) s) must be at least five poll intervals: idle owners record their heartbeat once per look")
        }
        let database = try await Self.readModelDatabase(configuration.mysqlURL)
        let membership = LockNames.liveMembers(queue: configuration.queue, database: database, partitions: partitions)
        var outage = 0
        while true {
            // Closed only once every partition's worker has stopped (`coordinate` returns or
            // throws only then): the leader session holds their locks.
            var leader: PostgresConnection?
            var fence: MySQLConnection?
            do {
                let session = try await PostgresConnection.connect(url: configuration.postgresURL)
                leader = session
                let killer = try await MySQLConnection.connect(url: configuration.mysqlURL)
                fence = killer
                try await session.advisoryLockShared(membership)
                outage = 0
                try await coordinate(
                    leader: session, fence: killer, database: database, membership: membership, stop: stop, metrics: metrics, report: report)
                await session.close()
                await killer.close()
                return
            } catch {
                await leader?.close()
                await fence?.close()
                metrics?.set("reprise_live_partitions_owned", 0, help: "Live partitions this process applies.")
                guard TransientFailure.isTransient(error), !stop.isStopped else { throw error }
                outage += 1
                report(.leaderUnavailable("\(error)", attempt: outage))
                await stop.sleep(TransientFailure.backoff(attempt: outage))
                if stop.isStopped { return }
            }
        }
    }

    /// What ended in the coordinator's task group.
    private enum Ended: Sendable {
        case worker(Int, (any Error)?)
        case tick
    }

    /// Claims, runs and hands back partitions until stopped. Each partition's worker is a child
    /// task of one group; this returns or throws only once every worker ended (whatever went
    /// wrong, no worker may go on without the lock this session holds for it).
    private func coordinate(
        leader: PostgresConnection, fence: MySQLConnection, database: String, membership: PostgresAdvisoryLockKey,
        stop: StopSignal, metrics: MetricsRegistry?, report: @escaping @Sendable (Event) -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Ended.self) { group in
            var running: [Int: StopSignal] = [:]
            var stopping: Set<Int> = []
            var lastReported: [Int]? = nil
            var failure: (any Error)?
            var finished: [(Int, (any Error)?)] = []
            var tickPending = false
            var pacing = ClaimPacing()
            do {
                while true {
                    // Partitions whose worker ended: give their locks back; a worker error ends the process.
                    for (number, error) in finished {
                        running[number] = nil
                        stopping.remove(number)
                        try await unlock(number, on: leader, database: database)
                        if let error, !stop.isStopped, failure == nil { failure = error }
                    }
                    finished = []
                    let winding = stop.isStopped || failure != nil
                    if winding {
                        for signal in running.values { signal.stop() }
                        if running.isEmpty { break }
                    } else {
                        try await look(
                            leader: leader, fence: fence, database: database, membership: membership, running: &running, stopping: &stopping,
                            lastReported: &lastReported, pacing: &pacing, start: { number in
                                let signal = StopSignal()
                                let live = worker(number)
                                group.addTask {
                                    do {
                                        try await live.run(stop: signal, metrics: metrics) { report(.partition(number, $0)) }
                                        return .worker(number, nil)
                                    } catch {
                                        return .worker(number, error)
                                    }
                                }
                                return signal
                            }, metrics: metrics, report: report)
                    }
                    // Until a worker ends, or the next look.
                    if !tickPending {
                        tickPending = true
                        let interval = winding ? .milliseconds(200) : configuration.pollInterval
                        group.addTask {
                            await stop.sleep(interval)
                            return .tick
                        }
                    }
                    switch try await group.next() {
                    case .tick?: tickPending = false
                    case .worker(let number, let error)?: finished.append((number, error))
                    case nil: break
                    }
                }
            } catch {
                // Stop every worker gently (it finishes and acknowledges its batch), then wait for all.
                for signal in running.values { signal.stop() }
                while (try? await group.next()) != nil {}
                throw error
            }
            group.cancelAll()  // a pending tick
            _ = try? await leader.advisoryUnlockShared(membership)
            if let failure { throw failure }
        }
    }

    /// One look: fences silent owners off, and claims or hands back partitions to reach the fair share.
    private func look(
        leader: PostgresConnection, fence: MySQLConnection, database: String, membership: PostgresAdvisoryLockKey,
        running: inout [Int: StopSignal], stopping: inout Set<Int>, lastReported: inout [Int]?, pacing: inout ClaimPacing, start: (Int) -> StopSignal,
        metrics: MetricsRegistry?, report: @escaping @Sendable (Event) -> Void
    ) async throws {
        metrics?.heartbeat()
        // A frozen member keeps its sessions and so its partitions: past the lease, end them.
        for silent in try await LivePartitions.expireSilentOwners(
            projections: projections.map(\.definition.name), count: partitions, skip: Set(running.keys), leaseSeconds: leaseSeconds,
            database: database, mysql: fence, postgres: leader)
        {
            report(.fencedSilentOwner(partition: silent.partition, owner: silent.owner, silentSeconds: Int(silent.silentSeconds)))
        }
        let (rank, count) = try await leader.advisoryLockHolderRank(membership, shared: true)
        let members = max(1, count)
        if members != pacing.lastMembers {
            pacing = ClaimPacing(lastMembers: members)
        }
        let target = LivePartitions.fairShare(partitions: partitions, members: members, rank: rank, maxPartitions: maxPartitions)
        let active = running.keys.filter { !stopping.contains($0) }.sorted()
        if active.count > target {
            // Newcomers joined: give the highest partitions back after their current batch.
            for number in active.suffix(active.count - target) {
                running[number]?.stop()
                stopping.insert(number)
            }
        } else if active.count < target, ContinuousClock.now >= pacing.nextClaim {
            // Members start claiming at different places, so they rarely race for one partition.
            let offset = Int(UInt(bitPattern: owner.hashValue) % UInt(partitions))
            let order = (0..<partitions).map { ($0 + offset) % partitions }
            var owned = active.count
            for number in order where owned < target && running[number] == nil {
                if try await claim(number, on: leader, database: database) {
                    running[number] = start(number)
                    owned += 1
                }
            }
            // Nothing free: the surplus is released after its current batch, or a member is
            // frozen until its lease ends; either way, no need to try every poll.
            pacing.fruitlessClaims = owned == active.count ? min(pacing.fruitlessClaims + 1, 3) : 0
            pacing.nextClaim = ContinuousClock.now + configuration.pollInterval * (1 << pacing.fruitlessClaims) - configuration.pollInterval
        }
        let nowOwned = running.keys.filter { !stopping.contains($0) }.sorted()
        if nowOwned != lastReported {
            lastReported = nowOwned
            metrics?.set("reprise_live_partitions_owned", Double(nowOwned.count), help: "Live partitions this process applies.")
            report(.partitionsOwned(nowOwned, members: members))
        }
    }

    /// How often a member below its share tries to claim: claim attempts that found nothing free
    /// back off until the group changes.
    struct ClaimPacing {
        var lastMembers = 0
        var fruitlessClaims = 0
        var nextClaim = ContinuousClock.now
    }

    /// The worker of partition `number`.
    private func worker(_ number: Int) -> LiveWorker {
        var worker = configuration
        worker.partition = LiveProjectionRunner.Partition(number: number, count: partitions, owner: owner)
        return LiveWorker(worker, projections: projections, resolve: resolve)
    }

    /// Takes partition `number` for every projection, or none of them.
    private func claim(_ number: Int, on leader: PostgresConnection, database: String) async throws -> Bool {
        var taken: [PostgresAdvisoryLockKey] = []
        for name in projections.map(\.definition.name).sorted() {
            let key = LivePartitions.ownerLockKey(projection: name, database: database, number: number, count: partitions)
            guard try await leader.tryAdvisoryLock(key) else {
                for held in taken { try await leader.advisoryUnlock(held) }
                return false
            }
            taken.append(key)
        }
        return true
    }

    private func unlock(_ number: Int, on leader: PostgresConnection, database: String) async throws {
        for name in projections.map(\.definition.name) {
            try await leader.advisoryUnlock(LivePartitions.ownerLockKey(projection: name, database: database, number: number, count: partitions))
        }
    }


    static func readModelDatabase(_ mysqlURL: String) async throws -> String {
        let connection = try await MySQLConnection.connect(url: mysqlURL)
        let database = try await connection.query("SELECT DATABASE()").string(0, 0) ?? ""
        await connection.close()
        return database
    }
}
