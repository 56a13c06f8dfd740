import Cryptography
public import Foundation
public import Store

/// The changes of state that need the master key: a new primary key, and the
/// rewrapping of every data key under another master key. Each runs inside the
/// caller's transaction (on the connection's thread), so that the caller's
/// journal event and bookkeeping commit with it or not at all.
public enum KeyLifecycle {
    /// Creates a key for `purpose` (pending), demotes the current primary to
    /// decrypt-only and promotes the new key, under an advisory lock.
    /// - Returns: the new key's id and the ids of every decrypt-only key of the purpose.
    public static func promoteNewKey(
        purpose: DataKeyPurpose, master: MasterKey, rotateAfter: Date, createdBy: String, on connection: isolated Connection
    ) throws -> (newID: Int, decryptOnly: [Int]) {
        try connection.query("SELECT pg_advisory_xact_lock(hashtext('osmose.keys.init'))")
        try requireMaster(master, on: connection)
        let id = try connection.query("SELECT coalesce(max(id), 0) + 1 AS next FROM keys.data_keys").rows[0].int("next")
        let wrapped = try master.wrap(try SecretBytes.random(count: 32), id: id, purpose: purpose)
        try connection.query(
            """
            INSERT INTO keys.data_keys (id, purpose, state, wrapped_key, master_fingerprint, created_by, rotate_after)
            VALUES ($1, $2, 'pending', $3, $4, $5, $6)
            """, [id, purpose.rawValue, wrapped, master.fingerprint, createdBy, rotateAfter])
        try connection.query("UPDATE keys.data_keys SET state = 'decrypt-only' WHERE purpose = $1 AND state = 'primary'", [purpose.rawValue])
        try connection.query("UPDATE keys.data_keys SET state = 'primary' WHERE id = $1", [id])
        let decryptOnly = try connection.query(
            "SELECT id FROM keys.data_keys WHERE purpose = $1 AND state = 'decrypt-only' ORDER BY id", [purpose.rawValue]
        ).rows.map { try $0.int("id") }
        return (id, decryptOnly)
    }

    /// Rewraps every data key still held (not destroyed) from `old` to `new`: the
    /// data keys and every ciphertext stay as they are.
    /// - Returns: how many keys were rewrapped.
    /// - Throws: ``KeyringError/Code/wrongMasterKey`` when `old` is not the keyring's master key.
    public static func rewrap(from old: MasterKey, to new: MasterKey, on connection: isolated Connection) throws -> Int {
        try connection.query("SELECT pg_advisory_xact_lock(hashtext('osmose.keys.init'))")
        guard old.fingerprint != new.fingerprint else { throw KeyringError(.refused, "the new master key is the current one") }
        try requireMaster(old, on: connection)
        let rows = try connection.query(
            "SELECT id, purpose, wrapped_key FROM keys.data_keys WHERE state <> 'destroyed' ORDER BY id FOR UPDATE").rows
        for row in rows {
            let id = try row.int("id")
            guard let purpose = DataKeyPurpose(rawValue: try row.string("purpose")) else {
                throw KeyringError(.refused, "data key \(id) has a purpose this build does not know")
            }
            let key = try old.unwrap(try row.bytes("wrapped_key"), id: id, purpose: purpose)
            try connection.query(
                "UPDATE keys.data_keys SET wrapped_key = $2, master_fingerprint = $3 WHERE id = $1",
                [id, try new.wrap(key, id: id, purpose: purpose), new.fingerprint])
        }
        return rows.count
    }

    /// Refuses a master key other than the one that wrapped the keyring.
    static func requireMaster(_ master: MasterKey, on connection: isolated Connection) throws {
        let fingerprints = try connection.query(
            "SELECT DISTINCT master_fingerprint FROM keys.data_keys WHERE state <> 'destroyed'").rows.map { try $0.string("master_fingerprint") }
        if let other = fingerprints.first(where: { $0 != master.fingerprint }) {
            throw KeyringError(.wrongMasterKey, "the keyring is wrapped by master key \(other), not \(master.fingerprint)")
        }
    }
}
