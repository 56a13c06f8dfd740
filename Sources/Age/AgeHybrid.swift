public import Cryptography

/// age's hybrid post-quantum recipient type, `mlkem768x25519` (c2sp.org/age): the
/// file key sealed with HPKE base mode (RFC 9180) over the MLKEM768-X25519 KEM
/// (X-Wing), HKDF-SHA256 and ChaCha20-Poly1305, info
/// `age-encryption.org/mlkem768x25519`, empty aad. The stanza's argument is the
/// 1120-byte encapsulation; its body the 32-byte sealed file key. Files for a
/// 20-year retention can be sealed to it against "harvest now, decrypt later".
enum AgeHPKE {
    static let stanzaType = "mlkem768x25519"
    static let info = Array("age-encryption.org/mlkem768x25519".utf8)
    /// "HPKE" ‖ KEM 0x647a ‖ KDF 0x0001 (HKDF-SHA256) ‖ AEAD 0x0003 (ChaCha20Poly1305).
    static let suite: [UInt8] = Array("HPKE".utf8) + [0x64, 0x7A, 0x00, 0x01, 0x00, 0x03]
    static let version = Array("HPKE-v1".utf8)

    static func labeledExtract(salt: [UInt8], label: String, ikm: [UInt8]) throws -> SecretBytes {
        SecretBytes(try HMACSHA256.authenticationCode(for: version + suite + Array(label.utf8) + ikm, key: SecretBytes(salt)))
    }

    /// HKDF-Expand of at most one block (every output here is 12 or 32 bytes).
    static func labeledExpand(_ prk: SecretBytes, label: String, info: [UInt8], count: Int) throws -> SecretBytes {
        let labeled = [UInt8(count >> 8), UInt8(count & 0xFF)] + version + suite + Array(label.utf8) + info
        var block = try HMACSHA256.authenticationCode(for: labeled + [0x01], key: prk)
        defer { ConstantTime.wipe(&block) }
        return SecretBytes(block.prefix(count))
    }

    /// The base-mode key schedule (no PSK): the AEAD key and nonce for sequence 0.
    static func keyAndNonce(_ sharedSecret: SecretBytes) throws -> (key: SecretBytes, nonce: [UInt8]) {
        let pskIDHash = try labeledExtract(salt: [], label: "psk_id_hash", ikm: []).exposedCopy()
        let infoHash = try labeledExtract(salt: [], label: "info_hash", ikm: info).exposedCopy()
        let context = [0x00] + pskIDHash + infoHash
        var salt = sharedSecret.exposedCopy()
        defer { ConstantTime.wipe(&salt) }
        let secret = try labeledExtract(salt: salt, label: "secret", ikm: [])
        return (try labeledExpand(secret, label: "key", info: context, count: 32),
                try labeledExpand(secret, label: "base_nonce", info: context, count: 12).exposedCopy())
    }
}

/// An age hybrid post-quantum recipient, `age1pq1…` (Bech32 of the 1216-byte X-Wing key).
public struct AgeHybridRecipient: AgePublicRecipient, Hashable, Sendable, CustomStringConvertible {
    /// The X-Wing encapsulation key.
    public let publicKey: [UInt8]

    /// Parses `age1pq1…`.
    /// - Throws: ``AgeKeyError`` when it is not an age hybrid recipient.
    public init(encoded: String) throws {
        guard let decoded = try? Bech32.decode(encoded), decoded.prefix == "age1pq", decoded.data.count == XWing.publicKeyCount, encoded == encoded.lowercased() else {
            throw AgeKeyError("an age hybrid post-quantum recipient is age1pq1 followed by lowercase Bech32 of 1216 bytes")
        }
        publicKey = decoded.data
    }

    init(publicKey: [UInt8]) { self.publicKey = publicKey }

    /// `age1pq1…`.
    public var encoded: String { Bech32.encode(prefix: "age1pq", data: publicKey) }
    public var description: String { encoded }

    /// A `mlkem768x25519` stanza: HPKE SealBase of the file key.
    public func wrap(_ fileKey: SecretBytes) throws -> AgeStanza {
        let (shared, encapsulation) = try XWing.encapsulate(to: publicKey)
        let (key, nonce) = try AgeHPKE.keyAndNonce(shared)
        let sealed = try AEAD.chaCha20Poly1305.seal(fileKey.exposedCopy(), key: key, nonce: nonce)
        return AgeStanza(arguments: [AgeHPKE.stanzaType, Base64Raw.encode(encapsulation)], body: sealed.ciphertext + sealed.tag)
    }
}

/// An age hybrid post-quantum identity, `AGE-SECRET-KEY-PQ-1…` (Bech32 of the
/// 32-byte X-Wing seed), as `age-keygen -pq` (age 1.3) writes it.
public struct AgeHybridIdentity: AgeUnwrapping, CustomStringConvertible {
    let key: XWing.PrivateKey

    /// A new random identity.
    public static func generate() throws -> AgeHybridIdentity { AgeHybridIdentity(key: try XWing.PrivateKey()) }

    init(key: XWing.PrivateKey) { self.key = key }

    /// Parses `AGE-SECRET-KEY-PQ-1…`.
    /// - Throws: ``AgeKeyError`` when it is not an age hybrid identity.
    public init(encoded: String) throws {
        guard let decoded = try? Bech32.decode(encoded) else { throw AgeKeyError("not an age identity: bad Bech32") }
        var data = decoded.data
        defer { ConstantTime.wipe(&data) }
        guard decoded.prefix == "age-secret-key-pq-", data.count == 32, encoded == encoded.uppercased() else {
            throw AgeKeyError("an age hybrid identity is AGE-SECRET-KEY-PQ-1 followed by uppercase Bech32 of 32 bytes")
        }
        key = try XWing.PrivateKey(seed: SecretBytes(data))
    }

    /// The matching recipient.
    public var recipient: AgeHybridRecipient { AgeHybridRecipient(publicKey: key.publicKey) }

    /// The encoded identity, for writing an identity file once. Whoever holds it can decrypt.
    public func exposedEncoding() -> String {
        var seed = key.exposedSeed()
        defer { ConstantTime.wipe(&seed) }
        return Bech32.encode(prefix: "AGE-SECRET-KEY-PQ-", data: seed, uppercase: true)
    }

    /// The identity file `age-keygen -pq` would write: a creation comment, the public key, the identity.
    public func exposedFile(created: String) -> String {
        "# created: \(created)\n# public key: \(recipient.encoded)\n\(exposedEncoding())\n"
    }

    /// The file key from the first `mlkem768x25519` stanza this identity opens.
    /// - Throws: ``AgeError`` `.header` for a malformed stanza of this type (argument
    ///   count, non-canonical or wrong-length encapsulation, body not 32 bytes, an
    ///   X25519 share giving the all-zero secret).
    public func unwrap(_ stanzas: [AgeStanza]) throws -> SecretBytes? {
        for stanza in stanzas where stanza.arguments.first == AgeHPKE.stanzaType {
            guard stanza.arguments.count == 2 else { throw AgeError(.header, "an mlkem768x25519 stanza has exactly one argument after its type") }
            guard let encapsulation = Base64Raw.decodeCanonical(stanza.arguments[1].utf8), encapsulation.count == XWing.ciphertextCount else {
                throw AgeError(.header, "an mlkem768x25519 stanza's encapsulation must be canonical base64 of 1120 bytes")
            }
            guard stanza.body.count == 32 else { throw AgeError(.header, "an mlkem768x25519 stanza's body must be 32 bytes") }
            let shared: SecretBytes
            do {
                shared = try key.decapsulate(encapsulation)
            } catch {
                throw AgeError(.header, "an mlkem768x25519 stanza's X25519 share is a low-order point")
            }
            let (wrapKey, nonce) = try AgeHPKE.keyAndNonce(shared)
            let box = SealedBox(ciphertext: Array(stanza.body.prefix(16)), tag: Array(stanza.body.suffix(16)))
            guard var fileKey = try? AEAD.chaCha20Poly1305.open(box, key: wrapKey, nonce: nonce) else { continue }
            defer { ConstantTime.wipe(&fileKey) }
            return SecretBytes(fileKey)
        }
        return nil
    }

    public var description: String { "AgeHybridIdentity(secret redacted)" }
}

/// Identity files holding either kind of age identity.
public enum AgeIdentities {
    /// Reads an identity file as `age-keygen` writes it: one X25519
    /// (`AGE-SECRET-KEY-1…`) or hybrid (`AGE-SECRET-KEY-PQ-1…`) identity per line,
    /// `#` comments and blank lines ignored.
    /// - Throws: ``AgeKeyError`` naming the line that is not an identity (never its content).
    /// - Parameter allowEmpty: accept a file holding no identity (an empty list).
    public static func parseFile(_ text: String, allowEmpty: Bool = false) throws -> [any AgeUnwrapping] {
        var identities: [any AgeUnwrapping] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = String(line).trimmingSpaces()
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            do {
                if trimmed.uppercased().hasPrefix("AGE-SECRET-KEY-PQ-") {
                    identities.append(try AgeHybridIdentity(encoded: trimmed))
                } else {
                    identities.append(try AgeIdentity(encoded: trimmed))
                }
            } catch {
                throw AgeKeyError("line \(number + 1) of the identity file is not an age identity (X25519 or hybrid post-quantum)")
            }
        }
        guard !identities.isEmpty || allowEmpty else { throw AgeKeyError("the identity file holds no identity") }
        return identities
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var scalars = Substring(self)
        while let first = scalars.first, first == " " || first == "\t" || first == "\r" { scalars.removeFirst() }
        while let last = scalars.last, last == " " || last == "\t" || last == "\r" { scalars.removeLast() }
        return String(scalars)
    }
}
