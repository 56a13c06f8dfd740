public import Foundation
public import Keyring
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
    /// Backups that need this key to be restored.
    public let backups: [String]

    /// All values under this key.
    public var totalValues: Int64 { values.values.reduce(0, +) }
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
    /// False for a dry run.
    public let destroyed: Bool
}

/// The inventory and the end of a key's life.
public enum KeyInventory {
    /// Every key version with its state, dates, and the values under it (a full
    /// scan of each encrypted column: seconds for a million values).
    public static func status(policy: KeyPolicy, on connection: isolated Connection) throws -> [KeyStatus] {
        let census = try KeyRotation.census(on: connection)
        return try connection.query(
            """
            SELECT id, purpose, state, created_at, state_changed_at,
                CASE WHEN state = 'primary' THEN coalesce(rotate_after, created_at + make_interval(days => CASE purpose
                    WHEN 'column' THEN $1::int WHEN 'blind-index' THEN $2::int ELSE $3::int END)) END AS planned
            FROM keys.data_keys ORDER BY id
            """,
            [policy.cryptoperiodDays["column"] ?? 365, policy.cryptoperiodDays["blind-index"] ?? 365, policy.cryptoperiodDays["pseudonymisation"] ?? 730]
        ).rows.map { row in
            let id = try row.int("id")
            var values: [String: Int64] = [:]
            for (target, byKey) in census { if let count = byKey[id], count > 0 { values[target] = count } }
            return KeyStatus(
                id: id, purpose: try row.string("purpose"), state: try row.string("state"), createdAt: try row.date("created_at"),
                stateChangedAt: try row.date("state_changed_at"), plannedRotation: try row.optionalDate("planned"), values: values,
                backups: [])
        }
    }

    /// Destroys key `keyID`: its wrapped copy is erased, so every value under it
    /// becomes unreadable for good (crypto-shredding). Refused for a primary or
    /// pending key, and while values still need it unless `force` is given with a
    /// reason; leaves a record in `keys.destructions` and a journal event.
    /// With `dryRun`, reports what would become unreadable and changes nothing.
    public static func destroy(
        keyID: Int, reason: String, force: Bool, dryRun: Bool, actor: KeyActor, on connection: isolated Connection
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
        for (target, byKey) in try KeyRotation.census(on: connection) { if let count = byKey[keyID], count > 0 { unreadable[target] = count } }
        if !unreadable.isEmpty && !force {
            let list = unreadable.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            throw KeyringError(.refused, "key \(keyID) still protects \(list); finish its rotation, or pass --force with a reason to make them unreadable")
        }
        let report = DestructionReport(keyID: keyID, purpose: purpose, stateBefore: state, unreadable: unreadable, forced: !unreadable.isEmpty, destroyed: !dryRun)
        guard !dryRun else { return report }
        try connection.query("UPDATE keys.data_keys SET state = 'destroyed', wrapped_key = NULL WHERE id = $1", [keyID])
        let evidence = String(decoding: try JSONEncoder.sorted.encode(unreadable), as: UTF8.self)
        try connection.query(
            "INSERT INTO keys.destructions (key_id, purpose, destroyed_by, reason, forced, unreadable) VALUES ($1, $2, $3, $4, $5, $6::jsonb)",
            [keyID, purpose, actor.name, reason, report.forced, evidence])
        let total = unreadable.values.reduce(0, +)
        try connection.record(
            actor.event(objectType: "data-key", objectID: "\(keyID)", reason: "destroyed\(report.forced ? " (forced)" : ""): \(total) values unreadable; \(reason)"))
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
