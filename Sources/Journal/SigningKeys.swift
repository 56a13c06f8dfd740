import Foundation
public import Store

/// The lifecycle state of a journal signing key, as `keys.public_keys` records it.
public enum SigningKeyState: String, Sendable, Codable, CaseIterable {
    /// Announced: co-signs every checkpoint once osmose-journald holds it, so that
    /// verifiers learn it before it becomes the only one.
    case pending
    /// The key every checkpoint is signed with first.
    case primary
    /// The previous primary, still co-signing during the overlap.
    case coSigning = "decrypt-only"
    /// Never signs again; its verifier key stays known for the checkpoints it signed.
    case retired
    /// Its private half is destroyed (evidence in `keys.public_key_destructions`).
    case destroyed

    /// How people are shown it (`co-signing` for the keyring's `decrypt-only`).
    public var displayName: String { self == .coSigning ? "co-signing" : rawValue }

    /// True while osmose-journald signs with it.
    public var signs: Bool { self == .pending || self == .primary || self == .coSigning }
}

/// One journal signing key as the keyring records it (public half only).
public struct SigningKeyRecord: Sendable, Hashable {
    /// The keyring's id for it.
    public let id: Int
    /// Its verifier key.
    public let verifierKey: NoteVerifierKey
    /// Its state.
    public let state: SigningKeyState

    /// The key id as written in journal events about it (8 lowercase hex digits).
    public var keyIDText: String { String(format: "%08x", verifierKey.keyID) }

    /// Every journal signing key the keyring records, oldest first.
    public static func all(on connection: isolated Connection) throws -> [SigningKeyRecord] {
        try connection.query("SELECT id, public_key, state FROM keys.public_keys WHERE purpose = 'journal-signing' ORDER BY id").rows.map { row in
            let text = try row.string("public_key")
            guard let state = SigningKeyState(rawValue: try row.string("state")) else {
                throw JournalError(.signingKey, "keys.public_keys holds an unknown state for signing key \(try row.int("id"))")
            }
            do {
                return SigningKeyRecord(id: try row.int("id"), verifierKey: try NoteVerifierKey(encoded: text), state: state)
            } catch {
                throw JournalError(.signingKey, "keys.public_keys holds a malformed verifier key for signing key \(try row.int("id")): \(error)")
            }
        }
    }
}

/// The signing keys osmose-journald was started with (from its credentials), and
/// which of them sign a checkpoint: those the keyring says are pending, primary or
/// co-signing, the primary first. Nothing here decides a key's state; osmosectl and
/// osmose-keyd do, in `keys.public_keys`.
public struct JournalSigningKeys: Sendable {
    /// The keys loaded, all named after the log's origin.
    public let loaded: [NoteSignerKey]

    /// Keys loaded by osmose-journald, all for the log `origin`.
    /// - Throws: ``JournalError`` `.signingKey` when there is none, or one is named otherwise.
    public init(loaded: [NoteSignerKey], origin: String) throws {
        guard !loaded.isEmpty else { throw JournalError(.signingKey, "no journal signing key was loaded") }
        for key in loaded where key.verifierKey.name != origin {
            throw JournalError(
                .signingKey, "the signing key \(key.verifierKey.encoded) is named \(key.verifierKey.name) but journal.origin is \(origin); they must be equal")
        }
        var unique: [NoteSignerKey] = []
        for key in loaded where !unique.contains(where: { $0.verifierKey == key.verifierKey }) { unique.append(key) }
        self.loaded = unique
    }

    /// What the daemon checks at start: when the keyring records no signing key yet,
    /// the single loaded key is adopted as the primary (journaled by the caller);
    /// otherwise the primary must be among the loaded keys.
    /// - Returns: whether the key was adopted, and warnings about loaded keys the
    ///   keyring does not let sign (unknown, retired, destroyed).
    /// - Throws: ``JournalError`` `.signingKey` when the primary is not loaded, or
    ///   when several keys are loaded into a keyring that records none.
    public func prepare(on connection: isolated Connection) throws -> (adopted: NoteVerifierKey?, warnings: [String]) {
        var records = try SigningKeyRecord.all(on: connection)
        var adopted: NoteVerifierKey?
        if records.isEmpty {
            guard loaded.count == 1, let only = loaded.first else {
                throw JournalError(
                    .signingKey,
                    "the keyring records no journal signing key and \(loaded.count) are loaded: start once with the current key only, then roll over with osmosectl keys rotate --purpose journal-signing")
            }
            let key = only.verifierKey
            if try connection.query("SELECT keys.adopt_signing_key($1, $2) AS adopted", [key.encoded, String(format: "%08x", key.keyID)]).rows.first?.bool("adopted") == true {
                adopted = key
            }
            records = try SigningKeyRecord.all(on: connection)
        }
        guard let primary = records.first(where: { $0.state == .primary }) else {
            throw JournalError(.signingKey, "the keyring records no primary journal signing key (see osmosectl keys status)")
        }
        guard loaded.contains(where: { $0.verifierKey == primary.verifierKey }) else {
            throw JournalError(
                .signingKey,
                "the primary journal signing key \(primary.verifierKey.encoded) (keyring id \(primary.id)) is not among the loaded keys: pass it as a journal-signing-key… credential")
        }
        var warnings: [String] = []
        for key in loaded {
            guard let record = records.first(where: { $0.verifierKey == key.verifierKey }) else {
                warnings.append("loaded signing key \(key.verifierKey.encoded) is not in the keyring and will not sign (register it with osmosectl keys rotate --purpose journal-signing)")
                continue
            }
            if !record.state.signs {
                warnings.append("loaded signing key \(key.verifierKey.encoded) is \(record.state.rawValue) and will not sign: remove its credential")
            }
        }
        for record in records where record.state.signs && !loaded.contains(where: { $0.verifierKey == record.verifierKey }) {
            warnings.append("the keyring's \(record.state.rawValue) signing key \(record.verifierKey.encoded) is not loaded, so checkpoints lack its signature")
        }
        return (adopted, warnings)
    }

    /// The keys that sign a checkpoint now, the primary first.
    /// - Throws: ``JournalError`` `.signingKey` when the keyring's primary is not loaded.
    public func signers(on connection: isolated Connection) throws -> [NoteSignerKey] {
        let records = try SigningKeyRecord.all(on: connection)
        return try Self.signers(loaded: loaded, records: records)
    }

    /// The pure choice behind ``signers(on:)``.
    static func signers(loaded: [NoteSignerKey], records: [SigningKeyRecord]) throws -> [NoteSignerKey] {
        guard let primary = records.first(where: { $0.state == .primary }),
            let primaryKey = loaded.first(where: { $0.verifierKey == primary.verifierKey })
        else {
            let name = records.first(where: { $0.state == .primary })?.verifierKey.encoded ?? "none"
            throw JournalError(.signingKey, "the keyring's primary journal signing key (\(name)) is not loaded: restart osmose-journald with its credential")
        }
        let others = records.filter { $0.state == .pending || $0.state == .coSigning }.compactMap { record in
            loaded.first { $0.verifierKey == record.verifierKey }
        }
        return [primaryKey] + others
    }
}
