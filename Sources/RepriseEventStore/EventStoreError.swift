import ReprisePostgres

/// Errors of the event store API.
public enum EventStoreError: Error, Sendable, CustomStringConvertible {
    /// A configured table or schema name is not a plain identifier.
    case invalidIdentifier(what: String, name: String)
    /// A table of that name exists with columns that are not the ones Reprise creates.
    case incompatibleTable(table: String, problems: [String])
    /// Optimistic concurrency: the stream is not at the version the writer expected.
    case wrongExpectedVersion(streamID: String, expected: ExpectedVersion, actual: Int64)
    /// An append with no events, an empty stream id or type.
    case invalidAppend(streamID: String, reason: String)
    /// A statement failed.
    case database(PostgresError)

    public var description: String {
        switch self {
        case .invalidIdentifier(let what, let name):
            "invalid \(what) name '\(name)': use letters, digits and underscores (at most 63), not starting with a digit"
        case .incompatibleTable(let table, let problems):
            "table \(table) exists but is not a Reprise event store table: \(problems.joined(separator: "; ")). "
                + "Choose other names (--events-table, --outbox-table) or map your own schema as a source."
        case .wrongExpectedVersion(let streamID, let expected, let actual):
            "stream '\(streamID)' is at version \(actual), but the append expected \(expected)"
        case .invalidAppend(let streamID, let reason):
            "cannot append to stream '\(streamID)': \(reason)"
        case .database(let error):
            "\(error)"
        }
    }
}

/// What a writer expects a stream's version to be before its append.
public enum ExpectedVersion: Sendable, Hashable, CustomStringConvertible {
    /// No check.
    case any
    /// The stream must not exist yet.
    case noStream
    /// The stream's last event must have this version.
    case exact(Int64)

    public var description: String {
        switch self {
        case .any: "any version"
        case .noStream: "no stream"
        case .exact(let version): "version \(version)"
        }
    }
}
