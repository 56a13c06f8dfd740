import Cryptography
import Foundation
public import Store

/// What osmose-journald keeps in memory between batches, always equal to what the
/// database says after the last commit.
public struct JournalState: Sendable, Hashable {
    /// The tree's right edge (its size is the journal's size).
    public var edge: TreeEdge
    /// chain_{size−1}, or 32 zero bytes for an empty journal.
    public var chainHash: [UInt8]
    /// The last entry's sequenced_at, in microseconds (sequencing time never goes back).
    public var lastSequencedAt: Int64
    /// How many checkpoints have been issued.
    public var checkpointCount: Int64
    /// The size the last checkpoint covers.
    public var lastCheckpointSize: UInt64?

    /// The number of entries.
    public var size: UInt64 { edge.size }

    /// A state; ``JournalDatabase/loadState(on:)`` reads the journal's.
    public init(edge: TreeEdge, chainHash: [UInt8], lastSequencedAt: Int64, checkpointCount: Int64, lastCheckpointSize: UInt64?) {
        self.edge = edge
        self.chainHash = chainHash
        self.lastSequencedAt = lastSequencedAt
        self.checkpointCount = checkpointCount
        self.lastCheckpointSize = lastCheckpointSize
    }
}

/// Intake rows taken and sequenced in memory (``JournalDatabase/takeBatch(on:state:limit:now:above:)``),
/// not yet written to the journal.
public struct SequencedBatch: Sendable {
    /// The state the batch starts from, and the state once it is written.
    public let start: JournalState
    public let next: JournalState
    /// How many entries it holds, and the highest intake id it took.
    public let appended: Int
    public let maxTaken: Int64?
    /// The entries as a binary COPY stream, and the full hash tiles they complete.
    let rows: [UInt8]
    let tiles: [HashTile]
}

/// A stored, signed checkpoint.
public struct CheckpointRecord: Sendable, Hashable, Codable {
    /// Its number, from 1 without gaps.
    public let id: Int64
    /// The tree size it covers.
    public let treeSize: UInt64
    /// The root hash it states.
    public let rootHash: [UInt8]
    /// When it was issued, in microseconds since the Unix epoch.
    public let issuedAt: Int64
    /// The signed note, exactly as signed.
    public let note: String

    /// Creates a record.
    public init(id: Int64, treeSize: UInt64, rootHash: [UInt8], issuedAt: Int64, note: String) {
        self.id = id
        self.treeSize = treeSize
        self.rootHash = rootHash
        self.issuedAt = issuedAt
        self.note = note
    }
}

/// One stored entry, as read back for display, proofs and exports.
public struct StoredEntry: Sendable, Hashable {
    /// The canonical bytes.
    public let canonical: [UInt8]
    /// The stored leaf hash.
    public let leafHash: [UInt8]
    /// The stored chain hash.
    public let chainHash: [UInt8]
    /// The decoded entry.
    public let entry: JournalEntry
}

/// The SQL behind the journal: loading the head, appending batches, issuing
/// checkpoints, reading tiles and entries. Every function runs on the connection's
/// own thread (`isolated Connection`), inside the caller's transaction when there is one.
public enum JournalDatabase {
    /// The NOTIFY channel the intake trigger signals.
    public static let intakeChannel = "osmose_journal_intake"
    /// The chain value before the first entry.
    public static let chainSeed = [UInt8](repeating: 0, count: 32)

    /// Loads the head and rebuilds the tree edge from the stored tiles and leaf hashes.
    /// - Throws: ``JournalError`` `.inconsistentState` when the edge's root does not
    ///   match the last checkpoint of the same size, or the head is missing.
    public static func loadState(on connection: isolated Connection) throws -> JournalState {
        guard
            let head = try connection.query(
                """
                SELECT tree_size, chain_hash, checkpoints,
                    CASE WHEN isfinite(last_sequenced_at) THEN (extract(epoch FROM last_sequenced_at) * 1000000)::bigint END AS last_at
                FROM journal.head
                """
            ).singleRow()
        else { throw JournalError(.inconsistentState, "journal.head has no row: run osmosectl db migrate") }
        let size = UInt64(try head.int64("tree_size"))
        let reader = DatabaseTreeReader(connection: connection)
        let edge = try reader.edge(size: size)
        let lastAt = try head.optionalInt64("last_at") ?? Int64.min
        var state = JournalState(
            edge: edge, chainHash: try head.bytes("chain_hash"), lastSequencedAt: lastAt, checkpointCount: try head.int64("checkpoints"),
            lastCheckpointSize: nil)
        if let last = try latestCheckpoint(on: connection) {
            guard Int64(last.id) == state.checkpointCount else {
                throw JournalError(.inconsistentState, "journal.head counts \(state.checkpointCount) checkpoints but the latest is #\(last.id)")
            }
            state.lastCheckpointSize = last.treeSize
            if last.treeSize == size, last.rootHash != edge.root() {
                throw JournalError(.inconsistentState, "the stored tree's root differs from checkpoint #\(last.id) of the same size: run osmosectl journal verify")
            }
        }
        return state
    }

    /// Creates the monthly partition holding `microseconds` (and is a no-op when it exists).
    public static func ensurePartition(on connection: isolated Connection, containing microseconds: Int64) throws {
        let day = JournalEntry.rfc3339(microseconds: microseconds).prefix(10)
        try connection.query("SELECT journal.ensure_month($1::date)", [String(day)])
    }

    /// Moves up to `limit` intake rows into the journal, in intake-id order, in the
    /// caller's transaction; returns the new state and how many were appended.
    ///
    /// The rows taken are those with an id up to the `limit`-th smallest visible one:
    /// an index range, whatever the planner's statistics of a table that is emptied
    /// as fast as it fills. A row committed later with a smaller id is taken by the
    /// next batch; ids only order the batch, they are never a watermark.
    ///
    /// - Throws: ``JournalError`` `.concurrentWriter` when the head moved since
    ///   `state` was read (another daemon appended); the caller's transaction then
    ///   rolls back and nothing is lost.
    ///
    /// `above` skips the intake's index below an id known to be taken: while a long
    /// transaction (a backup's dump) holds back the cleanup horizon, the index keeps
    /// every deleted row, and scanning from the start each batch grew with the
    /// backlog. The caller passes a floor only for ids taken long enough ago that no
    /// transaction can still be inserting below them, and 0 now and then to sweep up
    /// any straggler; the returned `maxTaken` is the highest id this batch took.
    public static func appendBatch(
        on connection: isolated Connection, state: JournalState, limit: Int, now: Int64, above floor: Int64 = 0
    ) throws -> (state: JournalState, appended: Int, maxTaken: Int64?) {
        let batch = try takeBatch(on: connection, state: state, limit: limit, now: now, above: floor)
        if batch.appended > 0 { try writeBatch(on: connection, batch) }
        return (batch.next, batch.appended, batch.maxTaken)
    }

    /// The first half of ``appendBatch(on:state:limit:now:above:)``, in the caller's
    /// transaction: takes up to `limit` intake rows (deleting them) and sequences them
    /// in memory after `state`; nothing is written to the journal yet. osmose-journald
    /// takes the next batch on a second connection while the previous one is being
    /// written and committed, and writes it only once that one has committed.
    public static func takeBatch(
        on connection: isolated Connection, state: JournalState, limit: Int, now: Int64, above floor: Int64 = 0
    ) throws -> SequencedBatch {
        // COPY of a DELETE … RETURNING in binary: the rows leave the intake and arrive
        // here without being formatted as text and parsed back.
        let taken = try connection.copyRows(
            """
            COPY (DELETE FROM journal.intake AS i
                WHERE i.id > \(floor)
                    AND i.id <= (SELECT max(id) FROM (SELECT id FROM journal.intake WHERE id > \(floor) ORDER BY id LIMIT \(max(1, limit))) AS batch)
                RETURNING \(IntakeColumn.takenList))
            TO STDOUT (FORMAT binary)
            """)
        guard !taken.isEmpty else { return SequencedBatch(start: state, next: state, appended: 0, maxTaken: nil, rows: [], tiles: []) }
        var next = state
        let sequencedAt = max(now, state.lastSequencedAt)
        var rows: [(intakeID: Int64, row: BinaryCopyDecoder.Row)] = []
        rows.reserveCapacity(taken.count)
        for row in taken { rows.append((try row.int64(0), row)) }
        rows.sort { $0.intakeID < $1.intakeID }
        let epoch = BinaryCopyDecoder.postgresEpochOffset
        var tiles: [HashTile] = []
        var copy = BinaryCopyEncoder(reservingCapacity: rows.count * 400)
        let searchPositions = searchColumnPositions
        for (intakeID, row) in rows {
            let sequence = next.size
            let occurredAt = try row.int64(1) + epoch
            let canonical = try JournalEntry.canonicalBytes(intakeRow: row, sequence: sequence, occurredAt: occurredAt, sequencedAt: sequencedAt)
            let leaf = MerkleTree.leafHash(canonical)
            let chain = chainHash(previous: next.chainHash, leafHash: leaf)
            tiles += next.edge.append(leafHash: leaf)
            next.chainHash = chain
            copy.beginRow(fields: 6 + searchPositions.count)
            copy.int64(Int64(sequence))
            copy.timestamp(microsecondsSinceUnixEpoch: sequencedAt)
            copy.int64(intakeID)
            copy.bytea(canonical)
            copy.bytea(leaf)
            copy.bytea(chain)
            // The search columns as the intake sent them (binary send forms of the same
            // types: timestamptz, uuid, text), the values the canonical bytes were made of.
            for position in searchPositions { row.copyField(position, to: &copy) }
        }
        copy.finish()
        next.lastSequencedAt = sequencedAt
        return SequencedBatch(start: state, next: next, appended: rows.count, maxTaken: rows.last?.intakeID, rows: copy.bytes, tiles: tiles)
    }

    /// The second half: writes a batch taken by ``takeBatch(on:state:limit:now:above:)``
    /// (entries, full tiles, head), in the caller's transaction, after checking that
    /// the journal's head is where the batch starts.
    /// - Throws: ``JournalError`` `.concurrentWriter` when the head is elsewhere
    ///   (another daemon appended, or the batch before this one did not commit); the
    ///   caller's transaction then rolls back and nothing is lost.
    public static func writeBatch(on connection: isolated Connection, _ batch: SequencedBatch) throws {
        let head = try connection.query("SELECT tree_size FROM journal.head FOR UPDATE").singleRow()
        guard let head, UInt64(try head.int64("tree_size")) == batch.start.size else {
            throw JournalError(.concurrentWriter, "the journal's head is not where this batch starts: another osmose-journald is appending, or the batch before did not commit")
        }
        let data = batch.rows
        try connection.copyIn(
            """
            COPY journal.entries (seq, sequenced_at, intake_id, canonical, leaf_hash, chain_hash, \(searchColumns.map(\.name).joined(separator: ", ")))
            FROM STDIN (FORMAT binary)
            """
        ) { writer in try writer.write(data) }
        for tile in batch.tiles {
            try connection.query("INSERT INTO journal.tiles (level, tile_index, hashes) VALUES ($1, $2, $3)", [tile.level, Int64(tile.index), tile.hashes])
        }
        try connection.query(
            "UPDATE journal.head SET tree_size = $1, chain_hash = $2, last_sequenced_at = $3::timestamptz",
            [Int64(batch.next.size), batch.next.chainHash, JournalEntry.rfc3339(microseconds: batch.next.lastSequencedAt)])
    }

    /// The intake columns `journal.entries` keeps beside the canonical bytes, unhashed,
    /// for searches (verify checks that they say what the bytes say).
    static let searchColumns: [IntakeColumn] = [.occurredAt, .actorUserID, .actorTeam, .action, .patientID, .purpose, .result]
    /// Their positions in a taken intake row.
    private static let searchColumnPositions = searchColumns.map(\.takenPosition)

    /// chain_i = SHA-256(chain_{i−1} ‖ leaf_hash_i).
    public static func chainHash(previous: [UInt8], leafHash: [UInt8]) -> [UInt8] {
        SHA256.hash(prefix: nil, previous, leafHash)
    }

    /// Signs and stores a checkpoint of the current tree, in the caller's transaction.
    /// - Throws: ``JournalError`` `.concurrentWriter` when the head moved.
    public static func issueCheckpoint(
        on connection: isolated Connection, state: JournalState, signers: [NoteSignerKey], now: Int64
    ) throws -> (state: JournalState, checkpoint: CheckpointRecord) {
        guard let signer = signers.first else { throw JournalError(.signingKey, "no key to sign the checkpoint with") }
        guard
            let head = try connection.query("SELECT tree_size, checkpoints FROM journal.head FOR UPDATE").singleRow(),
            UInt64(try head.int64("tree_size")) == state.size, try head.int64("checkpoints") == state.checkpointCount
        else { throw JournalError(.concurrentWriter, "the journal's head moved under this daemon: another osmose-journald is running") }
        let root = state.edge.root()
        let checkpoint = Checkpoint(
            origin: signer.verifierKey.name, size: state.size, rootHash: root,
            extensions: ["osmose-chain " + Data(state.chainHash).base64EncodedString(), "osmose-time " + JournalEntry.rfc3339(microseconds: now)])
        let note = try checkpoint.signed(by: signers)
        let record = CheckpointRecord(id: state.checkpointCount + 1, treeSize: state.size, rootHash: root, issuedAt: now, note: note)
        try connection.query(
            "INSERT INTO journal.checkpoints (id, tree_size, root_hash, issued_at, note) VALUES ($1, $2, $3, $4::timestamptz, $5)",
            [record.id, Int64(record.treeSize), record.rootHash, JournalEntry.rfc3339(microseconds: now), note])
        try connection.query("UPDATE journal.head SET checkpoints = $1", [record.id])
        var next = state
        next.checkpointCount = record.id
        next.lastCheckpointSize = record.treeSize
        return (next, record)
    }

    /// A checkpoint's issue time in microseconds since the Unix epoch, as SQL.
    static let checkpointIssuedMicroseconds = "(extract(epoch FROM issued_at) * 1000000)::bigint"

    private static let checkpointColumns = "id, tree_size, root_hash, \(checkpointIssuedMicroseconds) AS issued, note"

    static func checkpoint(from row: Row) throws -> CheckpointRecord {
        CheckpointRecord(
            id: try row.int64("id"), treeSize: UInt64(try row.int64("tree_size")), rootHash: try row.bytes("root_hash"),
            issuedAt: try row.int64("issued"), note: try row.string("note"))
    }

    /// The newest checkpoint, if any.
    public static func latestCheckpoint(on connection: isolated Connection) throws -> CheckpointRecord? {
        try connection.query("SELECT \(checkpointColumns) FROM journal.checkpoints ORDER BY id DESC LIMIT 1").singleRow().map(checkpoint(from:))
    }

    /// The checkpoint with this id.
    /// - Throws: ``JournalError`` `.notFound`.
    public static func checkpoint(id: Int64, on connection: isolated Connection) throws -> CheckpointRecord {
        guard let row = try connection.query("SELECT \(checkpointColumns) FROM journal.checkpoints WHERE id = $1", [id]).singleRow() else {
            throw JournalError(.notFound, "no checkpoint #\(id)")
        }
        return try checkpoint(from: row)
    }

    /// The checkpoint with this id, or the newest when `id` is nil (nil when there is none yet).
    /// - Throws: ``JournalError`` `.notFound` for an id that does not exist.
    public static func checkpoint(idOrLatest id: Int64?, on connection: isolated Connection) throws -> CheckpointRecord? {
        guard let id else { return try latestCheckpoint(on: connection) }
        return try checkpoint(id: id, on: connection)
    }

    /// Checkpoints with ids in `range`, in order, at most `limit`.
    public static func checkpoints(ids range: ClosedRange<Int64>, limit: Int = 100_000, on connection: isolated Connection) throws -> [CheckpointRecord] {
        try connection.query(
            "SELECT \(checkpointColumns) FROM journal.checkpoints WHERE id BETWEEN $1 AND $2 ORDER BY id LIMIT $3", [range.lowerBound, range.upperBound, limit]
        ).rows.map(checkpoint(from:))
    }

    /// The first checkpoint that covers entry `sequence` (size > sequence).
    public static func firstCheckpoint(covering sequence: UInt64, on connection: isolated Connection) throws -> CheckpointRecord? {
        try connection.query(
            "SELECT \(checkpointColumns) FROM journal.checkpoints WHERE tree_size > $1 ORDER BY id LIMIT 1", [Int64(sequence)]
        ).singleRow().map(checkpoint(from:))
    }

    /// The entries with sequence numbers in `range`, in order, decoded.
    /// - Throws: ``EntryFormatError`` when stored bytes are not canonical.
    public static func entries(_ range: Range<UInt64>, on connection: isolated Connection) throws -> [StoredEntry] {
        try connection.query(
            "SELECT canonical, leaf_hash, chain_hash FROM journal.entries WHERE seq >= $1 AND seq < $2 ORDER BY seq",
            [Int64(range.lowerBound), Int64(range.upperBound)]
        ).rows.map { row in
            let canonical = try row.bytes("canonical")
            return StoredEntry(
                canonical: canonical, leafHash: try row.bytes("leaf_hash"), chainHash: try row.bytes("chain_hash"), entry: try JournalEntry(canonical: canonical))
        }
    }
}

/// Reads tree hashes from `journal.tiles` and the entries' leaf hashes; partial
/// tiles are derived, never stored. Use on the connection's thread only.
public final class DatabaseTreeReader: TreeHashReader {
    private let connection: Connection
    private var tiles: [Int: [UInt64: [UInt8]]] = [:]

    /// A reader over `connection`, which must be the isolated connection of the caller.
    public init(connection: isolated Connection) {
        self.connection = connection
    }

    public func hashes(level: Int, range: Range<UInt64>) throws -> [[UInt8]] {
        guard !range.isEmpty else { return [] }
        let tileIndex = range.lowerBound >> 8
        if let tile = try fullTile(level: level, index: tileIndex) {
            return range.map { index in
                let offset = Int(index & 0xFF) * 32
                return Array(tile[offset..<offset + 32])
            }
        }
        if level == 0 {
            let rows = try connection.assumeIsolated { connection in
                try connection.query(
                    "SELECT seq, leaf_hash FROM journal.entries WHERE seq >= $1 AND seq < $2 ORDER BY seq",
                    [Int64(range.lowerBound), Int64(range.upperBound)]
                ).rows
            }
            guard rows.count == range.count else {
                throw JournalError(.inconsistentState, "entries \(range.lowerBound)..<\(range.upperBound) are not all stored (found \(rows.count))")
            }
            return try rows.map { try $0.bytes("leaf_hash") }
        }
        // One read for all the full tiles below, not one a hash.
        let below = try connection.assumeIsolated { connection in try JournalDatabase.fullTiles(level: level - 1, indices: range, on: connection) }
        guard below.count == range.count, zip(below, range).allSatisfy({ $0.index == $1 }) else {
            throw JournalError(.inconsistentState, "hash tiles \(level - 1)/\(range.lowerBound)..<\(range.upperBound) are not all stored (found \(below.count))")
        }
        return below.map(\.root)
    }

    private func fullTile(level: Int, index: UInt64) throws -> [UInt8]? {
        if let cached = tiles[level]?[index] { return cached }
        let found = try connection.assumeIsolated { connection in
            try connection.query("SELECT hashes FROM journal.tiles WHERE level = $1 AND tile_index = $2", [level, Int64(index)]).singleRow()
        }
        guard let found else { return nil }
        let hashes = try found.bytes("hashes")
        if tiles.values.reduce(0, { $0 + $1.count }) > 256 { tiles.removeAll() }
        tiles[level, default: [:]][index] = hashes
        return hashes
    }
}

extension JournalDatabase {
    /// The number of entries `journal.head` records.
    /// - Throws: ``JournalError`` `.inconsistentState` when the head is missing.
    public static func treeSize(on connection: isolated Connection) throws -> UInt64 {
        guard let head = try connection.query("SELECT tree_size FROM journal.head").singleRow() else {
            throw JournalError(.inconsistentState, "journal.head has no row: run osmosectl db migrate")
        }
        return UInt64(try head.int64("tree_size"))
    }

    /// The entry with sequence number `sequence`.
    /// - Throws: ``JournalError`` `.notFound` when there is none; ``EntryFormatError``
    ///   when its stored bytes are not canonical.
    public static func entry(_ sequence: UInt64, on connection: isolated Connection) throws -> StoredEntry {
        guard let stored = try entries(sequence..<sequence + 1, on: connection).first else {
            throw JournalError(.notFound, "no entry \(sequence)")
        }
        return stored
    }

    /// The canonical bytes of the entries with sequence numbers in `range`, in order
    /// (fewer than `range.count` when some are not stored).
    public static func canonicalBytes(_ range: Range<UInt64>, on connection: isolated Connection) throws -> [[UInt8]] {
        try connection.query(
            "SELECT canonical FROM journal.entries WHERE seq >= $1 AND seq < $2 ORDER BY seq", [Int64(range.lowerBound), Int64(range.upperBound)]
        ).rows.map { try $0.bytes("canonical") }
    }

    /// In one statement, the checkpoints an export of entries `first`…`last` names:
    /// the first checkpoint covering `last` (nil when none does yet), the latest, and
    /// the run of checkpoints from the last one whose tree has at most `first` entries
    /// (the first checkpoint when none) up to the covering one, at most `limit` of them.
    static func exportCheckpoints(
        first: UInt64, last: UInt64, limit: Int, on connection: isolated Connection
    ) throws -> (covering: CheckpointRecord?, latest: CheckpointRecord?, run: [CheckpointRecord]) {
        let rows = try connection.query(
            """
            WITH bounds AS (
                SELECT (SELECT min(id) FROM journal.checkpoints WHERE tree_size > $2) AS covering,
                    coalesce((SELECT max(id) FROM journal.checkpoints WHERE tree_size <= $1), 1) AS before,
                    (SELECT max(id) FROM journal.checkpoints) AS latest)
            SELECT \(checkpointColumns), coalesce(c.id = b.covering, false) AS is_covering, c.id = b.latest AS is_latest,
                coalesce(c.id BETWEEN least(b.before, b.covering) AND b.covering, false) AS in_run
            FROM journal.checkpoints AS c, bounds AS b
            WHERE c.id = b.latest OR c.id BETWEEN least(b.before, b.covering) AND least(b.covering, least(b.before, b.covering) + $3 - 1)
            ORDER BY c.id
            """, [Int64(first), Int64(last), limit]
        ).rows
        var covering: CheckpointRecord?
        var latest: CheckpointRecord?
        var run: [CheckpointRecord] = []
        for row in rows {
            let record = try checkpoint(from: row)
            if try row.bool("is_covering") { covering = record }
            if try row.bool("is_latest") { latest = record }
            if try row.bool("in_run") { run.append(record) }
        }
        return (covering, latest, run)
    }

    /// How many of the entries `sequences` are stored.
    static func countEntries(_ sequences: SortedIndices, on connection: isolated Connection) throws -> Int {
        guard !sequences.isEmpty else { return 0 }
        return try connection.query("SELECT count(*) AS n FROM journal.entries WHERE \(sequences.sqlCondition("seq"))").rows[0].int("n")
    }

    /// The stored full hash tiles of `level` whose indices are in `indices`, in index order.
    public static func fullTiles(level: Int, indices: Range<UInt64>, on connection: isolated Connection) throws -> [HashTile] {
        try connection.query(
            "SELECT tile_index, hashes FROM journal.tiles WHERE level = $1 AND tile_index >= $2 AND tile_index < $3 ORDER BY tile_index",
            [level, Int64(indices.lowerBound), Int64(indices.upperBound)]
        ).rows.map { HashTile(level: level, index: UInt64(try $0.int64("tile_index")), hashes: try $0.bytes("hashes")) }
    }

    /// The id of the newest checkpoint whose tree has at most `size` entries, if any.
    public static func lastCheckpointID(sizeAtMost size: UInt64, on connection: isolated Connection) throws -> Int64? {
        try connection.query("SELECT max(id) AS id FROM journal.checkpoints WHERE tree_size <= $1", [Int64(size)]).rows[0].optionalInt64("id")
    }

    /// The canonical bytes of the newest `search.limit` entries whose search columns
    /// match `search`'s filters, oldest first. The search columns are not hashed: the
    /// caller decodes the bytes and checks them again (``JournalSearch/entries(on:)``).
    public static func canonicalBytes(matching search: JournalSearch, on connection: isolated Connection) throws -> [[UInt8]] {
        try candidates(matching: search, newest: nil, on: connection).reversed().map { $0.canonical ?? [] }
    }

    /// The newest `search.limit` entries whose search columns match `search`'s
    /// filters, newest first: each one's sequence number, and its canonical bytes only
    /// for those at positions `newest` (0 is the newest; every one when nil).
    static func candidates(
        matching search: JournalSearch, newest window: Range<Int>?, on connection: isolated Connection
    ) throws -> [(sequence: UInt64, canonical: [UInt8]?)] {
        var conditions: [String] = []
        var parameters: [any PostgresEncodable] = []
        func add(_ condition: String, _ value: (any PostgresEncodable)?) {
            guard let value else { return }
            parameters.append(value)
            conditions.append(condition.replacingOccurrences(of: "?", with: "$\(parameters.count)"))
        }
        add("patient_id = ?::uuid", search.patientID)
        add("actor_user_id = ?::uuid", search.actorUserID)
        add("actor_team = ?", search.actorTeam)
        add("action = ?", search.action?.rawValue)
        add("purpose = ?", search.purpose?.rawValue)
        add("result = ?", search.result?.rawValue)
        add("occurred_at >= ?::timestamptz", search.occurredFrom)
        add("occurred_at < ?::timestamptz", search.occurredBefore)
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
        parameters.append(search.limit)
        let limit = "$\(parameters.count)"
        var kept = "canonical"
        if let window {
            parameters.append(Int64(window.lowerBound))
            parameters.append(Int64(window.upperBound))
            kept = "CASE WHEN position >= $\(parameters.count - 1) AND position < $\(parameters.count) THEN canonical END"
        }
        return try connection.query(
            """
            SELECT seq, \(kept) AS canonical FROM (
                SELECT seq, canonical, row_number() OVER (ORDER BY seq DESC) - 1 AS position
                FROM (SELECT seq, canonical FROM journal.entries \(filter) ORDER BY seq DESC LIMIT \(limit)) AS hits
            ) AS numbered ORDER BY seq DESC
            """, parameters
        ).rows.map { (UInt64(try $0.int64("seq")), try $0.optionalBytes("canonical")) }
    }
}

/// A range of entries removed from the database after their month was archived
/// cold (docs/retention.md): the hash tiles over them stay, so the tree, every
/// checkpoint and every proof stay verifiable, and the entries themselves live on in
/// the archive, whose copies this names.
public struct ArchivedRange: Sendable, Hashable, Codable {
    /// The UTC month, `YYYY-MM`.
    public let month: String
    /// The first and last sequence numbers removed.
    public let firstSequence: UInt64
    public let lastSequence: UInt64
    /// The month's bounds (sequenced_at), microseconds since the Unix epoch: from, and before.
    public let sequencedFrom: Int64
    public let sequencedBefore: Int64
    /// The earliest and latest occurred_at of its entries, microseconds since the Unix epoch.
    public let occurredFrom: Int64
    public let occurredTo: Int64
    /// The archive's file name, its SHA-256 (hex) and the directories holding a verified copy.
    public let fileName: String
    public let archiveSHA256: String
    public let copies: [String]
    /// When the entries were removed, and when the archive was destroyed at the end of its term (if it was).
    public let purgedAt: Int64
    public let destroyedAt: Int64?
    /// The journal signing keys its entries retire: key id → the sequence number of the retirement entry.
    public let signingKeyRetirements: [UInt32: UInt64]

    /// A range as recorded.
    public init(
        month: String, firstSequence: UInt64, lastSequence: UInt64, sequencedFrom: Int64, sequencedBefore: Int64, occurredFrom: Int64,
        occurredTo: Int64, fileName: String, archiveSHA256: String, copies: [String], purgedAt: Int64, destroyedAt: Int64?,
        signingKeyRetirements: [UInt32: UInt64] = [:]
    ) {
        self.month = month
        self.firstSequence = firstSequence
        self.lastSequence = lastSequence
        self.sequencedFrom = sequencedFrom
        self.sequencedBefore = sequencedBefore
        self.occurredFrom = occurredFrom
        self.occurredTo = occurredTo
        self.fileName = fileName
        self.archiveSHA256 = archiveSHA256
        self.copies = copies
        self.purgedAt = purgedAt
        self.destroyedAt = destroyedAt
        self.signingKeyRetirements = signingKeyRetirements
    }

    /// `key id:sequence` pairs, comma-separated, as `ops.journal_archives` stores them.
    public static func retirements(parsing text: String) -> [UInt32: UInt64] {
        var found: [UInt32: UInt64] = [:]
        for pair in text.split(separator: ",") {
            let parts = pair.split(separator: ":")
            guard parts.count == 2, let key = UInt32(parts[0], radix: 16), let sequence = UInt64(parts[1]) else { continue }
            found[key] = min(found[key] ?? sequence, sequence)
        }
        return found
    }

    /// The sequence numbers removed.
    public var sequences: ClosedRange<UInt64> { firstSequence...lastSequence }

    /// Where the archive lies, for people: `NAME in DIR, DIR` (or that it was destroyed).
    public var location: String {
        if let destroyedAt { return "\(fileName) (destroyed \(JournalEntry.rfc3339(microseconds: destroyedAt).prefix(10)) at the end of its term)" }
        return "\(fileName) in \(copies.joined(separator: ", "))"
    }
}

/// The journal event vocabulary of cold archives (action `retention-admin`, object
/// type `journal-month`, object id the month `YYYY-MM`): `verify` looks for the
/// event of every purge among the entries.
public enum ArchiveEvents {
    /// The object type of every event about a journal month's archive.
    public static let objectType = "journal-month"
    /// The reason of an archive written and verified starts with this.
    public static let archivedPrefix = "archived"
    /// The reason of a month's entries removed starts with this.
    public static let purgedPrefix = "purged"
    /// The reason of an archive destroyed at the end of its term starts with this.
    public static let destroyedPrefix = "archive destroyed"
}

extension JournalDatabase {
    private static let archivedRangeColumns = """
        to_char(month, 'YYYY-MM') AS month, first_sequence, last_sequence,
        (extract(epoch FROM month::timestamp AT TIME ZONE 'UTC') * 1000000)::bigint AS sequenced_from,
        (extract(epoch FROM (month + interval '1 month')::timestamp AT TIME ZONE 'UTC') * 1000000)::bigint AS sequenced_before,
        (extract(epoch FROM occurred_from) * 1000000)::bigint AS occurred_from, (extract(epoch FROM occurred_to) * 1000000)::bigint AS occurred_to,
        file_name, archive_sha256, array_to_string(copies, E'\\n') AS copies,
        (extract(epoch FROM purged_at) * 1000000)::bigint AS purged, (extract(epoch FROM destroyed_at) * 1000000)::bigint AS destroyed,
        signing_key_retirements
        """

    /// The ranges of entries removed after archiving (months purged), in sequence order.
    public static func archivedRanges(on connection: isolated Connection) throws -> [ArchivedRange] {
        try connection.query(
            "SELECT \(archivedRangeColumns) FROM ops.journal_archives WHERE purged_at IS NOT NULL ORDER BY first_sequence"
        ).rows.map(archivedRange(from:))
    }

    /// The archived ranges holding entries that occurred in [`from`, `before`)
    /// (microseconds since the Unix epoch; either bound may be open).
    public static func archivedRanges(occurredFrom from: Int64?, before: Int64?, on connection: isolated Connection) throws -> [ArchivedRange] {
        var conditions = ["purged_at IS NOT NULL"]
        var parameters: [any PostgresEncodable] = []
        if let from {
            parameters.append(JournalEntry.rfc3339(microseconds: from))
            conditions.append("occurred_to >= $\(parameters.count)::timestamptz")
        }
        if let before {
            parameters.append(JournalEntry.rfc3339(microseconds: before))
            conditions.append("occurred_from < $\(parameters.count)::timestamptz")
        }
        return try connection.query(
            "SELECT \(archivedRangeColumns) FROM ops.journal_archives WHERE \(conditions.joined(separator: " AND ")) ORDER BY first_sequence", parameters
        ).rows.map(archivedRange(from:))
    }

    /// The archived range holding entry `sequence`, if it was purged.
    public static func archivedRange(containing sequence: UInt64, on connection: isolated Connection) throws -> ArchivedRange? {
        try connection.query(
            "SELECT \(archivedRangeColumns) FROM ops.journal_archives WHERE purged_at IS NOT NULL AND $1 BETWEEN first_sequence AND last_sequence",
            [Int64(sequence)]
        ).singleRow().map(archivedRange(from:))
    }

    private static func archivedRange(from row: Row) throws -> ArchivedRange {
        ArchivedRange(
            month: try row.string("month"), firstSequence: UInt64(try row.int64("first_sequence")), lastSequence: UInt64(try row.int64("last_sequence")),
            sequencedFrom: try row.int64("sequenced_from"), sequencedBefore: try row.int64("sequenced_before"),
            occurredFrom: try row.int64("occurred_from"), occurredTo: try row.int64("occurred_to"), fileName: try row.string("file_name"),
            archiveSHA256: try row.string("archive_sha256"), copies: try row.string("copies").split(separator: "\n").map(String.init),
            purgedAt: try row.int64("purged"), destroyedAt: try row.optionalInt64("destroyed"),
            signingKeyRetirements: ArchivedRange.retirements(parsing: try row.string("signing_key_retirements")))
    }

    /// How many entries are stored with sequence numbers in `range` (0 for a purged month).
    public static func storedEntryCount(_ range: ClosedRange<UInt64>, on connection: isolated Connection) throws -> UInt64 {
        UInt64(
            try connection.query(
                "SELECT count(*) AS n FROM journal.entries WHERE seq >= $1 AND seq <= $2", [Int64(range.lowerBound), Int64(range.upperBound)]
            ).rows[0].int64("n"))
    }
}
