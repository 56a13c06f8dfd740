public import CareRecords
public import Foundation
public import Journal
import Keyring
public import Settings
public import Store

/// One key version as the sysadmin's inventory shows it.
public struct KeyStatus: Sendable, Codable, Hashable {
    /// The key id (what ciphertexts name).
    public let id: Int
    /// column, blind-index or pseudonymisation.
    public let purpose: String
    /// pending, primary, decrypt-only, retired or destroyed.
    public let state: String
    /// When it was made.
    public let createdAt: Date
    /// When its state last changed.
    public let stateChangedAt: Date
    /// For the primary key: when its cryptoperiod ends and osmose-keyd replaces it.
    public let plannedRotation: Date?
    /// Values under this key, per target (`care.patients.last_name`, …).
    public let values: [String: Int64]
    /// Retained backups that hold this key (wrapped by the master key of their day):
    /// the data it protected stays readable from them until they are pruned.
    public let backups: [String]

    /// All values under this key.
    public var totalValues: Int64 { values.values.reduce(0, +) }
}

/// One asymmetric key (journal signing key, backup-signing key, backup recipient) as the inventory
/// shows it: the keyring holds its public half only.
public struct PublicKeyStatus: Sendable, Codable, Hashable {
    /// The keyring's id for it (a sequence of its own, apart from data keys).
    public let id: Int
    /// journal-signing, backup-signing or backup-recipient.
    public let purpose: String
    /// pending, primary, decrypt-only (co-signing, for a signing key), retired or destroyed.
    public let state: String
    /// The verifier key or the age recipient.
    public let publicKey: String
    /// The note key id, or the recipient's fingerprint.
    public let fingerprint: String
    /// What it is for (the reason given when it was made).
    public let label: String
    /// When it was made.
    public let createdAt: Date
    /// When its state last changed.
    public let stateChangedAt: Date
    /// For the primary key: when its cryptoperiod ends (a signing key's rollover is then due).
    public let plannedRotation: Date?
    /// Backups that need its identity to be restored.
    public let backups: [String]
}

/// Destroying an asymmetric key's private half: what it meant, and whether it was done.
public struct PublicKeyDestructionReport: Sendable, Codable, Hashable {
    /// The key.
    public let keyID: Int
    /// Its purpose.
    public let purpose: String
    /// Its public half (kept: past signatures stay verifiable).
    public let publicKey: String
    /// Its state before.
    public let stateBefore: String
    /// The backups that can no longer be restored (backup recipients).
    public let unrestorableBackups: [String]
    /// True when the key was still in use and `force` overrode it.
    public let forced: Bool
    /// False for a dry run.
    public let destroyed: Bool
}

/// Destroying a key: what it would make unreadable, and whether it was done.
public struct DestructionReport: Sendable, Codable, Hashable {
    /// The key.
    public let keyID: Int
    /// Its purpose.
    public let purpose: String
    /// Its state before.
    public let stateBefore: String
    /// Per target, the values that become unreadable.
    public let unreadable: [String: Int64]
    /// True when values or backups still needed the key and `force` overrode it.
    public let forced: Bool
    /// Retained backups that still hold the key (under the master key of their day):
    /// what it protected stays readable from them until they are pruned.
    public var stillInBackups: [String] = []
    /// False for a dry run.
    public let destroyed: Bool
}

/// The whole keyring as the sysadmin's inventory shows it, read in one snapshot.
public struct KeyringOverview: Sendable {
    /// Every data key version.
    public let keys: [KeyStatus]
    /// Every asymmetric key.
    public let publicKeys: [PublicKeyStatus]
    /// Every rotation, newest first.
    public let rotations: [RotationRecord]
    /// How many backups the catalogue (`ops.backups`) holds as retained.
    public let retainedBackups: Int
}

/// The inventory and the end of a key's life.
public enum KeyInventory {
    /// Every key, rotation and the retained backups' count, in one REPEATABLE READ
    /// snapshot (so the counts agree with each other while the services write).
    public static func overview(
        policy: KeyPolicy, registry: EncryptedColumnRegistry = .care, on connection: Connection
    ) async throws -> KeyringOverview {
        try await connection.transaction(isolation: .repeatableRead) { connection in
            KeyringOverview(
                keys: try status(policy: policy, registry: registry, on: connection), publicKeys: try publicKeys(policy: policy, on: connection),
                rotations: try KeyRotation.all(on: connection),
                retainedBackups: try connection.query("SELECT count(*) AS n FROM ops.backups WHERE state = 'retained'").rows[0].int("n"))
        }
    }

    /// Every key version with its state, dates, and the values under it (a full
    /// scan of each encrypted column of `registry`: seconds for a million values).
    public static func status(
        policy: KeyPolicy, registry: EncryptedColumnRegistry = .care, on connection: isolated Connection
    ) throws -> [KeyStatus] {
        let census = try KeyRotation.census(registry: registry, on: connection)
        return try connection.query(
            """
            SELECT k.id, k.purpose, k.state, k.created_at, k.state_changed_at,
                CASE WHEN k.state = 'primary' THEN coalesce(k.rotate_after, k.created_at + make_interval(days => CASE k.purpose
                    WHEN 'column' THEN $1::int WHEN 'blind-index' THEN $2::int ELSE $3::int END)) END AS planned,
                -- A backup holds the keyring as it was: every key that existed and was not yet destroyed when it started.
                coalesce((SELECT string_agg(b.id, ',' ORDER BY b.id) FROM ops.backups AS b
                    WHERE b.state = 'retained' AND b.started_at >= k.created_at
                      AND (k.destroyed_at IS NULL OR b.started_at < k.destroyed_at)), '') AS backups
            FROM keys.data_keys AS k ORDER BY k.id
            """,
            [policy.cryptoperiodDays["column"] ?? 365, policy.cryptoperiodDays["blind-index"] ?? 365, policy.cryptoperiodDays["pseudonymisation"] ?? 730]
        ).rows.map { row in
            let id = try row.int("id")
            var values: [String: Int64] = [:]
            for (target, byKey) in census { if let count = byKey[id], count > 0 { values[target] = count } }
            return KeyStatus(
                id: id, purpose: try row.string("purpose"), state: try row.string("state"), createdAt: try row.date("created_at"),
                stateChangedAt: try row.date("state_changed_at"), plannedRotation: try row.optionalDate("planned"), values: values,
                backups: try row.string("backups").split(separator: ",").map(String.init))
        }
    }

    /// Every asymmetric key, oldest first.
    public static func publicKeys(policy: KeyPolicy, on connection: isolated Connection) throws -> [PublicKeyStatus] {
        try connection.query(
            """
            SELECT k.id, k.purpose, k.state, k.public_key, k.fingerprint, k.label, k.created_at, k.state_changed_at,
                CASE WHEN k.state = 'primary' AND k.purpose IN ('journal-signing', 'backup-signing') THEN k.created_at + make_interval(days => $1::int) END AS planned,
                coalesce((SELECT string_agg(b.id, ',' ORDER BY b.id) FROM ops.backups AS b
                    WHERE k.purpose = 'backup-recipient' AND b.state = 'retained' AND k.fingerprint = ANY (b.recipients)), '') AS backups
            FROM keys.public_keys AS k ORDER BY k.purpose, k.id
            """, [policy.cryptoperiodDays["journal-signing"] ?? 730]
        ).rows.map { row in
            PublicKeyStatus(
                id: try row.int("id"), purpose: try row.string("purpose"), state: try row.string("state"), publicKey: try row.string("public_key"),
                fingerprint: try row.string("fingerprint"), label: try row.string("label"), createdAt: try row.date("created_at"),
                stateChangedAt: try row.date("state_changed_at"), plannedRotation: try row.optionalDate("planned"),
                backups: try row.string("backups").split(separator: ",").map(String.init))
        }
    }

    /// Records the destruction of asymmetric key `keyID`'s private half (which the
    /// keyring never held: the caller shreds the file, or the sysadmin the offline
    /// copy). Its public half stays, so everything it signed stays verifiable.
    /// Refused for a primary key; for a pending or co-signing signing key (it still
    /// signs) unless `force`. Leaves a record in `keys.public_key_destructions` and a
    /// journal event. With `dryRun`, reports and changes nothing.
    public static func destroyPublicKey(
        keyID: Int, reason: String, force: Bool, dryRun: Bool, actor: SystemActor, on connection: isolated Connection
    ) throws -> PublicKeyDestructionReport {
        guard (1...200).contains(reason.count) else { throw KeyringError(.refused, "the reason must be 1 to 200 characters") }
        guard
            let key = try connection.query("SELECT purpose, state, public_key, fingerprint FROM keys.public_keys WHERE id = $1 FOR UPDATE", [keyID])
                .singleRow()
        else { throw KeyringError(.unknownKey, "no journal signing key, backup-signing key or backup recipient \(keyID)") }
        let purpose = try key.string("purpose")
        let state = try key.string("state")
        // A backup recipient's identity is needed while a retained backup is encrypted to it.
        let needed = purpose != "backup-recipient" ? [] : try connection.query(
            "SELECT id FROM ops.backups WHERE state = 'retained' AND $1 = ANY (recipients) ORDER BY id", [try key.string("fingerprint")]
        ).rows.map { try $0.string("id") }
        switch state {
        case "destroyed": throw KeyringError(.refused, "\(purpose) key \(keyID) is already destroyed")
        case "primary":
            throw KeyringError(
                .refused, "\(purpose) key \(keyID) is primary: roll over first (osmosectl keys rotate --purpose \(purpose))")
        default: break
        }
        let inUse = state != "retired" || !needed.isEmpty
        if inUse && !force {
            let why = needed.isEmpty ? "is \(state) and still in use" : "is needed to restore \(needed.count) retained backups (\(needed.prefix(5).joined(separator: ", ")))"
            throw KeyringError(.refused, "\(purpose) key \(keyID) \(why); wait until osmose-keyd retires it, or pass --force with a reason")
        }
        let report = PublicKeyDestructionReport(
            keyID: keyID, purpose: purpose, publicKey: try key.string("public_key"), stateBefore: state, unrestorableBackups: needed, forced: inUse,
            destroyed: !dryRun)
        guard !dryRun else { return report }
        try connection.query("UPDATE keys.public_keys SET state = 'destroyed' WHERE id = $1", [keyID])
        let consequence = String(
            decoding: try JSONEncoder.sorted.encode(["public_key": [report.publicKey], "backups_unrestorable": report.unrestorableBackups]),
            as: UTF8.self)
        try connection.query(
            "INSERT INTO keys.public_key_destructions (key_id, purpose, destroyed_by, reason, forced, consequence) VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            [keyID, purpose, actor.name, reason, report.forced, consequence])
        try connection.record(
            actor.keyEvent(
                objectType: purpose == "journal-signing"
                    ? JournalVerifier.signingKeyObjectType : purpose == "backup-signing" ? BackupSigningKeys.objectType : "backup-recipient",
                objectID: try key.string("fingerprint"),
                reason: "destroyed\(report.forced ? " (forced)" : ""): \(reason)"))
        return report
    }

    /// Destroys key `keyID`: its wrapped copy is erased, so every value under it
    /// becomes unreadable for good (crypto-shredding). Refused for a primary or
    /// pending key, and while values of `registry` still need it unless `force` is
    /// given with a reason; leaves a record in `keys.destructions` and a journal
    /// event. With `dryRun`, reports what would become unreadable and changes nothing.
    public static func destroy(
        keyID: Int, reason: String, force: Bool, dryRun: Bool, actor: SystemActor, registry: EncryptedColumnRegistry = .care,
        on connection: isolated Connection
    ) throws -> DestructionReport {
        guard (1...200).contains(reason.count) else { throw KeyringError(.refused, "the reason must be 1 to 200 characters") }
        guard let key = try connection.query("SELECT purpose, state FROM keys.data_keys WHERE id = $1 FOR UPDATE", [keyID]).singleRow() else {
            throw KeyringError(.unknownKey, "no data key \(keyID)")
        }
        let purpose = try key.string("purpose")
        let state = try key.string("state")
        switch state {
        case "destroyed": throw KeyringError(.refused, "key \(keyID) is already destroyed")
        case "primary": throw KeyringError(.refused, "key \(keyID) is the primary \(purpose) key: rotate it first (osmosectl keys rotate)")
        default: break
        }
        var unreadable: [String: Int64] = [:]
        for (target, byKey) in try KeyRotation.census(registry: registry, on: connection) { if let count = byKey[keyID], count > 0 { unreadable[target] = count } }
        if !unreadable.isEmpty && !force {
            let list = unreadable.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            throw KeyringError(.refused, "key \(keyID) still protects \(list); finish its rotation, or pass --force with a reason to make them unreadable")
        }
        var report = DestructionReport(keyID: keyID, purpose: purpose, stateBefore: state, unreadable: unreadable, forced: !unreadable.isEmpty, destroyed: !dryRun)
        report.stillInBackups = try connection.query(
            """
            SELECT b.id FROM ops.backups AS b, keys.data_keys AS k
            WHERE k.id = $1 AND b.state = 'retained' AND b.started_at >= k.created_at ORDER BY b.id
            """, [keyID]
        ).rows.map { try $0.string("id") }
        guard !dryRun else { return report }
        try connection.query("UPDATE keys.data_keys SET state = 'destroyed', wrapped_key = NULL WHERE id = $1", [keyID])
        let evidence = String(decoding: try JSONEncoder.sorted.encode(unreadable), as: UTF8.self)
        try connection.query(
            "INSERT INTO keys.destructions (key_id, purpose, destroyed_by, reason, forced, unreadable) VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            [keyID, purpose, actor.name, reason, report.forced, evidence])
        let total = unreadable.values.reduce(0, +)
        try connection.record(
            actor.keyEvent(
                objectType: "data-key", objectID: "\(keyID)",
                reason: "destroyed\(report.forced ? " (forced)" : ""): \(total) values unreadable; in \(report.stillInBackups.count) retained backups until pruned; \(reason)"))
        return report
    }
}

extension JSONEncoder {
    static var sorted: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }
}
