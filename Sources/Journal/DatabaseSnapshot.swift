import Foundation
public import Store

/// The journal as stored in PostgreSQL, for `verify`. Use inside one REPEATABLE READ
/// transaction on the connection's thread, so that every read sees the same snapshot
/// while osmose-journald keeps appending. Entries and tiles stream through binary
/// COPY, without holding the journal in memory.
public final class DatabaseSnapshot: JournalSnapshot {
    private let connection: Connection
    /// The purged ranges, read once per snapshot.
    private var archived: [ArchivedRange]?

    /// A snapshot over `connection`, which must be the caller's isolated connection.
    public init(connection: isolated Connection) {
        self.connection = connection
    }

    public func head() throws -> (size: UInt64, chainHash: [UInt8]) {
        try connection.assumeIsolated { connection in
            guard let row = try connection.query("SELECT tree_size, chain_hash FROM journal.head").singleRow() else {
                throw JournalError(.inconsistentState, "journal.head has no row")
            }
            return (UInt64(try row.int64("tree_size")), try row.bytes("chain_hash"))
        }
    }

    public func forEachCheckpoint(from firstID: Int64, _ body: (CheckpointRecord) throws -> Void) throws {
        var after = firstID - 1
        while true {
            let batch = try connection.assumeIsolated { connection in
                try JournalDatabase.checkpoints(ids: (after + 1)...Int64.max, limit: 10_000, on: connection)
            }
            for record in batch { try body(record) }
            guard let last = batch.last, batch.count == 10_000 else { return }
            after = last.id
        }
    }

    /// The stored entries from `first` on, in order; for each purged month (whose
    /// partition is gone), one archived row per entry carrying its leaf hash from the
    /// stored level-0 tile. A purged month whose entries are somehow still stored is
    /// streamed as stored, and `verify` names it.
    public func forEachEntry(from first: UInt64, _ body: (StreamedEntryRow) throws -> Void) throws {
        var start = first
        for range in try archivedRanges() where range.lastSequence >= start {
            let purged = max(start, range.firstSequence)...range.lastSequence
            if purged.lowerBound > start { try forEachStoredEntry(start..<purged.lowerBound, body) }
            let stillStored = try connection.assumeIsolated { try JournalDatabase.storedEntryCount(purged, on: $0) }
            if stillStored > 0 {
                try forEachStoredEntry(purged.lowerBound..<purged.upperBound + 1, body)
            } else {
                try forEachArchivedEntry(purged, body)
            }
            start = range.lastSequence + 1
        }
        try forEachStoredEntry(start..<UInt64(Int64.max), body)
    }

    /// The stored entries with sequence numbers in `range`, in order.
    private func forEachStoredEntry(_ range: Range<UInt64>, _ body: (StreamedEntryRow) throws -> Void) throws {
        try stream(
            """
            COPY (SELECT seq, sequenced_at, canonical, leaf_hash, chain_hash, occurred_at, actor_user_id, actor_team, action, patient_id,
                purpose, result FROM journal.entries WHERE seq >= \(range.lowerBound) AND seq < \(range.upperBound) ORDER BY seq) TO STDOUT (FORMAT binary)
            """
        ) { row in try body(StreamedEntryRow(row)) }
    }

    /// One archived row per entry of `range`, its leaf hash sliced from the stored
    /// level-0 tiles (read a thousand at a time); an empty leaf hash where a tile is missing.
    private func forEachArchivedEntry(_ range: ClosedRange<UInt64>, _ body: (StreamedEntryRow) throws -> Void) throws {
        var tileIndex = range.lowerBound >> 8
        let lastTile = range.upperBound >> 8
        while tileIndex <= lastTile {
            let batch = tileIndex..<min(lastTile + 1, tileIndex + 1000)
            let tiles = try connection.assumeIsolated { try JournalDatabase.fullTiles(level: 0, indices: batch, on: $0) }
            var byIndex: [UInt64: [UInt8]] = [:]
            for tile in tiles { byIndex[tile.index] = tile.hashes }
            for index in batch {
                let tile = byIndex[index]
                let first = max(range.lowerBound, index << 8)
                let last = min(range.upperBound, (index << 8) + 255)
                for sequence in first...last {
                    let offset = Int(sequence & 0xFF) * 32
                    try body(StreamedEntryRow(archived: sequence, leafHash: tile.map { Array($0[offset..<offset + 32]) } ?? []))
                }
            }
            tileIndex = batch.upperBound
        }
    }

    public func archivedRanges() throws -> [ArchivedRange] {
        if let cached = archived { return cached }
        let ranges = try connection.assumeIsolated { try JournalDatabase.archivedRanges(on: $0) }
        archived = ranges
        return ranges
    }

    public func forEachTile(_ body: (HashTile) throws -> Void) throws {
        try stream("COPY (SELECT level::int8, tile_index, hashes FROM journal.tiles ORDER BY level, tile_index) TO STDOUT (FORMAT binary)") { row in
            try body(HashTile(level: Int(try row.int64(0)), index: UInt64(bitPattern: try row.int64(1)), hashes: row.bytes(2).map(Array.init) ?? []))
        }
    }

    public func edge(size: UInt64) throws -> TreeEdge {
        try connection.assumeIsolated { connection in try DatabaseTreeReader(connection: connection).edge(size: size) }
    }

    /// Runs a binary COPY and hands each decoded row to `body`, in order.
    ///
    /// The connection's thread only receives rows from libpq, gathering them into
    /// large buffers; a second thread decodes them in place and runs `body`, so that
    /// receiving (and PostgreSQL producing) overlaps with verifying. This call
    /// returns only after that thread has finished, so `body` never runs
    /// concurrently with its caller.
    private func stream(_ sql: String, _ body: (BinaryCopyDecoder.RowView) throws -> Void) throws {
        // The decoder is used by the consuming thread alone: ThreadPipeline.run joins it
        // before returning, and this function touches the decoder only through `consume`.
        var decoder = BinaryCopyDecoder()
        try ThreadPipeline.run(depth: 16, name: "journal-verify") { push in
            // assumeIsolated runs its closure at once, on this thread, which already is the
            // connection's: `push` is called from the thread it was handed to, never later.
            nonisolated(unsafe) let push = push
            _ = try connection.assumeIsolated { connection in
                try connection.copyOutGathered(sql, bufferBytes: Self.gatheredBytes) { buffer in try push(buffer) }
            }
        } consume: { (buffer: [UInt8]) in
            try decoder.forEachRow(in: buffer, body)
        }
    }

    /// How many bytes the connection's thread gathers before handing them over.
    static let gatheredBytes = 1 << 19
}

/// One entry row where the COPY stream holds it (columns in the order of
/// ``DatabaseSnapshot/forEachEntry(from:_:)``'s query); valid only during the call
/// that hands it over.
public struct StreamedEntryRow: StoredEntryRow {
    /// The stored row, or nil for an entry of a purged month.
    private let row: BinaryCopyDecoder.RowView?
    /// An archived entry's leaf hash, from its level-0 tile.
    private let archivedLeafHash: [UInt8]
    public let sequence: UInt64
    public let sequencedAt: Int64
    public let occurredAt: Int64

    init(_ row: BinaryCopyDecoder.RowView) throws {
        guard row.count == 12 else { throw JournalError(.inconsistentState, "an entry row has \(row.count) columns, expected 12") }
        self.row = row
        archivedLeafHash = []
        sequence = UInt64(bitPattern: try row.int64(0))
        sequencedAt = try row.int64(1) + BinaryCopyDecoder.postgresEpochOffset
        occurredAt = try row.int64(5) + BinaryCopyDecoder.postgresEpochOffset
    }

    /// The row of an entry of a purged month: its sequence number and leaf hash only.
    init(archived sequence: UInt64, leafHash: [UInt8]) {
        row = nil
        archivedLeafHash = leafHash
        self.sequence = sequence
        sequencedAt = 0
        occurredAt = 0
    }

    public var isArchived: Bool { row == nil }
    public var canonicalBytes: ArraySlice<UInt8> { row?.bytes(2) ?? [] }
    public var storedLeafHash: ArraySlice<UInt8> { row.map { $0.bytes(3) ?? [] } ?? archivedLeafHash[...] }
    public var storedChainHash: ArraySlice<UInt8> { row?.bytes(4) ?? [] }

    public func searchColumnsAgree(with scan: CanonicalScan) -> Bool {
        guard let row else { return false }
        let canonical = canonicalBytes
        return scan.field(.actorUserID, in: canonical, equalsUUID: row.bytes(6)) && scan.field(.actorTeam, in: canonical, equals: row.bytes(7))
            && scan.field(.action, in: canonical, equals: row.bytes(8)) && scan.field(.patientID, in: canonical, equalsUUID: row.bytes(9))
            && scan.field(.purpose, in: canonical, equals: row.bytes(10)) && scan.field(.result, in: canonical, equals: row.bytes(11))
    }
}

