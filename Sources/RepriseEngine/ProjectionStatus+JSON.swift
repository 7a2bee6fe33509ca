import RepriseSupport

extension ProjectionStatus {
    /// The JSON object `reprise status --json` prints for this projection (and `/status` serves).
    public var jsonText: String {
        let quote = JSONText.quoted
        func build(_ build: ProjectionStatus.Build) -> String {
            "{\"build\":\(build.buildID),\"version\":\(build.version),\"state\":\(quote(build.state)),\"events_applied\":\(build.eventsApplied),"
                + "\"rounds\":\(build.rounds),\"started_at\":\(quote(build.startedAt)),\"updated_at\":\(quote(build.updatedAt)),"
                + "\"last_error\":\(build.lastError.map(quote) ?? "null"),\"partitions\":[" + build.partitions.map { partition in
                    "{\"partition\":\(partition.number),\"state\":\(quote(partition.state.rawValue)),\"owner\":\(partition.owner.map(quote) ?? "null"),"
                        + "\"events_applied\":\(partition.eventsApplied),\"position\":\(partition.roundPosition),"
                        + "\"seconds_since_heartbeat\":\(partition.secondsSinceHeartbeat.map { Self.oneDecimal($0) } ?? "null")}"
                }.joined(separator: ",") + "]}"
        }
        return "{\"projection\":\(quote(projection)),\"active\":\(active.map(build) ?? "null"),"
            + "\"building\":[\(building.map(build).joined(separator: ","))],\"retired\":[\(retired.map(build).joined(separator: ","))],"
            + "\"lag_events\":\(lagEvents.map(String.init) ?? "null"),\"lag_seconds\":\(lagSeconds.map { String($0) } ?? "null"),"
            + "\"parked_streams\":\(parkedStreams),\"live_partitions\":[" + livePartitions.map { partition, lag in
                "{\"partition\":\(partition.number),\"of\":\(partition.count),\"owner\":\(partition.owner.map(quote) ?? "null"),"
                    + "\"events_applied\":\(partition.eventsApplied),\"position\":\(partition.roundPosition),\"lag_events\":\(lag.map(String.init) ?? "null"),"
                    + "\"seconds_since_heartbeat\":\(partition.secondsSinceHeartbeat.map { Self.oneDecimal($0) } ?? "null")}"
            }.joined(separator: ",") + "]}"
    }

    /// The JSON array of `reprise status --json`.
    public static func jsonText(_ statuses: [ProjectionStatus]) -> String {
        "[" + statuses.map(\.jsonText).joined(separator: ",") + "]"
    }

    /// `%.1f` without Foundation: 12.34 -> "12.3".
    static func oneDecimal(_ value: Double) -> String {
        let tenths = (value * 10).rounded()
        let sign = tenths < 0 ? "-" : ""
        let magnitude = Int64(abs(tenths))
        return "\(sign)\(magnitude / 10).\(magnitude % 10)"
    }
}
