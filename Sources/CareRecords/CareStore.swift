import Foundation
public import Keyring
import Store

/// Every read and write of the care tables. Each method runs inside the caller's
/// transaction on the connection's own thread (`isolated Connection`), so the
/// access event the caller adds commits with it or not at all.
///
/// Identity fields and free text are encrypted with ``Keyring/ColumnCipher`` and
/// bound to their table, column and row, as the one registry of encrypted columns
/// (``EncryptedColumnRegistry``) declares them; searches go through its blind-index tokens.
public struct CareStore: Sendable {
    let ring: DataKeyRing
    let cipher: ColumnCipher
    let index: BlindIndex

    /// Uses the data keys of `ring`.
    public init(ring: DataKeyRing) {
        self.ring = ring
        cipher = ColumnCipher(ring: ring)
        index = BlindIndex(ring: ring)
    }

    // MARK: Encryption helpers

    func seal(_ text: String, _ column: EncryptedColumn, _ id: UUID) throws -> [UInt8] {
        try cipher.encrypt(text, for: column.location(rowID: id))
    }

    func sealOptional(_ text: String?, _ column: EncryptedColumn, _ id: UUID) throws -> [UInt8]? {
        try text.map { try seal($0, column, id) }
    }

    func open(_ row: Row, _ column: EncryptedColumn, _ id: UUID) throws -> String {
        try cipher.decryptString(try row.bytes(column.column), at: column.location(rowID: id))
    }

    func openOptional(_ row: Row, _ column: EncryptedColumn, _ id: UUID) throws -> String? {
        guard let stored = try row.optionalBytes(column.column) else { return nil }
        return try cipher.decryptString(stored, at: column.location(rowID: id))
    }

    func nameToken(lastName: String, firstName: String, birthDate: String, keyID: Int) throws -> [UInt8] {
        try SearchToken.patientNameBirth.token([lastName, firstName, birthDate], index: index, keyID: keyID)
    }

    func insToken(_ ins: String, keyID: Int) throws -> [UInt8] {
        try SearchToken.patientINS.token([ins], index: index, keyID: keyID)
    }

    /// `column IN (…)` over the tokens of a value under every blind-index key a
    /// record's tokens may be under (two during a rotation), as parameters from
    /// `$first` on; then ``requireCurrentBlindKeys(on:)`` after the query.
    func anyToken(_ column: String, from first: Int, _ make: (Int) throws -> [UInt8]) throws -> (sql: String, tokens: [[UInt8]]) {
        let tokens = try ring.readableIDs(for: .blindIndex).map(make)
        guard !tokens.isEmpty else { throw KeyringError.noPrimary(.blindIndex) }
        return ("\(column) IN (\(tokens.indices.map { "$\($0 + first)" }.joined(separator: ", ")))", tokens)
    }

    /// Refuses a search answered with a stale keyring: once this query (run after the
    /// search, so with a later snapshot) sees no blind-index key the ring lacks, no
    /// token the search could see was under a key it did not ask for.
    func requireCurrentBlindKeys(on connection: isolated Connection) throws {
        let ids = try connection.query(
            "SELECT id FROM keys.data_keys WHERE purpose = 'blind-index' AND state IN ('pending', 'primary', 'decrypt-only')"
        ).rows.map { try $0.int("id") }
        guard ring.holds(ids) else { throw KeyringError.staleRing("a blind-index key was added since the keyring was loaded") }
    }
}
