public import Store

/// Where a witness directory's latest note stands against the database, for a
/// status page (the verifier, not this, proves anything: this checks no signature).
///
/// osmose-journald commits a checkpoint before it copies it to the witnesses, so a
/// caller reads the witness first and the database after: every note the daemon
/// copied is then in the database read, and a witness can only be found behind.
public enum WitnessStanding: Sendable, Equatable {
    /// The witness holds the database's newest checkpoint.
    case holdsLatest
    /// The witness lacks the newest checkpoints, the oldest of them issued less than
    /// the grace period ago: the daemon is copying it (it copies right after issuing,
    /// and retries a failed copy at the next checkpoint).
    case copying(coveredSize: UInt64)
    /// The witness lacks a checkpoint issued the grace period ago or earlier.
    case behind(coveredSize: UInt64, missingSince: Int64)
    /// The witness's note is not in the database: the database was rolled back or
    /// altered, or the note is not this journal's. Run `osmosectl journal verify`.
    case unknownToDatabase
    /// The witness holds no note, or one that is not a checkpoint note.
    case empty

    /// How long a copy may take before a witness that lacks a checkpoint is reported
    /// behind: 30 s, well past a copy (one append and two fsyncs).
    public static let grace: Int64 = 30_000_000

    /// The standing of `note` (read from the witness before this call) against the
    /// database's newest checkpoint `latest`, at `now` (microseconds since the epoch).
    public static func of(
        note: String?, latest: CheckpointRecord?, now: Int64, grace: Int64 = WitnessStanding.grace, on connection: isolated Connection
    ) throws -> WitnessStanding {
        guard let note, let size = coveredSize(of: note) else { return .empty }
        if let latest, note == latest.note { return .holdsLatest }
        // Several checkpoints can cover one size (a reissue): the indexed size first, then the exact note.
        let held = try connection.query(
            "SELECT id FROM journal.checkpoints WHERE tree_size = $1 AND note = $2 ORDER BY id DESC LIMIT 1", [Int64(clamping: size), note]
        ).singleRow()
        guard let held, let latest else { return .unknownToDatabase }
        let heldID = try held.int64("id")
        guard heldID < latest.id else { return .holdsLatest }
        let missing = try JournalDatabase.checkpoint(id: heldID + 1, on: connection)
        return now - missing.issuedAt < grace ? .copying(coveredSize: size) : .behind(coveredSize: size, missingSince: missing.issuedAt)
    }

    /// The tree size a checkpoint note states (its second line), nil when it states none.
    static func coveredSize(of note: String) -> UInt64? {
        let lines = note.split(separator: "\n", maxSplits: 2, omittingEmptySubsequences: false)
        guard lines.count >= 2 else { return nil }
        return UInt64(lines[1])
    }
}
