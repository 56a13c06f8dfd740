import Cryptography

/// Keyed pseudonyms for records past their retention term: HMAC-SHA-256 under a
/// key of purpose `pseudonymisation` (never the blind-index key, so that a
/// pseudonym cannot be matched against search tokens) of a domain-separated,
/// normalised identity. The same identity always gives the same pseudonym under
/// one key; without the key the mapping from identity to pseudonym cannot be
/// redone.
///
/// Form: `PSN-` and the first 128 bits of the HMAC in RFC 4648 base32 without
/// padding (26 characters).
public struct Pseudonymiser: Sendable {
    private let ring: DataKeyRing

    /// Uses the keys of `ring`.
    public init(ring: DataKeyRing) { self.ring = ring }

    /// The primary pseudonymisation key's id, recorded beside each pseudonym.
    /// - Throws: ``KeyringError/Code/noPrimaryKey``.
    public func primaryKeyID() throws -> Int { try ring.primaryID(for: .pseudonymisation) }

    /// The pseudonym of `parts` (normalised as blind-index values are: case,
    /// accents and separators do not matter) in `domain`, under key `keyID`.
    /// - Throws: ``KeyringError/Code/unknownKey`` when the ring lacks the key.
    public func pseudonym(domain: String, parts: [String], keyID: Int) throws -> String {
        let normalised = parts.map(BlindIndex.normalise).joined(separator: "\u{1f}")
        let mac = try HMACSHA256.authenticationCode(
            for: Array("osmose/pseudonym/v1/\(domain)\u{1e}\(normalised)".utf8), key: ring.key(id: keyID, purpose: .pseudonymisation))
        return "PSN-" + Self.base32(Array(mac.prefix(16)))
    }

    /// RFC 4648 base32, upper case, no padding.
    static func base32(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        var output = ""
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | UInt32(byte)
            bits += 8
            while bits >= 5 {
                output.append(alphabet[Int((buffer >> UInt32(bits - 5)) & 31)])
                bits -= 5
            }
        }
        if bits > 0 { output.append(alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
        return output
    }
}
