import Backup
import Foundation
import Journal
import KeyManagement
import Logging
import Store

/// Records backups in the database: the catalogue row (`ops.backups`) and the
/// journal event, in one transaction.
enum BackupJournal {
    /// The connections' logger: quiet, since the commands print their own one-line failures.
    static let logger: Logger = {
        var logger = Logger(label: "osmose.backup")
        logger.logLevel = .critical
        return logger
    }()

    /// Runs `body` with a session bracketing a direct copy of the data directory:
    /// PostgreSQL's non-exclusive backup on one connection, which stays open for the
    /// whole copy (if it drops, PostgreSQL aborts the backup and `stop` fails).
    static func withBackupSession<Result: Sendable>(
        connectionString: String, _ body: @escaping @Sendable (BackupSession) throws -> Result
    ) async throws -> Result {
        try await Connection.withConnection(connectionString, applicationName: "osmose-backupd", logger: logger) { connection in
            try await connection.perform { connection in
                let session = BackupSession(
                    start: { label in _ = try connection.query("SELECT pg_backup_start($1, true)", [label]) },
                    stop: {
                        // An empty label (no row) is refused by the caller as unreadable.
                        let row = try connection.query("SELECT labelfile, spcmapfile FROM pg_backup_stop(true)").rows.first
                        return (try row?.optionalString("labelfile") ?? "", try row?.optionalString("spcmapfile") ?? "")
                    })
                return try body(session)
            }
        }
    }

    /// The journal event of a backup administration step by osmose-backupd.
    static func event(objectID: String, reason: String) -> AccessEvent {
        AccessEvent.system(by: .daemon(.backupd), action: .backupAdmin, objectType: "backup", objectID: objectID, reason: reason)
    }

    /// Records a new backup, with the keys that signed it (osmose-keyd promotes a
    /// pending key once the newest backup carries its signature).
    /// - Returns: warnings about the signing keys compared with the keyring.
    static func recordBackup(_ summary: BackupSummary, signer: BackupSigner, store: String, connectionString: String) async throws -> [String] {
        let signedBy = signer.verifierKeys.map { String(format: "%08x", $0.keyID) }
        return try await Connection.withConnection(connectionString, applicationName: "osmose-backupd", logger: logger) { connection in
            try await connection.transaction { connection in
                try connection.query(
                    """
                    INSERT INTO ops.backups (id, kind, store, started_at, finished_at, wal_start, wal_end, manifest_sha256, parent, recipients, bytes, base, needs,
                        signed_by)
                        VALUES ($1, $2, $3, $4::timestamptz, $5::timestamptz, $6, $7, $8, $9, string_to_array($10, ','), $11, $12, string_to_array($13, ','),
                        string_to_array($14, ','))
                    """,
                    [
                        summary.id, summary.kind, store, summary.started, summary.finished, summary.walStart, summary.walEnd, summary.manifestSHA256,
                        summary.parent, summary.recipients.joined(separator: ","), summary.bytes, summary.base, summary.needs.joined(separator: ","),
                        signedBy.joined(separator: ","),
                    ])
                try connection.record(
                    event(
                        objectID: summary.id,
                        reason: "\(summary.kind) backup\(summary.base.map { " on \($0)" } ?? ""), signed by \(signedBy.joined(separator: ",")): \(summary.memberCount) members, \(summary.bytes) bytes, WAL \(summary.walStart)…\(summary.walEnd), recipients \(summary.recipients.joined(separator: ","))"))
                return try BackupSigningKeys.warnings(loaded: signer.verifierKeys, on: connection)
            }
        }
    }

    /// Records a prune before it is carried out: the backups are marked pruned and the event journaled.
    static func recordPrune(_ plan: PrunePlan, connectionString: String) async throws {
        try await Connection.withConnection(connectionString, applicationName: "osmose-backupd", logger: logger) { connection in
            try await connection.transaction { connection in
                if !plan.removed.isEmpty {
                    try connection.query(
                        "UPDATE ops.backups SET state = 'pruned', pruned_at = now() WHERE id = ANY (string_to_array($1, ',')) AND state = 'retained'",
                        [plan.removed.joined(separator: ",")])
                }
                try connection.record(
                    event(
                        objectID: plan.removed.first ?? "wal",
                        reason: "pruned \(plan.removed.count) backups (\(plan.removed.joined(separator: ","))) and \(plan.walRemoved.count) WAL files; kept \(plan.kept.count)"))
            }
        }
    }
}
