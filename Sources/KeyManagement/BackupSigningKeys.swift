import Foundation
public import Journal
import Keyring
public import Store

/// One backup-signing key as the keyring records it (public half only).
public struct BackupSigningKeyRecord: Sendable, Hashable {
    /// The keyring's id for it.
    public let id: Int
    /// Its verifier key (C2SP note verifier-key form).
    public let verifierKey: NoteVerifierKey
    /// Its state (the keyring's `decrypt-only` is co-signing).
    public let state: SigningKeyState
    /// When it was retired (RFC 3339 UTC to the millisecond), as verifiers list it in
    /// `backup.retired_verifier_keys`; nil unless retired or destroyed after retirement.
    public let retiredAt: String?

    /// The key id as events and `ops.backups.signed_by` write it (8 lowercase hex digits).
    public var keyIDText: String { String(format: "%08x", verifierKey.keyID) }
}

/// The backup-signing key's lifecycle (docs/backup.md, "The backup-signing key"),
/// the journal signing key's (``SigningKeyRollover``) applied to backups:
///
/// 1. `osmosectl keys rotate --purpose backup-signing --key-out FILE` makes an
///    Ed25519 key, writes its private half for the sysadmin to install as the
///    `backup-signing-key` credential of osmose-backupd (and of PostgreSQL's
///    archive_command), and records the verifier key: as **primary** when it is the
///    first, else as **pending**;
/// 2. osmose-backupd signs with every key it holds, so that during a rollover each
///    file carries both signatures, and records which keys signed each backup
///    (`ops.backups.signed_by`);
/// 3. osmose-keyd promotes a pending key to **primary** once the newest backup
///    carries its signature (proof that osmose-backupd holds it); the old primary
///    becomes **co-signing** for the policy's overlap (`co_signing_hours`), so that
///    verifiers still listing only the old key keep accepting new backups;
/// 4. osmose-keyd then **retires** the old key, once the newest backup carries the
///    primary's signature. The retirement time is what every verifier lists in
///    `backup.retired_verifier_keys`: the key's signature alone is accepted only for
///    what precedes it.
///
/// Every step is a journal event (object type `backup-signing-key`, object id the key id).
public enum BackupSigningKeys {
    /// The journal's object type for events about backup-signing keys.
    public static let objectType = "backup-signing-key"

    /// Every backup-signing key, oldest first.
    public static func all(on connection: isolated Connection) throws -> [BackupSigningKeyRecord] {
        try connection.query(
            """
            SELECT id, public_key, state, to_char(retired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS retired
            FROM keys.public_keys WHERE purpose = 'backup-signing' ORDER BY id
            """
        ).rows.map { row in
            guard let state = SigningKeyState(rawValue: try row.string("state")) else {
                throw KeyringError(.refused, "keys.public_keys holds an unknown state for backup-signing key \(try row.int("id"))")
            }
            do {
                return BackupSigningKeyRecord(
                    id: try row.int("id"), verifierKey: try NoteVerifierKey(encoded: try row.string("public_key")), state: state,
                    retiredAt: try row.optionalString("retired"))
            } catch let error as NoteError {
                throw KeyringError(.refused, "keys.public_keys holds a malformed verifier key for backup-signing key \(try row.int("id")): \(error.message)")
            }
        }
    }

    /// Records `signer` (its private half already written out by the caller): the
    /// first backup-signing key becomes primary at once, a later one pending until
    /// osmose-backupd signs with it. With `dryRun`, checks and changes nothing.
    /// - Returns: its keyring id and the state it gets.
    /// - Throws: ``KeyringError`` `.refused` when a rollover is already under way or
    ///   the key is already recorded, or the reason is unfit.
    public static func start(
        signer: NoteSignerKey, reason: String, dryRun: Bool, actor: SystemActor, on connection: isolated Connection
    ) throws -> (id: Int, state: SigningKeyState) {
        guard (1...200).contains(reason.count) else { throw KeyringError(.refused, "the reason must be 1 to 200 characters") }
        try connection.query("LOCK TABLE keys.public_keys IN SHARE ROW EXCLUSIVE MODE")
        let records = try all(on: connection)
        if let pending = records.first(where: { $0.state == .pending }) {
            throw KeyringError(
                .refused,
                "backup-signing key \(pending.keyIDText) (id \(pending.id)) is already pending: install it in osmose-backupd and let osmose-keyd promote it first")
        }
        if records.contains(where: { $0.verifierKey == signer.verifierKey }) { throw KeyringError(.refused, "this backup-signing key is already recorded") }
        let state: SigningKeyState = records.contains(where: { $0.state == .primary }) ? .pending : .primary
        let id = try connection.query("SELECT coalesce(max(id), 0) + 1 AS id FROM keys.public_keys").rows[0].int("id")
        guard !dryRun else { return (id, state) }
        let keyID = String(format: "%08x", signer.verifierKey.keyID)
        try connection.query(
            """
            INSERT INTO keys.public_keys (id, purpose, public_key, fingerprint, label, state, created_by)
                VALUES ($1, 'backup-signing', $2, $3, $4, $5, $6)
            """, [id, signer.verifierKey.encoded, keyID, reason, state.rawValue, actor.name])
        try connection.record(
            actor.keyEvent(
                objectType: objectType, objectID: keyID,
                reason: state == .primary
                    ? "added as the primary backup-signing key: \(reason)" : "added as pending, co-signing once osmose-backupd holds it: \(reason)"))
        return (id, state)
    }

    /// One step of the rollover, as osmose-keyd takes it at each run: promotes a
    /// pending key the newest backup carries, and retires co-signing keys whose
    /// overlap (`overlapHours` after they stopped being primary) has ended, once the
    /// newest backup carries the primary's signature.
    /// - Returns: one line per change, for the log.
    public static func advance(overlapHours: Int, actor: SystemActor, on connection: isolated Connection) throws -> [String] {
        try connection.query("LOCK TABLE keys.public_keys IN SHARE ROW EXCLUSIVE MODE")
        let records = try all(on: connection)
        guard !records.isEmpty,
            let newest = try connection.query("SELECT array_to_string(signed_by, ',') AS s FROM ops.backups ORDER BY id DESC LIMIT 1").rows.first
        else { return [] }
        let signedNewest = Set(try newest.string("s").split(separator: ",").map(String.init))
        var done: [String] = []
        var primary = records.first { $0.state == .primary }
        if let pending = records.first(where: { $0.state == .pending }), signedNewest.contains(pending.keyIDText) {
            if let old = primary {
                try connection.query("UPDATE keys.public_keys SET state = 'decrypt-only' WHERE id = $1", [old.id])
                try connection.record(
                    actor.keyEvent(
                        objectType: objectType, objectID: old.keyIDText, reason: "co-signing for \(overlapHours) h beside the new primary key \(pending.keyIDText)"))
            }
            try connection.query("UPDATE keys.public_keys SET state = 'primary' WHERE id = $1", [pending.id])
            try connection.record(
                actor.keyEvent(objectType: objectType, objectID: pending.keyIDText, reason: "promoted to primary: the newest backup carries its signature"))
            done.append("backup-signing key \(pending.keyIDText) promoted to primary")
            primary = pending
        }
        guard let primary, signedNewest.contains(primary.keyIDText) else { return done }
        let due = try connection.query(
            """
            SELECT id FROM keys.public_keys WHERE purpose = 'backup-signing' AND state = 'decrypt-only'
                AND state_changed_at + make_interval(hours => $1) <= clock_timestamp() ORDER BY id
            """, [overlapHours]
        ).rows.map { try $0.int("id") }
        for record in records where due.contains(record.id) {
            let retired = try connection.query(
                """
                UPDATE keys.public_keys SET state = 'retired' WHERE id = $1
                RETURNING to_char(retired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS retired
                """, [record.id]
            ).rows[0].string("retired")
            try connection.record(
                actor.keyEvent(
                    objectType: objectType, objectID: record.keyIDText,
                    reason: "retired at \(retired): never signs again; list it in backup.retired_verifier_keys (retired: \(retired)) wherever backups are verified"))
            done.append("backup-signing key \(record.keyIDText) retired at \(retired): list it in backup.retired_verifier_keys with retired: \(retired)")
        }
        return done
    }

    /// What osmose-backupd should be told about the keys it was given, compared with
    /// the keyring: keys it does not know or has retired (still signing, but no
    /// verifier accepts them alone), and keys it expects that were not given.
    public static func warnings(loaded: [NoteVerifierKey], on connection: isolated Connection) throws -> [String] {
        let records = try all(on: connection)
        var warnings: [String] = []
        for key in loaded {
            guard let record = records.first(where: { $0.verifierKey == key }) else {
                warnings.append(
                    "backup-signing key \(key.encoded) is not in the keyring: record it (osmosectl keys rotate --purpose backup-signing) or remove its credential")
                continue
            }
            if !record.state.signs {
                warnings.append("backup-signing key \(record.keyIDText) is \(record.state.rawValue): remove its credential (verifiers refuse its signature alone)")
            }
        }
        for record in records where record.state.signs && !loaded.contains(record.verifierKey) {
            warnings.append("the keyring's \(record.state.displayName) backup-signing key \(record.keyIDText) was not given to osmose-backupd: backups lack its signature")
        }
        return warnings
    }
}
