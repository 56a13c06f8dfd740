public import Store

/// Where a witness directory's latest note stands against the database, for a
/// status page (the verifier, not this, proves anything: this checks no signature).
///
/// osmose-journald commits a checkpoint before it copies it to the witnesses, so a
/// caller reads the witness first and the database after: every note the daemon
/// copied is then in the database read, and a witness can only be found behind.
public enum WitnessStanding: Sendable, Equatable {
    /// The witness holds the newest checkpoint the caller read, or one issued since.
    case holdsLatest
    /// The witness lacks the newest checkpoints, the oldest of them issued less than
    /// the grace period ago: not copied yet (the daemon copies right after issuing,
    /// and retries a failed copy at the next checkpoint).
    case notCopiedYet(coveredSize: UInt64)
    /// The witness lacks every checkpoint from the one issued at `missingSince`, the
    /// grace period ago or earlier.
    case behind(coveredSize: UInt64, missingSince: Int64)
    /// The witness's note is not in the database (or the database changed under the
    /// reading): the database was rolled back or altered, or the note is another
    /// journal's. Run `osmosectl journal verify`.
    case unknownToDatabase
    /// The witness holds no note, or one that is not a checkpoint note.
    case empty

    /// How long a checkpoint may go uncopied before a witness that lacks it is reported
    /// behind: 30 s, well past a copy (one append and two fsyncs).
    public static let grace: Int64 = 30_000_000

    /// The standing of `note` against the database's newest checkpoint `latest`, at `now`.
    /// - Parameters:
    ///   - note: the witness's latest note, read before `latest` (nil when it has none).
    ///   - latest: the newest checkpoint, read after the note (nil when there was none).
    ///   - now: the moment of the reading, in microseconds since the Unix epoch.
    ///   - grace: how long a checkpoint may go uncopied, in microseconds.
    ///   - connection: where the note is looked up (its size is indexed, then its text compared).
    /// - Throws: ``StoreError`` from the database.
    public static func of(
        note: String?, latest: CheckpointRecord?, now: Int64, grace: Int64 = WitnessStanding.grace, on connection: isolated Connection
    ) throws -> WitnessStanding {
        guard let note, let size = coveredSize(of: note) else { return .empty }
        if let latest, note == latest.note { return .holdsLatest }
        // Several checkpoints can cover one size (a reissue): the indexed size first, then
        // the exact note; and the checkpoint after it, if any (tolerating a gap).
        let row = try connection.query(
            """
            SELECT held.id,
                (SELECT \(JournalDatabase.checkpointIssuedMicroseconds) FROM journal.checkpoints WHERE id > held.id ORDER BY id LIMIT 1) AS next_issued
            FROM (SELECT id FROM journal.checkpoints WHERE tree_size = $1 AND note = $2 ORDER BY id DESC LIMIT 1) AS held
            """, [Int64(clamping: size), note]
        ).singleRow()
        guard let row else { return .unknownToDatabase }
        return classify(
            coveredSize: size, heldID: try row.int64("id"), latestID: latest?.id, nextIssuedAt: try row.optionalInt64("next_issued"), now: now, grace: grace)
    }

    /// The standing of a witness whose note is checkpoint `heldID` of the database,
    /// given the newest checkpoint read (`latestID`) and when the checkpoint after
    /// `heldID` was issued (`nextIssuedAt`, nil when none follows it).
    static func classify(coveredSize: UInt64, heldID: Int64, latestID: Int64?, nextIssuedAt: Int64?, now: Int64, grace: Int64) -> WitnessStanding {
        // Not older than the newest read: issued after that read.
        guard let latestID, heldID < latestID else { return .holdsLatest }
        // None follows it although a newer one was read: checkpoints vanished between the
        // two reads (the table refuses deletes), so the database is not what it was.
        guard let nextIssuedAt else { return .unknownToDatabase }
        return now - nextIssuedAt < grace ? .notCopiedYet(coveredSize: coveredSize) : .behind(coveredSize: coveredSize, missingSince: nextIssuedAt)
    }

    /// The tree size a checkpoint note states, nil when it is not a checkpoint note.
    static func coveredSize(of note: String) -> UInt64? {
        try? Checkpoint(text: SignedNote.text(of: note)).size
    }
}
