import Logging

// The workers report what they do as events; these write each event as one log line through the
// `Logger` the caller gives (library code never bootstraps a handler). Metadata keys follow
// DESIGN.md's vocabulary: projection, build, position, partition, stream.

extension LiveWorker.Event {
    /// Logs the event; a partition's worker adds its partition number.
    public func log(to logger: Logger, partition: Int? = nil) {
        var logger = logger
        if let partition { logger[metadataKey: "partition"] = "\(partition)" }
        switch self {
        case .caughtUp(let events):
            logger.info("live.caught_up", metadata: ["events": "\(events)"])
        case .applied(let projection, let events, let messages, let redelivered, let seconds):
            logger.info("live.applied", metadata: [
                "projection": "\(projection)", "events": "\(events)", "messages": "\(messages)",
                "redelivered": "\(redelivered)", "seconds": "\(seconds)",
            ])
        case .followedNewBuild(let projection, let from, let to):
            logger.info("live.followed_new_build", metadata: ["projection": "\(projection)", "from_build": "\(from)", "build": "\(to)"])
        case .parked(let projection, let stream, let position, let error):
            logger.error("live.parked", metadata: ["projection": "\(projection)", "stream": "\(stream)", "position": "\(position)", "error": "\(error)"])
        case .released(let projection, let stream):
            logger.info("live.released", metadata: ["projection": "\(projection)", "stream": "\(stream)"])
        case .retrying(let error, let attempt):
            logger.warning("live.retrying", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
        case .brokerUnavailable(let error):
            logger.warning("live.broker_unavailable", metadata: ["error": "\(error)"])
        case .storeUnavailable(let error, let attempt):
            logger.warning("live.store_unavailable", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
        }
    }
}

extension PartitionedLiveWorker.Event {
    public func log(to logger: Logger, partitions: Int) {
        switch self {
        case .partitionsOwned(let owned, let members):
            logger.info("live.partitions", metadata: ["owned": "\(owned.map(String.init).joined(separator: ","))", "of": "\(partitions)", "members": "\(members)"])
        case .partition(let number, let event):
            event.log(to: logger, partition: number)
        case .leaderUnavailable(let error, let attempt):
            logger.warning("live.partitions_lost", metadata: ["error": "\(error)", "attempt": "\(attempt)"])
        case .fencedSilentOwner(let partition, let owner, let seconds):
            logger.warning("live.lease_expired", metadata: ["partition": "\(partition)", "owner": "\(owner)", "silent_seconds": "\(seconds)"])
        }
    }
}

extension OutboxRelay.Event {
    public func log(to logger: Logger, shares: Int) {
        switch self {
        case .standingBy:
            logger.info("relay.standby", metadata: ["reason": "another relay holds the lock"])
        case .active:
            logger.info("relay.active")
        case .sharesOwned(let owned):
            logger.info("relay.shares", metadata: ["owned": "\(owned.map(String.init).joined(separator: ","))", "of": "\(shares)"])
        case .published(let count, let last, let returned):
            logger.info("relay.published", metadata: ["count": "\(count)", "position": "\(last)", "unroutable": "\(returned)"])
        case .brokerUnavailable(let message, let retry):
            let milliseconds = retry.components.seconds * 1000 + retry.components.attoseconds / 1_000_000_000_000_000
            logger.warning("relay.broker_unavailable", metadata: ["error": "\(message)", "retry_ms": "\(milliseconds)"])
        case .cleanedUp(let rows):
            logger.info("relay.cleanup", metadata: ["deleted": "\(rows)"])
        }
    }
}
