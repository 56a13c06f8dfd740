public import Age
import Foundation
public import Journal
import Keyring
public import Store

/// One backup recipient as the keyring records it.
public struct BackupRecipientRecord: Sendable, Hashable, Codable {
    /// The keyring's id for it.
    public let id: Int
    /// `age1…` or `age1pq1…`.
    public let recipient: String
    /// The first 16 hex digits of SHA-256 of the recipient text.
    public let fingerprint: String
    /// Who or what holds the identity (e.g. "key safe B, envelope 3").
    public let label: String
    /// primary (new backups are encrypted to it), decrypt-only (no new backup;
    /// its identity is kept while a retained backup needs it), retired, destroyed.
    public let state: String
}

/// The age recipients (X25519 or hybrid post-quantum, never both at once) backups are encrypted to (docs/keys.md, "Backup
/// recipients"). Several may be primary at once (say, the hospital's key safe and
/// an escrow copy): a backup is encrypted to all of them, and any one identity
/// restores it. The identities never touch the database.
public enum BackupRecipients {
    /// Every recipient, oldest first.
    public static func all(on connection: isolated Connection) throws -> [BackupRecipientRecord] {
        try connection.query(
            "SELECT id, public_key, fingerprint, label, state FROM keys.public_keys WHERE purpose = 'backup-recipient' ORDER BY id"
        ).rows.map { row in
            BackupRecipientRecord(
                id: try row.int("id"), recipient: try row.string("public_key"), fingerprint: try row.string("fingerprint"), label: try row.string("label"),
                state: try row.string("state"))
        }
    }

    /// The recipients a new backup is encrypted to.
    /// - Throws: ``KeyringError`` `.noPrimaryKey` when there is none.
    public static func current(on connection: isolated Connection) throws -> [any AgePublicRecipient] {
        let primaries = try all(on: connection).filter { $0.state == "primary" }
        guard !primaries.isEmpty else {
            throw KeyringError(.noPrimaryKey, "no backup recipient: add one with osmosectl keys add-recipient")
        }
        return try primaries.map { try AgeRecipients.parse($0.recipient) }
    }

    /// Records `recipient` as a primary backup recipient; `label` says who holds its
    /// identity. With `dryRun`, checks and changes nothing.
    /// - Returns: the keyring id it has (or would have).
    /// - Throws: ``KeyringError`` `.refused` when it is already recorded or the label is unfit.
    public static func add(
        _ recipient: any AgePublicRecipient, label: String, reason: String, dryRun: Bool, replacingOtherKind: Bool = false, actor: SystemActor,
        on connection: isolated Connection
    ) throws -> Int {
        guard (1...200).contains(label.count) else { throw KeyringError(.refused, "the label (who holds the identity) must be 1 to 200 characters") }
        guard (1...200).contains(reason.count) else { throw KeyringError(.refused, "the reason must be 1 to 200 characters") }
        try connection.query("LOCK TABLE keys.public_keys IN SHARE ROW EXCLUSIVE MODE")
        let recorded = try all(on: connection)
        if let existing = recorded.first(where: { $0.recipient == recipient.encoded }) {
            throw KeyringError(.refused, "recipient \(recipient.fingerprint) is already recorded (id \(existing.id), \(existing.state))")
        }
        // age never mixes hybrid post-quantum and classic recipients in one file: the
        // switch takes the other kind's primaries out of use in the same transaction.
        let otherKind = recorded.filter { $0.state == "primary" && $0.recipient.hasPrefix("age1pq1") != recipient.isPostQuantum }
        if let other = otherKind.first, !replacingOtherKind {
            throw KeyringError(
                .refused,
                "recipient \(other.id) is a primary \(recipient.isPostQuantum ? "classic" : "post-quantum") recipient, and one backup cannot be encrypted to both kinds: pass --replace to switch (the other kind's primaries become decrypt-only)")
        }
        let id = try connection.query("SELECT coalesce(max(id), 0) + 1 AS id FROM keys.public_keys").rows[0].int("id")
        guard !dryRun else { return id }
        try connection.query(
            """
            INSERT INTO keys.public_keys (id, purpose, public_key, fingerprint, label, state, created_by)
                VALUES ($1, 'backup-recipient', $2, $3, $4, 'primary', $5)
            """, [id, recipient.encoded, recipient.fingerprint, label, actor.name])
        try connection.record(
            actor.keyEvent(objectType: "backup-recipient", objectID: recipient.fingerprint, reason: "added: new backups are encrypted to it; \(reason)"))
        for other in otherKind {
            try connection.query("UPDATE keys.public_keys SET state = 'decrypt-only' WHERE id = $1", [other.id])
            try connection.record(
                actor.keyEvent(
                    objectType: "backup-recipient", objectID: other.fingerprint,
                    reason: "replaced by \(recipient.fingerprint) (\(recipient.isPostQuantum ? "post-quantum" : "classic")); kept while a retained backup needs it: \(reason)"))
        }
        return id
    }

    /// Stops encrypting new backups to recipient `id` (primary → decrypt-only). Its
    /// identity must be kept while a retained backup needs it. Refused when it is
    /// the last primary recipient. With `dryRun`, checks and changes nothing.
    public static func retire(id: Int, reason: String, dryRun: Bool, actor: SystemActor, on connection: isolated Connection) throws -> BackupRecipientRecord {
        guard (1...200).contains(reason.count) else { throw KeyringError(.refused, "the reason must be 1 to 200 characters") }
        try connection.query("LOCK TABLE keys.public_keys IN SHARE ROW EXCLUSIVE MODE")
        let recipients = try all(on: connection)
        guard let record = recipients.first(where: { $0.id == id }) else { throw KeyringError(.unknownKey, "no backup recipient \(id)") }
        guard record.state == "primary" else {
            throw KeyringError(.refused, "backup recipient \(id) is \(record.state); only a primary recipient can be taken out of use")
        }
        guard recipients.contains(where: { $0.state == "primary" && $0.id != id }) else {
            throw KeyringError(.refused, "backup recipient \(id) is the last primary one: add its successor first (osmosectl keys add-recipient)")
        }
        guard !dryRun else { return record }
        try connection.query("UPDATE keys.public_keys SET state = 'decrypt-only' WHERE id = $1", [id])
        try connection.record(
            actor.keyEvent(
                objectType: "backup-recipient", objectID: record.fingerprint,
                reason: "no new backup is encrypted to it; its identity is kept while a retained backup needs it: \(reason)"))
        return BackupRecipientRecord(id: record.id, recipient: record.recipient, fingerprint: record.fingerprint, label: record.label, state: "decrypt-only")
    }

    /// Retires every recipient taken out of use (decrypt-only) that no retained
    /// backup needs any more (osmose-keyd runs this); journaled.
    /// - Returns: one line per retired recipient.
    public static func retireUnneeded(actor: SystemActor, on connection: isolated Connection) throws -> [String] {
        let unneeded = try connection.query(
            """
            SELECT k.id, k.fingerprint FROM keys.public_keys AS k
            WHERE k.purpose = 'backup-recipient' AND k.state = 'decrypt-only'
              AND NOT EXISTS (SELECT 1 FROM ops.backups AS b WHERE b.state = 'retained' AND k.fingerprint = ANY (b.recipients))
            ORDER BY k.id FOR UPDATE OF k
            """
        ).rows.map { (try $0.int("id"), try $0.string("fingerprint")) }
        for (id, fingerprint) in unneeded {
            try connection.query("UPDATE keys.public_keys SET state = 'retired' WHERE id = $1", [id])
            try connection.record(
                actor.keyEvent(objectType: "backup-recipient", objectID: fingerprint, reason: "retired: no retained backup is encrypted to it any more"))
        }
        return unneeded.map { "backup recipient \($0.0) (\($0.1)) retired" }
    }
}
