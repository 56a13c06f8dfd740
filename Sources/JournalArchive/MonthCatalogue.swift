import Foundation
import Journal
import Store

/// A month's verified cold archive as `ops.journal_archives` records it.
public struct ArchiveRecord: Sendable, Hashable, Codable {
    /// The month.
    public let month: JournalMonth
    /// The entries it holds.
    public let firstSequence: UInt64
    public let lastSequence: UInt64
    /// The first checkpoint whose tree holds them all, and how many checkpoints the archive holds.
    public let coveringCheckpoint: Int64
    public let checkpointCount: Int64
    /// The archive's file name, SHA-256 (hex), size, and its manifest's SHA-256.
    public let fileName: String
    public let archiveSHA256: String
    public let archiveBytes: Int64
    public let manifestSHA256: String
    /// Fingerprints of the age recipients it is encrypted to.
    public let recipients: [String]
    /// The archive directories holding a copy read back identical.
    public let copies: [String]
    /// Who wrote it, when, and when its copies were verified (microseconds since the Unix epoch).
    public let writtenBy: String
    public let writtenAt: Int64
    public let verifiedAt: Int64
    /// When the month's entries were removed, and how many.
    public let purgedAt: Int64?
    public let purgedEntries: UInt64?
    /// When the archive was destroyed at the end of its term.
    public let destroyedAt: Int64?

    /// The number of entries.
    public var entryCount: UInt64 { lastSequence - firstSequence + 1 }
    /// The copies' paths.
    public var copyPaths: [String] { copies.map { $0 + "/" + fileName } }
}

/// The SQL of cold archives: the month partitions of `journal.entries` as the
/// catalogue lists them, the records of `ops.journal_archives`, and the functions of
/// migration 0025 that record, purge and destroy. Every function runs on the
/// connection's thread, in the caller's transaction when there is one.
enum MonthCatalogue {
    /// The months that have a partition, oldest first.
    static func partitionedMonths(on connection: isolated Connection) throws -> [JournalMonth] {
        try connection.query(
            """
            SELECT c.relname FROM pg_catalog.pg_inherits AS i JOIN pg_catalog.pg_class AS c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'journal.entries'::regclass ORDER BY c.relname
            """
        ).rows.compactMap { row in
            let name = try row.string("relname")
            guard name.hasPrefix("entries_"), name.count == 15 else { return nil }
            return try? JournalMonth(parsing: name.dropFirst(8).replacingOccurrences(of: "_", with: "-"))
        }
    }

    /// The first and last sequence numbers of the month's stored entries, nil when it holds none.
    static func bounds(of month: JournalMonth, on connection: isolated Connection) throws -> (first: UInt64, last: UInt64)? {
        let row = try connection.query(
            "SELECT min(seq) AS first, max(seq) AS last FROM journal.entries WHERE sequenced_at >= $1::timestamptz AND sequenced_at < $2::timestamptz",
            [JournalEntry.rfc3339(microseconds: month.start), JournalEntry.rfc3339(microseconds: month.end)]
        ).rows[0]
        guard let first = try row.optionalInt64("first"), let last = try row.optionalInt64("last") else { return nil }
        return (UInt64(first), UInt64(last))
    }

    /// The latest sequenced_at (microseconds), nil for an empty journal.
    static func lastSequencedAt(on connection: isolated Connection) throws -> Int64? {
        try connection.query(
            "SELECT CASE WHEN isfinite(last_sequenced_at) THEN (extract(epoch FROM last_sequenced_at) * 1000000)::bigint END AS at FROM journal.head"
        ).singleRow()?.optionalInt64("at")
    }

    /// What an archive of `month` must hold, read from the journal.
    /// - Throws: ``JournalArchiveError`` `.notOnline` when the month holds no entry,
    ///   `.notReady` when the journal has not moved past it or no checkpoint covers it
    ///   yet, `.inconsistent` when the chain before it cannot be found.
    static func content(of month: JournalMonth, on connection: isolated Connection) throws -> MonthContent {
        guard let (first, last) = try bounds(of: month, on: connection) else {
            throw JournalArchiveError(.notOnline, "\(month) holds no entry in the database (never journaled, or already purged)")
        }
        guard let moved = try lastSequencedAt(on: connection), moved >= month.end else {
            throw JournalArchiveError(.notReady, "\(month) is not over: the journal has not sequenced an entry after it yet")
        }
        guard let covering = try JournalDatabase.firstCheckpoint(covering: last, on: connection) else {
            throw JournalArchiveError(.notReady, "no checkpoint covers \(month)'s last entry \(last) yet: retry once osmose-journald has signed one")
        }
        let checkpoints = try connection.query(
            "SELECT min(id) AS first FROM journal.checkpoints WHERE tree_size > $1 AND id <= $2", [Int64(first), covering.id]
        ).rows[0]
        let firstID = try checkpoints.optionalInt64("first") ?? covering.id
        let bytes = try connection.query(
            "SELECT coalesce(sum(octet_length(note) + 1), 0)::bigint AS bytes FROM journal.checkpoints WHERE id BETWEEN $1 AND $2", [firstID, covering.id]
        ).rows[0].int64("bytes")
        guard let after = try connection.query("SELECT chain_hash FROM journal.entries WHERE seq = $1", [Int64(last)]).singleRow() else {
            throw JournalArchiveError(.inconsistent, "entry \(last) vanished while \(month) was read")
        }
        return MonthContent(
            month: month, firstSequence: first, lastSequence: last, covering: covering, firstCheckpointID: firstID, checkpointBytes: bytes,
            chainBefore: try chain(before: first, on: connection), chainAfter: try after.bytes("chain_hash"))
    }

    /// chain_{first−1}: the stored entry's, else the chain after the archived month
    /// that ends there, else the seed for entry 0.
    private static func chain(before first: UInt64, on connection: isolated Connection) throws -> [UInt8] {
        guard first > 0 else { return JournalDatabase.chainSeed }
        if let row = try connection.query("SELECT chain_hash FROM journal.entries WHERE seq = $1", [Int64(first - 1)]).singleRow() {
            return try row.bytes("chain_hash")
        }
        if let row = try connection.query("SELECT chain_after FROM ops.journal_archives WHERE last_sequence = $1", [Int64(first - 1)]).singleRow() {
            return try row.bytes("chain_after")
        }
        throw JournalArchiveError(.inconsistent, "entry \(first - 1), before the month, is neither stored nor archived: run osmosectl journal verify")
    }

    private static let recordColumns = """
        to_char(month, 'YYYY-MM') AS month, first_sequence, last_sequence, covering_checkpoint, checkpoint_count, file_name, archive_sha256,
        archive_bytes, manifest_sha256, array_to_string(recipients, ',') AS recipients, array_to_string(copies, E'\\n') AS copies, written_by,
        (extract(epoch FROM written_at) * 1000000)::bigint AS written, (extract(epoch FROM verified_at) * 1000000)::bigint AS verified,
        (extract(epoch FROM purged_at) * 1000000)::bigint AS purged, purged_entries, (extract(epoch FROM destroyed_at) * 1000000)::bigint AS destroyed
        """

    /// Every recorded archive, oldest month first.
    static func records(on connection: isolated Connection) throws -> [ArchiveRecord] {
        try connection.query("SELECT \(recordColumns) FROM ops.journal_archives ORDER BY month").rows.map(record(from:))
    }

    /// The recorded archive of `month`, if any.
    static func record(of month: JournalMonth, on connection: isolated Connection) throws -> ArchiveRecord? {
        try connection.query("SELECT \(recordColumns) FROM ops.journal_archives WHERE month = $1::date", [month.firstDay]).singleRow().map(record(from:))
    }

    private static func record(from row: Row) throws -> ArchiveRecord {
        ArchiveRecord(
            month: try JournalMonth(parsing: try row.string("month")), firstSequence: UInt64(try row.int64("first_sequence")),
            lastSequence: UInt64(try row.int64("last_sequence")), coveringCheckpoint: try row.int64("covering_checkpoint"),
            checkpointCount: try row.int64("checkpoint_count"), fileName: try row.string("file_name"), archiveSHA256: try row.string("archive_sha256"),
            archiveBytes: try row.int64("archive_bytes"), manifestSHA256: try row.string("manifest_sha256"),
            recipients: try row.string("recipients").split(separator: ",").map(String.init),
            copies: try row.string("copies").split(separator: "\n").map(String.init), writtenBy: try row.string("written_by"),
            writtenAt: try row.int64("written"), verifiedAt: try row.int64("verified"), purgedAt: try row.optionalInt64("purged"),
            purgedEntries: try row.optionalInt64("purged_entries").map(UInt64.init), destroyedAt: try row.optionalInt64("destroyed"))
    }

    /// True when every level-0 hash tile over the recorded entries is stored: the
    /// tree stays whole once they are removed (what `journal.purge_month` requires).
    static func levelZeroTilesStored(over record: ArchiveRecord, on connection: isolated Connection) throws -> Bool {
        let first = Int64(record.firstSequence >> 8)
        let last = Int64(record.lastSequence >> 8)
        let stored = try connection.query(
            "SELECT count(*) AS n FROM journal.tiles WHERE level = 0 AND tile_index BETWEEN $1 AND $2", [first, last]
        ).rows[0].int64("n")
        return stored == last - first + 1
    }

    /// Records a verified archive through `journal.record_month_archive`, which checks it against the journal.
    static func recordArchive(
        _ written: WrittenArchive, copies: [String], recipients: [String], retirements: [String: UInt64], on connection: isolated Connection
    ) throws {
        let summary = written.summary
        do {
            try connection.query(
                """
                SELECT journal.record_month_archive($1::date, $2, $3, $4::timestamptz, $5::timestamptz, $6, $7, $8, $9, $10, $11, $12, $13,
                    string_to_array($14, ','), string_to_array($15, E'\\n'), $16, $17::timestamptz, $18)
                """,
                [
                    summary.month.firstDay, Int64(summary.firstSequence), Int64(summary.lastSequence), written.manifest.occurredFrom,
                    written.manifest.occurredTo, summary.covering.id, summary.checkpointCount, written.chainBefore, written.chainAfter, written.fileName,
                    written.sha256,
                    written.bytes, written.manifestSHA256, recipients.joined(separator: ","), copies.joined(separator: "\n"), written.writtenBy,
                    JournalEntry.rfc3339(microseconds: written.writtenAt),
                    retirements.sorted { $0.key < $1.key }.map { "\($0.key):\($0.value)" }.joined(separator: ","),
                ])
        } catch {
            throw JournalArchiveError.fromDatabase(error)
        }
    }

    /// Removes the month's partition through `journal.purge_month`; returns how many entries it held.
    static func purge(_ month: JournalMonth, archiveSHA256: String, on connection: isolated Connection) throws -> UInt64 {
        do {
            // The detach waits for an exclusive lock on journal.entries; never for long behind a verify or an export.
            try connection.execute("SET LOCAL lock_timeout = '10s'")
            let row = try connection.query("SELECT journal.purge_month($1::date, $2) AS removed", [month.firstDay, archiveSHA256]).rows[0]
            return UInt64(try row.int64("removed"))
        } catch let error as StoreError where error.sqlState == "55P03" {
            throw JournalArchiveError(
                .refused, "the journal stayed busy for 10 s (a long verify or export holds it): nothing was removed; run the purge again", underlying: error)
        } catch {
            throw JournalArchiveError.fromDatabase(error)
        }
    }

    /// Records the archive of `month` as destroyed; false when it already was.
    static func recordDestroyed(_ month: JournalMonth, archiveSHA256: String, on connection: isolated Connection) throws -> Bool {
        do {
            return try connection.query(
                "SELECT journal.record_month_archive_destroyed($1::date, $2) AS changed", [month.firstDay, archiveSHA256]
            ).rows[0].bool("changed")
        } catch {
            throw JournalArchiveError.fromDatabase(error)
        }
    }
}

/// The month as the database holds it: what its archive must contain.
struct MonthContent: Sendable {
    let month: JournalMonth
    let firstSequence: UInt64
    let lastSequence: UInt64
    /// The first checkpoint whose tree holds every entry of the month.
    let covering: CheckpointRecord
    /// The first checkpoint whose tree holds an entry of the month.
    let firstCheckpointID: Int64
    /// The bytes of the checkpoints member (each note and an empty line).
    let checkpointBytes: Int64
    /// chain_{first−1} and chain_{last}.
    let chainBefore: [UInt8]
    let chainAfter: [UInt8]

    var entryCount: UInt64 { lastSequence - firstSequence + 1 }
    var checkpointCount: Int64 { covering.id - firstCheckpointID + 1 }
}
