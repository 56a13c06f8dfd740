public import Journal
public import Keyring
public import Store

/// The keyring's installation and its master key's rotation, each with its
/// journal event.
public enum KeyringSetup {
    /// Creates a primary data key for each purpose that has none, wrapped by
    /// `master`, and journals what was created. Safe to run twice.
    /// - Returns: the ids created (none when the keyring was already initialised).
    /// - Throws: ``KeyringError/Code/wrongMasterKey`` when the keyring is wrapped by another master key.
    public static func initialise(master: MasterKey, actor: SystemActor, on connection: Connection) async throws -> [Int] {
        let created = try await DataKeyRing.initialise(on: connection, master: master, createdBy: actor.name)
        guard !created.isEmpty else { return created }
        try await connection.transaction { connection in
            try connection.record(actor.keyEvent(objectType: "data-key", objectID: created.map(String.init).joined(separator: ","), reason: "initialised"))
        }
        return created
    }

    /// Rewraps every data key from master key `old` to `new` (no value is
    /// re-encrypted), journaled, in one transaction. With `dryRun`, checks both
    /// keys against the keyring, then rolls back.
    /// - Returns: how many data keys were (or would be) rewrapped.
    /// - Throws: ``KeyringError/Code/wrongMasterKey`` when `old` is not the keyring's
    ///   master key; ``KeyringError/Code/refused`` when `new` is the same key or the
    ///   reason is not 1 to 200 characters.
    public static func rotateMaster(
        from old: MasterKey, to new: MasterKey, reason: String, dryRun: Bool, actor: SystemActor, on connection: Connection
    ) async throws -> Int {
        guard (1...200).contains(reason.count) else { throw KeyringError(.refused, "the reason must be 1 to 200 characters") }
        do {
            return try await connection.transaction { connection in
                let count = try KeyLifecycle.rewrap(from: old, to: new, on: connection)
                if dryRun { throw DryRunRollback(count: count) }
                try connection.record(
                    actor.keyEvent(
                        objectType: "master-key", objectID: new.fingerprint,
                        reason: "\(count) data keys rewrapped from master key \(old.fingerprint): \(reason)"))
                return count
            }
        } catch let rollback as DryRunRollback {
            return rollback.count
        }
    }
}

/// Thrown inside a transaction to roll a dry run back after it has checked everything.
struct DryRunRollback: Error {
    let count: Int
}
