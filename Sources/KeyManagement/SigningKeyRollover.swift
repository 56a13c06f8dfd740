import Foundation
public import Journal
import Keyring
public import Store

/// The journal signing key's rollover (docs/keys.md, "Journal signing key"):
///
/// 1. `osmosectl keys rotate --purpose journal-signing` makes a new Ed25519 key,
///    writes its private half to a file for the sysadmin to install as a credential
///    of osmose-journald, and records the verifier key as **pending**;
/// 2. once restarted with it, osmose-journald co-signs every checkpoint with it;
/// 3. osmose-keyd promotes it to **primary** as soon as the newest checkpoint
///    carries its signature (proof that osmose-journald holds it); the old primary
///    becomes **co-signing** (`decrypt-only`) and keeps signing for the policy's
///    overlap, so that verifiers still holding only the old key keep accepting;
/// 4. osmose-keyd then **retires** the old key: it never signs again, and the
///    journal event recording that tells `osmosectl journal verify` to refuse any
///    later checkpoint signed by it alone. Its verifier key stays known forever.
///
/// Every step is a journal event (object type `journal-signing-key`, object id the
/// 8-hex-digit key id).
public enum SigningKeyRollover {
    /// Records `signer` (a new key, its private half already written out by the
    /// caller) as the log's pending signing key, and returns its keyring id. With
    /// `dryRun`, checks that a rollover may start and changes nothing.
    /// - Throws: ``KeyringError`` `.refused` when a rollover is already under way,
    ///   the key is named other than the log, or osmose-journald has not yet
    ///   recorded the log's first key.
    public static func start(signer: NoteSignerKey, reason: String, dryRun: Bool, actor: SystemActor, on connection: isolated Connection) throws -> Int {
        let origin = signer.verifierKey.name
        guard (1...200).contains(reason.count) else { throw KeyringError(.refused, "the reason must be 1 to 200 characters") }
        try connection.query("LOCK TABLE keys.public_keys IN SHARE ROW EXCLUSIVE MODE")
        let records = try SigningKeyRecord.all(on: connection)
        guard let primary = records.first(where: { $0.state == .primary }) else {
            throw KeyringError(
                .refused, "the keyring records no journal signing key yet: start osmose-journald once with its key, which adopts it as the primary")
        }
        guard primary.verifierKey.name == origin else {
            throw KeyringError(.refused, "the primary signing key is named \(primary.verifierKey.name) but the new key \(origin): check journal.origin")
        }
        if let pending = records.first(where: { $0.state == .pending }) {
            throw KeyringError(
                .refused,
                "signing key \(pending.keyIDText) (id \(pending.id)) is already pending: install it in osmose-journald and let osmose-keyd promote it first")
        }
        if records.contains(where: { $0.verifierKey == signer.verifierKey }) { throw KeyringError(.refused, "this signing key is already recorded") }
        let id = try connection.query("SELECT coalesce(max(id), 0) + 1 AS id FROM keys.public_keys").rows[0].int("id")
        guard !dryRun else { return id }
        let keyID = String(format: "%08x", signer.verifierKey.keyID)
        try connection.query(
            """
            INSERT INTO keys.public_keys (id, purpose, public_key, fingerprint, label, state, created_by)
                VALUES ($1, 'journal-signing', $2, $3, $4, 'pending', $5)
            """, [id, signer.verifierKey.encoded, keyID, reason, actor.name])
        try connection.record(
            actor.keyEvent(
                objectType: JournalVerifier.signingKeyObjectType, objectID: keyID,
                reason: "added as pending, co-signing once osmose-journald holds it: \(reason)"))
        return id
    }

    /// One step of the rollover, as osmose-keyd takes it at each run: promotes a
    /// pending key the newest checkpoint carries, and retires co-signing keys whose
    /// overlap (`overlapHours` after they stopped being primary) has ended, once the
    /// newest checkpoint carries the primary's signature.
    /// - Returns: one line per change, for the log.
    public static func advance(overlapHours: Int, actor: SystemActor, on connection: isolated Connection) throws -> [String] {
        try connection.query("LOCK TABLE keys.public_keys IN SHARE ROW EXCLUSIVE MODE")
        let records = try SigningKeyRecord.all(on: connection)
        guard let latest = try connection.query("SELECT note FROM journal.checkpoints ORDER BY id DESC LIMIT 1").rows.first else { return [] }
        let note = try latest.string("note")
        func signedLatest(_ record: SigningKeyRecord) -> Bool {
            (try? SignedNote.open(note, verifiers: [record.verifierKey]).signedBy.isEmpty == false) ?? false
        }
        var done: [String] = []
        var primary = records.first { $0.state == .primary }
        if let pending = records.first(where: { $0.state == .pending }), signedLatest(pending) {
            if let old = primary {
                try connection.query("UPDATE keys.public_keys SET state = 'decrypt-only' WHERE id = $1", [old.id])
                try connection.record(
                    actor.keyEvent(
                        objectType: JournalVerifier.signingKeyObjectType, objectID: old.keyIDText,
                        reason: "co-signing for \(overlapHours) h beside the new primary key \(pending.keyIDText)"))
            }
            try connection.query("UPDATE keys.public_keys SET state = 'primary' WHERE id = $1", [pending.id])
            try connection.record(
                actor.keyEvent(
                    objectType: JournalVerifier.signingKeyObjectType, objectID: pending.keyIDText,
                    reason: "promoted to primary: checkpoints carry its signature"))
            done.append("journal signing key \(pending.keyIDText) promoted to primary")
            primary = pending
        }
        guard let primary, signedLatest(primary) else { return done }
        let due = try connection.query(
            """
            SELECT id FROM keys.public_keys WHERE purpose = 'journal-signing' AND state = 'decrypt-only'
                AND state_changed_at + make_interval(hours => $1) <= clock_timestamp() ORDER BY id
            """, [overlapHours]
        ).rows.map { try $0.int("id") }
        for record in records where due.contains(record.id) {
            try connection.query("UPDATE keys.public_keys SET state = 'retired' WHERE id = $1", [record.id])
            try connection.record(
                actor.keyEvent(
                    objectType: JournalVerifier.signingKeyObjectType, objectID: record.keyIDText,
                    reason: "\(JournalVerifier.retirementReasonPrefix): never signs again; primary is \(primary.keyIDText)"))
            done.append("journal signing key \(record.keyIDText) retired")
        }
        return done
    }
}
