public import Foundation
import Journal
public import Store

/// A backup as the catalogue (`ops.backups`) records it.
public struct CataloguedBackup: Sendable, Hashable, Codable {
    /// Its id (its start time, `YYYYMMDDTHHMMSSZ`).
    public let id: String
    /// `full` or `incremental`.
    public let kind: String
    /// When it finished.
    public let finishedAt: Date
    /// Its size in bytes.
    public let bytes: Int64
    /// The WAL segments it spans.
    public let walStart: String
    public let walEnd: String
}

/// PostgreSQL's WAL archiving as `pg_stat_archiver` reports it, with the lag in segments.
public struct WALArchiving: Sendable, Hashable, Codable {
    /// The newest segment archived, and when.
    public let lastArchived: String?
    public let lastArchivedAt: Date?
    /// Failed attempts since the statistics were reset, and the newest failure.
    public let failedCount: Int64
    public let lastFailed: String?
    public let lastFailedAt: Date?
    /// The segment being written now.
    public let current: String?
    /// Complete segments not yet archived (0 when archiving keeps up); nil when unknown.
    public let segmentsBehind: Int64?
}

/// The outcome of a backup verification or restore drill, from the access journal
/// (`osmosectl backup verify` and `backup drill` journal it as `backup-admin`).
public struct BackupCheckOutcome: Sendable, Hashable, Codable {
    /// When it ran.
    public let at: Date
    /// Who ran it.
    public let by: String
    /// What was checked (the backup, or `all`/`newest` for a verification).
    public let subject: String
    /// True when it passed.
    public let passed: Bool
    /// Its one-line summary as recorded.
    public let detail: String
}

/// What the sysadmin checks first: the newest full and incremental backups, WAL
/// archiving's lag, and the last verification and restore drill with their results.
public struct BackupStatus: Sendable, Hashable, Codable {
    /// The newest full backup retained.
    public let latestFull: CataloguedBackup?
    /// The newest incremental backup retained.
    public let latestIncremental: CataloguedBackup?
    /// How many backups are retained.
    public let retained: Int
    /// WAL archiving.
    public let archiving: WALArchiving
    /// The newest verification.
    public let lastVerification: BackupCheckOutcome?
    /// The newest restore drill.
    public let lastDrill: BackupCheckOutcome?

    /// Reads the status in the caller's transaction.
    /// - Parameter journalWindow: how many of the newest `backup-admin` events are searched for the last verification and drill.
    public static func read(journalWindow: Int = 2000, on connection: isolated Connection) throws -> BackupStatus {
        func latest(_ kind: String) throws -> CataloguedBackup? {
            try connection.query(
                """
                SELECT id, kind, finished_at, bytes, wal_start, wal_end FROM ops.backups
                WHERE state = 'retained' AND kind = $1 ORDER BY finished_at DESC LIMIT 1
                """, [kind]
            ).singleRow().map { row in
                CataloguedBackup(
                    id: try row.string("id"), kind: try row.string("kind"), finishedAt: try row.date("finished_at"), bytes: try row.int64("bytes"),
                    walStart: try row.string("wal_start"), walEnd: try row.string("wal_end"))
            }
        }
        let retained = try connection.query("SELECT count(*) AS n FROM ops.backups WHERE state = 'retained'").rows[0].int("n")
        let row = try connection.query(
            """
            SELECT a.last_archived_wal, a.last_archived_time, a.failed_count, a.last_failed_wal, a.last_failed_time,
                CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_walfile_name(pg_current_wal_lsn()) END AS current_wal
            FROM pg_stat_archiver a
            """
        ).rows[0]
        let lastArchived = try row.optionalString("last_archived_wal")
        let current = try row.optionalString("current_wal")
        let archiving = WALArchiving(
            lastArchived: lastArchived, lastArchivedAt: try row.optionalDate("last_archived_time"), failedCount: try row.int64("failed_count"),
            lastFailed: try row.optionalString("last_failed_wal"), lastFailedAt: try row.optionalDate("last_failed_time"), current: current,
            segmentsBehind: current.flatMap { current in lastArchived.flatMap { Self.segmentsBetween($0, current) }.map { max(0, $0 - 1) } })
        let events = try JournalSearch(action: .backupAdmin, limit: journalWindow).entries(on: connection).filter { $0.objectType == "backup" }
        func outcome(_ entry: JournalEntry) -> BackupCheckOutcome? {
            guard let reason = entry.reason, reason.hasPrefix("ok: ") || reason.hasPrefix("FAILED: ") else { return nil }
            return BackupCheckOutcome(
                at: Date(timeIntervalSince1970: TimeInterval(entry.occurredAt) / 1_000_000), by: entry.actorUsername ?? "-", subject: entry.objectID ?? "-",
                passed: reason.hasPrefix("ok: "), detail: reason)
        }
        let verifications = events.filter { ["all", "newest", "all+data", "newest+data"].contains($0.objectID ?? "") }
        let drills = events.filter { $0.reason?.contains(": drill:") == true }
        return BackupStatus(
            latestFull: try latest("full"), latestIncremental: try latest("incremental"), retained: retained, archiving: archiving,
            lastVerification: verifications.last.flatMap(outcome), lastDrill: drills.last.flatMap(outcome))
    }

    /// How many segments `later` is after `earlier` (names of 24 hex digits: timeline,
    /// log, segment; 16 MiB segments, 256 per log); nil when not on one timeline.
    public static func segmentsBetween(_ earlier: String, _ later: String) -> Int64? {
        func parts(_ name: String) -> (timeline: Substring, log: Int64, segment: Int64)? {
            guard name.count == 24, let log = Int64(name.dropFirst(8).prefix(8), radix: 16), let segment = Int64(name.suffix(8), radix: 16) else { return nil }
            return (name.prefix(8), log, segment)
        }
        guard let a = parts(earlier), let b = parts(later), a.timeline == b.timeline else { return nil }
        return (b.log * 256 + b.segment) - (a.log * 256 + a.segment)
    }
}
