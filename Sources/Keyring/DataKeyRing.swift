import Cryptography
import Foundation
public import Store

/// The unwrapped data keys of one process, loaded from `keys.data_keys`.
///
/// A rotation changes the keys under a running service: ``reload(on:)`` reads
/// them again (a service does so when the database refuses a ciphertext under a
/// demoted key, SQLSTATE OSK01, or when it meets a key id it does not hold).
public final class DataKeyRing: Sendable {
    struct Entry: Sendable {
        let purpose: DataKeyPurpose
        let state: String
        let key: SecretBytes
    }

    struct Contents: Sendable {
        let entries: [Int: Entry]
        let primaries: [DataKeyPurpose: Int]

        init(entries: [Int: Entry]) {
            self.entries = entries
            var primaries: [DataKeyPurpose: Int] = [:]
            for (id, entry) in entries where entry.state == "primary" { primaries[entry.purpose] = id }
            self.primaries = primaries
        }
    }

    private let contents: Locked<Contents>
    private let master: MasterKey

    init(entries: [Int: Entry], master: MasterKey) {
        contents = Locked(Contents(entries: entries))
        self.master = master
    }

    /// Loads and unwraps every usable data key.
    /// - Throws: ``KeyringError/Code/wrongMasterKey`` naming both fingerprints when the
    ///   keys were wrapped by another master key; nothing is changed in the database.
    public static func load(on connection: Connection, master: MasterKey) async throws -> DataKeyRing {
        DataKeyRing(entries: try await readEntries(on: connection, master: master), master: master)
    }

    /// Reads the keys again. On failure (a master key rotated under this process)
    /// the keys held so far stay in use and the error is thrown.
    public func reload(on connection: Connection) async throws {
        let entries = try await Self.readEntries(on: connection, master: master)
        contents.withLock { $0 = Contents(entries: entries) }
    }

    private static func readEntries(on connection: Connection, master: MasterKey) async throws -> [Int: Entry] {
        let rows = try await connection.query(
            "SELECT id, purpose, state, wrapped_key, master_fingerprint FROM keys.data_keys WHERE state <> 'destroyed' ORDER BY id"
        ).rows
        var entries: [Int: Entry] = [:]
        for row in rows {
            let id = try row.int("id")
            let fingerprint = try row.string("master_fingerprint")
            guard fingerprint == master.fingerprint else {
                throw KeyringError(
                    .wrongMasterKey,
                    "data key \(id) was wrapped by master key \(fingerprint), but the master key given is \(master.fingerprint)")
            }
            guard let purpose = DataKeyPurpose(rawValue: try row.string("purpose")) else { continue }
            let key = try master.unwrap(try row.bytes("wrapped_key"), id: id, purpose: purpose)
            entries[id] = Entry(purpose: purpose, state: try row.string("state"), key: key)
        }
        return entries
    }

    /// The ids of the keys of `purpose` that data may still be under (primary and
    /// decrypt-only), the primary first: a blind-index search asks for the tokens
    /// under each, so that it finds a record whatever key its token is under.
    public func readableIDs(for purpose: DataKeyPurpose) -> [Int] {
        contents.withLock { contents in
            let primary = contents.primaries[purpose]
            let others = contents.entries.filter { $0.value.purpose == purpose && $0.value.state == "decrypt-only" }.keys.sorted()
            return (primary.map { [$0] } ?? []) + others
        }
    }

    /// True when this ring holds every key in `ids`.
    public func holds(_ ids: [Int]) -> Bool {
        contents.withLock { contents in ids.allSatisfy { contents.entries[$0] != nil } }
    }

    /// Creates a primary key for each purpose that has none (first installation).
    /// Runs under an advisory lock, so two callers never both create one.
    /// - Returns: the ids created.
    @discardableResult
    public static func initialise(on connection: Connection, master: MasterKey, createdBy: String) async throws -> [Int] {
        try await connection.transaction { connection in
            try connection.query("SELECT pg_advisory_xact_lock(hashtext('osmose.keys.init'))")
            let existing = try connection.query("SELECT DISTINCT master_fingerprint FROM keys.data_keys").rows.map { try $0.string("master_fingerprint") }
            if let other = existing.first(where: { $0 != master.fingerprint }) {
                throw KeyringError(.wrongMasterKey, "the keyring is wrapped by master key \(other), not \(master.fingerprint)")
            }
            var created: [Int] = []
            for purpose in DataKeyPurpose.allCases {
                let hasPrimary = try connection.query(
                    "SELECT 1 FROM keys.data_keys WHERE purpose = $1 AND state = 'primary'", [purpose.rawValue]).rows.isEmpty == false
                if hasPrimary { continue }
                let id = try connection.query("SELECT coalesce(max(id), 0) + 1 AS next FROM keys.data_keys").rows[0].int("next")
                let wrapped = try master.wrap(try SecretBytes.random(count: 32), id: id, purpose: purpose)
                try connection.query(
                    "INSERT INTO keys.data_keys (id, purpose, state, wrapped_key, master_fingerprint, created_by) VALUES ($1, $2, 'primary', $3, $4, $5)",
                    [id, purpose.rawValue, wrapped, master.fingerprint, createdBy])
                created.append(id)
            }
            return created
        }
    }

    /// The id of the primary key for `purpose`.
    /// - Throws: ``KeyringError/Code/noPrimaryKey``.
    public func primaryID(for purpose: DataKeyPurpose) throws -> Int {
        guard let id = contents.withLock({ $0.primaries[purpose] }) else {
            throw KeyringError(.noPrimaryKey, "no primary \(purpose.rawValue) key: run osmosectl keys init")
        }
        return id
    }

    func key(id: Int, purpose: DataKeyPurpose) throws -> SecretBytes {
        guard let entry = contents.withLock({ $0.entries[id] }), entry.purpose == purpose else {
            throw KeyringError(.unknownKey, "key \(id) is not a \(purpose.rawValue) key held by this keyring")
        }
        return entry.key
    }
}
