import Cryptography
import Foundation

/// Encrypts column values with AES-256-GCM under the primary column key.
///
/// Stored form (docs/encryption.md): `0x01` (format version) ‖ key id (uint32
/// big-endian) ‖ nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes). The associated
/// data is `osmose/column/v1/<table>/<column>/<row id>` plus the header, so a
/// ciphertext copied to another row or column, or given another key id, does not
/// decrypt.
public struct ColumnCipher: Sendable {
    /// The format version byte.
    public static let formatVersion: UInt8 = 1
    private let ring: DataKeyRing

    /// Uses the keys of `ring`.
    public init(ring: DataKeyRing) { self.ring = ring }

    /// Where a value lives, which the ciphertext is bound to.
    public struct Location: Sendable, Hashable {
        /// The qualified table, e.g. `care.patients`.
        public let table: String
        /// The column.
        public let column: String
        /// The row's id.
        public let rowID: String

        /// Names a cell.
        public init(table: String, column: String, rowID: String) {
            self.table = table
            self.column = column
            self.rowID = rowID
        }

        func associatedData(header: [UInt8]) -> [UInt8] {
            Array("osmose/column/v1/\(table)/\(column)/\(rowID)".utf8) + header
        }
    }

    /// Encrypts `plaintext` for `location` under the primary column key.
    public func encrypt(_ plaintext: [UInt8], for location: Location) throws -> [UInt8] {
        let keyID = try ring.primaryID(for: .column)
        let header = [Self.formatVersion] + withUnsafeBytes(of: UInt32(keyID).bigEndian) { Array($0) }
        let nonce = try SecureRandom.bytes(count: 12)
        let box = try AEAD.aes256GCM.seal(
            plaintext, key: try ring.key(id: keyID, purpose: .column), nonce: nonce, authenticating: location.associatedData(header: header))
        return header + nonce + box.ciphertext + box.tag
    }

    /// Encrypts a string's UTF-8 bytes.
    public func encrypt(_ text: String, for location: Location) throws -> [UInt8] { try encrypt(Array(text.utf8), for: location) }

    /// Decrypts a value stored at `location`.
    /// - Throws: ``KeyringError/Code/unknownKey`` for a key id the ring does not
    ///   hold; ``KeyringError/Code/undecryptable`` for a damaged or moved
    ///   ciphertext. Never returns garbage.
    public func decrypt(_ stored: [UInt8], at location: Location) throws -> [UInt8] {
        guard stored.count >= 5 + 12 + 16, stored[0] == Self.formatVersion else {
            throw KeyringError(.undecryptable, "\(location.table).\(location.column): not a version-1 ciphertext")
        }
        let header = Array(stored[0..<5])
        let keyID = Int(stored[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        let key = try ring.key(id: keyID, purpose: .column)
        let nonce = stored[5..<17]
        let body = Array(stored[17..<(stored.count - 16)])
        let tag = Array(stored[(stored.count - 16)...])
        do {
            return try AEAD.aes256GCM.open(
                SealedBox(ciphertext: body, tag: tag), key: key, nonce: nonce, authenticating: location.associatedData(header: header))
        } catch {
            throw KeyringError(
                .undecryptable, "\(location.table).\(location.column): ciphertext does not authenticate at this row (damaged or moved)")
        }
    }

    /// Decrypts a string value.
    public func decryptString(_ stored: [UInt8], at location: Location) throws -> String {
        guard let text = String(validating: try decrypt(stored, at: location), as: UTF8.self) else {
            throw KeyringError(.undecryptable, "\(location.table).\(location.column): plaintext is not UTF-8")
        }
        return text
    }

    /// The key id a stored value was encrypted with (for inventories and rotation).
    public static func keyID(of stored: [UInt8]) -> Int? {
        guard stored.count >= 5, stored[0] == formatVersion else { return nil }
        return Int(stored[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
    }
}

/// Exact-match search tokens: HMAC-SHA-256 under the primary blind-index key of a
/// domain-separated, normalised value. The same value always gives the same token
/// under one key; the token reveals nothing else.
public struct BlindIndex: Sendable {
    private let ring: DataKeyRing

    /// Uses the keys of `ring`.
    public init(ring: DataKeyRing) { self.ring = ring }

    /// The primary blind-index key's id, stored beside each token.
    public func primaryKeyID() throws -> Int { try ring.primaryID(for: .blindIndex) }

    /// The token of `parts` in `domain` under key `keyID` (the primary when nil).
    public func token(domain: String, parts: [String], keyID: Int? = nil) throws -> [UInt8] {
        let id = try keyID ?? ring.primaryID(for: .blindIndex)
        let normalised = parts.map(Self.normalise).joined(separator: "\u{1f}")
        return try HMACSHA256.authenticationCode(
            for: Array("osmose/blind-index/v1/\(domain)\u{1e}\(normalised)".utf8), key: ring.key(id: id, purpose: .blindIndex))
    }

    /// Case, accents, surrounding and repeated spaces, and hyphen-versus-space do
    /// not change a token: "Dupont-Durand", "dupont durand" and "DUPONT  DURAND" match.
    public static func normalise(_ text: String) -> String {
        let folded = text.folding(options: [.caseInsensitive, .diacriticInsensitive, .widthInsensitive], locale: Locale(identifier: "fr_FR"))
            .uppercased()
        let separated = folded.map { $0 == "-" || $0 == "'" || $0 == "’" ? " " : $0 }
        return String(separated).split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
    }
}
