import RepriseEventSource
import RepriseProjection
import ReprisePostgres

/// Reads events of one round from the event source through a server-side cursor.
///
/// A round is "visible in `target`, not visible in `base`, after `afterPosition`", in position
/// order. With a transaction id column, visibility is decided by `pg_visible_in_snapshot`, so the
/// answer is the same on every run, whatever committed since; with a settle window, bounds are
/// settled positions (see `SafeHeadTracker`).
package struct EventStoreReader: Sendable {
    package let connection: PostgresConnection
    package let source: ResolvedEventSource
    /// Set for settle-window sources: remembers head observations across calls.
    let settle: SafeHeadTracker?

    package init(connection: PostgresConnection, source: ResolvedEventSource) {
        self.connection = connection
        self.source = source
        if case .settleWindow(let milliseconds) = source.source.safeHead {
            settle = SafeHeadTracker(window: .milliseconds(milliseconds))
        } else {
            settle = nil
        }
    }

    /// The current bound: a snapshot (`xmin:xmax:xip,...`) taken in its own statement, or the settled head.
    package func currentSnapshot() async throws -> String {
        guard let text = try await connection.query(source.currentBoundQuery).string(0, 0) else {
            throw EngineError(.database, message: "the event source's current bound query returned nothing")
        }
        guard let settle else { return text }
        guard let head = Int64(text) else { throw EngineError(.database, message: "the event source's head is not a position: \(text)") }
        return ResolvedEventSource.Bound.head(try await settle.settledHead(observed: head)).text
    }

    struct Round: Sendable {
        var eventTypes: [String]
        var baseSnapshot: String?
        var targetSnapshot: String
        var afterPosition: Int64
        var readMetadata: Bool
        /// Only the events of one partition (a partitioned rebuild's first round).
        var partition: PartitionSpec?
        /// What the round's handlers can read of the envelope (`envelopeReads`).
        var envelope = EnvelopeReads.all
    }

    /// The envelope fields a round's handlers can read, besides position, version and type.
    struct EnvelopeReads: Sendable {
        /// The transaction id, event id and time; when false they are NULL in the cursor's rows
        /// (about a fifth of its bytes, all decrypted over TLS and copied by libpq).
        var text: Bool
        /// The stream id, decoded per event when true; when false an event decodes it from its
        /// batch only if it is read.
        var streamID: Bool
        static let all = EnvelopeReads(text: true, streamID: true)
    }

    /// What the handlers of `group` can read: a Swift projection anything, a projection file only
    /// what its expressions name (every field a compiled projection reads is in its field table),
    /// and the stream id also where parked streams are left out (`ChunkApplier.indexes`).
    static func envelopeReads(_ group: [ActiveBuild]) -> EnvelopeReads {
        var reads = EnvelopeReads(text: false, streamID: false)
        for build in group {
            guard let declarative = build.declarative else { return .all }
            for reference in declarative.fields.references {
                if reference == .envelope(.eventID) || reference == .envelope(.recordedAt) { reads.text = true }
                if reference == .envelope(.streamID) { reads.streamID = true }
            }
            if !build.parkedStreams.isEmpty { reads.streamID = true }
        }
        return reads
    }

    /// The events of one partition: whose key hashes into `hashes` (modulo `modulus`); the key
    /// field per stored type names.
    package struct PartitionSpec: Sendable {
        var keys: [(storedTypes: [String], field: EventSource.PartitionKeyField)]
        var number: Int
        var count: Int
        var modulus: Int
        var hashes: ClosedRange<Int>

        /// Partition `number` of a partitioned rebuild: one remainder of `count`.
        static func rebuild(keys: [(storedTypes: [String], field: EventSource.PartitionKeyField)], number: Int, count: Int) -> PartitionSpec {
            PartitionSpec(keys: keys, number: number, count: count, modulus: count, hashes: number...number)
        }

        /// Live partition `number` of `count`: a range of the relay's slots.
        package static func live(keys: [(storedTypes: [String], field: EventSource.PartitionKeyField)], number: Int, count: Int) -> PartitionSpec {
            PartitionSpec(keys: keys, number: number, count: count, modulus: PartitionSlots.count, hashes: PartitionSlots.range(partition: number, of: count))
        }

        /// The SQL condition and its parameters, numbered from `firstParameter`.
        func filter(_ source: ResolvedEventSource, firstParameter: Int) -> (String, [PostgresValue]) {
            source.partitionFilter(keys: keys, modulus: modulus, hashes: hashes, firstParameter: firstParameter)
        }
    }

    private func whereClause(_ round: Round) throws -> (String, [PostgresValue]) {
        var (clause, parameters) = try Self.mapped { () throws(EventSourceError) in
            try source.roundFilter(
                storedTypes: source.source.storedNames(for: round.eventTypes), base: round.baseSnapshot, target: round.targetSnapshot,
                afterPosition: round.afterPosition)
        }
        if let partition = round.partition {
            let (filter, more) = partition.filter(source, firstParameter: parameters.count + 1)
            clause += " AND " + filter
            parameters += more
        }
        return (clause, parameters)
    }

    /// A mapping error (a checkpoint of the other safe-head strategy, ...) as the engine's error.
    static func mapped<T>(_ body: () throws(EventSourceError) -> T) throws(EngineError) -> T {
        do { return try body() } catch { throw EngineError(.invalidRequest, message: error.description) }
    }

    /// How many events the round holds (for progress).
    func count(_ round: Round) async throws -> Int64 {
        let (clause, parameters) = try whereClause(round)
        return try await connection.query("SELECT count(*) FROM \(source.qualifiedTable) WHERE \(clause)", parameters).int64(0, 0) ?? 0
    }

    /// Streams the round in batches of `fetchSize` rows; `body` gets each batch decoded.
    func read(
        _ round: Round, fetchSize: Int, decoder: JSONFieldDecoder, metadataDecoder: JSONFieldDecoder, timings: EngineTimings,
        isolation: isolated (any Actor)? = #isolation,
        _ body: ([ProjectionEvent]) async throws -> Void
    ) async throws {
        let (clause, parameters) = try whereClause(round)
        let columns = source.envelopeColumns(metadata: round.readMetadata, envelopeText: round.envelope.text)
        let streamIDs = round.envelope.streamID
        let sql = "SELECT \(columns) FROM \(source.qualifiedTable) WHERE \(clause) ORDER BY \(source.position)"
        let reader = self
        try await connection.withCursor(sql, parameters, fetchSize: fetchSize) { cursor in
            var batches = cursor.makeAsyncIterator()
            // Decoding runs one batch ahead, off the handlers' thread (the second core): while
            // `body` applies a batch, the next one is decoded. It is always awaited before the
            // cursor's scope ends, also when `body` throws.
            var decoding: Task<[ProjectionEvent], any Error>?
            do {
                while true {
                    let started = ContinuousClock.now
                    guard let batch = try await batches.next() else { break }
                    timings.add(.read, ContinuousClock.now - started)
                    let next = Task {
                        try await reader.decodeConcurrently(
                            batch, decoder: decoder, metadataDecoder: metadataDecoder, streamIDs: streamIDs, timings: timings)
                    }
                    if let previous = decoding {
                        decoding = nil
                        try await body(try await previous.value)
                    }
                    decoding = next
                }
                if let last = decoding {
                    decoding = nil
                    try await body(try await last.value)
                }
            } catch {
                _ = try? await decoding?.value
                throw error
            }
        }
    }

    /// One stream's events from `position` on, visible in `bound`, decoded whole.
    /// With `partition`, only the stream's events of that partition.
    package func streamEvents(_ streamID: String, from position: Int64, visibleIn bound: String, partition: PartitionSpec? = nil) async throws -> [ProjectionEvent] {
        var (clause, parameters) = try Self.mapped { () throws(EventSourceError) in try source.streamFilter(streamID: streamID, fromPosition: position, visibleIn: bound) }
        if let partition {
            let (filter, more) = partition.filter(source, firstParameter: parameters.count + 1)
            clause += " AND " + filter
            parameters += more
        }
        let result = try await connection.query(
            "SELECT \(source.envelopeColumns) FROM \(source.qualifiedTable) WHERE \(clause) ORDER BY \(source.position)", parameters)
        return try decode(result, decoder: JSONFieldDecoder(paths: [[]]), metadataDecoder: JSONFieldDecoder(paths: [[]]))
    }

    /// The stream of the event at a position.
    package func streamID(at position: Int64) async throws -> String? {
        try await connection.query(source.streamAtPositionQuery, [.int(position)]).string(0, 0)
    }

    /// The event at a position with its payload as JSON text (for a parked message).
    package func event(at position: Int64) async throws -> (event: ProjectionEvent, payload: String)? {
        let result = try await connection.query(source.eventAtPositionQuery, [.int(position)])
        guard result.rowCount == 1, let event = try decode(result, decoder: JSONFieldDecoder(paths: []), metadataDecoder: JSONFieldDecoder(paths: [])).first else {
            return nil
        }
        let payload = try result.withValueBytes(0, EnvelopeColumn.payload) { bytes throws -> String in
            guard let bytes else { return "null" }
            let utf8 = try jsonBytes(bytes, encoding: source.source.payloadEncoding, position: position, column: source.source.payloadColumn)
            return String(decoding: utf8, as: UTF8.self)
        }
        return (event, payload)
    }

    /// Events committed after `base` (all types) and the age of the oldest, in seconds.
    /// With `partition`, only that partition's events count.
    package func lag(since base: String, partition: PartitionSpec? = nil) async throws -> (events: Int64, seconds: Double) {
        var (sql, parameters) = try Self.mapped { () throws(EventSourceError) in try source.lagQuery(base: base) }
        if let partition {
            // The lag query ends with its WHERE condition.
            let (filter, more) = partition.filter(source, firstParameter: parameters.count + 1)
            sql += " AND " + filter
            parameters += more
        }
        let result = try await connection.query(sql, parameters)
        return (result.int64(0, 0) ?? 0, result.double(0, 1) ?? 0)
    }

    // MARK: - Decoding

    /// `decode` on the global executor, whatever the caller's isolation.
    @concurrent
    private func decodeConcurrently(
        _ batch: PostgresResult, decoder: JSONFieldDecoder, metadataDecoder: JSONFieldDecoder, streamIDs: Bool, timings: EngineTimings
    ) async throws -> [ProjectionEvent] {
        try timings.measure(.decode) { try decode(batch, decoder: decoder, metadataDecoder: metadataDecoder, streamIDs: streamIDs) }
    }

    /// The events of `batch`; with `streamIDs` false their stream ids stay in the batch until read.
    func decode(_ batch: PostgresResult, decoder: JSONFieldDecoder, metadataDecoder: JSONFieldDecoder, streamIDs: Bool = true) throws -> [ProjectionEvent] {
        var events: [ProjectionEvent] = []
        events.reserveCapacity(batch.rowCount)
        let mapping = source.source
        let mapsTypes = !mapping.typeNames.isEmpty
        var types = EventTypeNames { stored in mapsTypes ? mapping.eventType(forStored: stored) : stored }
        for row in 0..<batch.rowCount {
            let position = batch.int64(row, EnvelopeColumn.position) ?? 0
            let type = batch.withValueBytes(row, EnvelopeColumn.type) { bytes in types.type(bytes ?? UnsafeRawBufferPointer(start: nil, count: 0)) }
            let payload = try decodeJSON(batch, row, EnvelopeColumn.payload, decoder: decoder, encoding: mapping.payloadEncoding,
                                         column: mapping.payloadColumn, position: position, type: type)
            let metadata = try decodeJSON(batch, row, EnvelopeColumn.metadata, decoder: metadataDecoder, encoding: mapping.metadataEncoding,
                                          column: mapping.metadataColumn ?? "metadata", position: position, type: type)
            events.append(ProjectionEvent(
                position: position, envelope: batch, row: row, streamID: streamIDs ? batch.string(row, EnvelopeColumn.streamID) ?? "" : nil,
                streamVersion: batch.int64(row, EnvelopeColumn.streamVersion) ?? 0,
                type: type, payload: payload, metadata: metadata))
        }
        return events
    }

    /// A document decoded into the decoder's slots when it has them (only the fields handlers
    /// read, no tree), else into a tree.
    private func decodeJSON(
        _ batch: PostgresResult, _ row: Int, _ column: Int, decoder: JSONFieldDecoder, encoding: EventSource.Encoding,
        column name: String, position: Int64, type: String
    ) throws -> ProjectionEvent.DecodedPart {
        func decode(_ bytes: UnsafeRawBufferPointer) throws(JSONDecodingError) -> ProjectionEvent.DecodedPart {
            guard let layout = decoder.slotLayout else { return .tree(try decoder.decode(bytes)) }
            return .fields(try decoder.decodeFields(bytes, layout: layout))
        }
        do {
            return try batch.withValueBytes(row, column) { bytes throws -> ProjectionEvent.DecodedPart in
                guard let bytes else { return .tree(JSONValue.null) }
                guard encoding == .bytea else { return try decode(bytes) }
                let utf8 = try jsonBytes(bytes, encoding: encoding, position: position, column: name)
                return try utf8.withUnsafeBytes { try decode($0) }
            }
        } catch let error as EngineError {
            throw error
        } catch {
            throw EngineError(.badPayload, position: position, eventType: type, message: "column \(name): \(error)")
        }
    }

    /// The JSON bytes of a value; a `bytea` value arrives as hex and must hold UTF-8.
    private func jsonBytes(_ hex: UnsafeRawBufferPointer, encoding: EventSource.Encoding, position: Int64, column: String) throws -> [UInt8] {
        guard encoding == .bytea else { return Array(hex) }
        guard let bytes = Self.hexDecoded(hex) else {
            throw EngineError(.badPayload, position: position, message: "column \(column): not hex-encoded bytea")
        }
        guard String(validating: bytes, as: UTF8.self) != nil else {
            throw EngineError(.badPayload, position: position, message: "column \(column): bytea is not UTF-8 text")
        }
        return bytes
    }

    static func hexDecoded(_ hex: UnsafeRawBufferPointer) -> [UInt8]? {
        guard hex.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: c - 48
            case 97...102: c - 87
            case 65...70: c - 55
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.count / 2)
        var index = 0
        while index < hex.count {
            guard let high = nibble(hex[index]), let low = nibble(hex[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }
}

/// Column numbers of the envelope query (`ResolvedEventSource.envelopeColumns`, in that order):
/// the reader decodes some at once and `ProjectionEvent` reads the others from the batch later.
enum EnvelopeColumn {
    static let position = 0, transactionID = 1, eventID = 2, streamID = 3, streamVersion = 4, type = 5, recordedAt = 6
    static let payload = 7, metadata = 8
}
