public import Cryptography

/// The key that wraps every data key. Handed to the daemons as a systemd
/// credential (`LoadCredential=master-key:…`), never stored in the database.
public struct MasterKey: Sendable, CustomStringConvertible {
    let secret: SecretBytes
    /// A short public identifier (HMAC of a fixed label), recorded with each wrapped
    /// data key so that a wrong master key is named as such instead of failing later.
    public let fingerprint: String

    /// Wraps 32 bytes of key material.
    /// - Throws: ``KeyringError/Code/masterKeyUnavailable`` if it is not 32 bytes.
    public init(_ secret: SecretBytes) throws {
        guard secret.count == 32 else {
            throw KeyringError(.masterKeyUnavailable, "a master key is 32 bytes, this one is \(secret.count)")
        }
        self.secret = secret
        let tag = try HMACSHA256.authenticationCode(for: Array("osmose/master-key-fingerprint/v1".utf8), key: secret)
        fingerprint = tag.prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// Reads a master key file (32 raw bytes, as `osmosectl keys generate-master` writes).
    public static func load(path: String) throws -> MasterKey {
        do {
            return try MasterKey(SecretBytes.contentsOfFile(path, maximumSize: 32))
        } catch let error as CryptoError {
            throw KeyringError(.masterKeyUnavailable, "master key \(path): \(error.message)")
        }
    }

    /// The name of the systemd credential that carries the master key (`LoadCredential=master-key:…`).
    public static let credentialName = "master-key"

    /// The master key from the service manager's credential file, else from `file`
    /// (the configuration key named `setting`, for development). The daemon finds
    /// the credential's file (the `Systemd` module's `Credentials.path(of:)`); the
    /// keyring only reads it.
    /// - Parameters:
    ///   - credential: the path of the ``credentialName`` credential, nil when the unit passes none.
    ///   - file: the configured master key file, if any.
    ///   - setting: the configuration key naming `file`, for the message when neither is given.
    /// - Throws: ``KeyringError/Code/masterKeyUnavailable`` saying what to pass.
    public static func load(credential: String?, orFile file: String?, setting: String) throws -> MasterKey {
        guard let path = credential ?? file else {
            throw KeyringError.credential("no master key: pass the \(credentialName) credential (LoadCredential=\(credentialName):…) or set \(setting)")
        }
        return try load(path: path)
    }

    /// A new random master key.
    public static func generate() throws -> MasterKey { try MasterKey(SecretBytes.random(count: 32)) }

    /// The raw bytes, to write a new key file once. Handle with care.
    public func exposedBytes() -> [UInt8] { secret.exposedCopy() }

    public var description: String { "MasterKey(fingerprint \(fingerprint))" }

    /// Encrypts a data key for storage: nonce ‖ ciphertext ‖ tag, bound to its id and purpose.
    func wrap(_ dataKey: SecretBytes, id: Int, purpose: DataKeyPurpose) throws -> [UInt8] {
        let nonce = try SecureRandom.bytes(count: 12)
        let box = try AEAD.aes256GCM.seal(dataKey.exposedCopy(), key: secret, nonce: nonce, authenticating: Self.binding(id, purpose))
        return nonce + box.ciphertext + box.tag
    }

    /// Decrypts a stored data key.
    func unwrap(_ wrapped: [UInt8], id: Int, purpose: DataKeyPurpose) throws -> SecretBytes {
        guard wrapped.count == 12 + 32 + 16 else { throw KeyringError(.undecryptable, "wrapped data key \(id) has the wrong length") }
        do {
            var plain = try AEAD.aes256GCM.open(
                SealedBox(ciphertext: Array(wrapped[12..<44]), tag: Array(wrapped[44...])), key: secret, nonce: wrapped[0..<12],
                authenticating: Self.binding(id, purpose))
            defer { ConstantTime.wipe(&plain) }
            return SecretBytes(plain)
        } catch {
            throw KeyringError(.wrongMasterKey, "data key \(id) does not unwrap with master key \(fingerprint)")
        }
    }

    private static func binding(_ id: Int, _ purpose: DataKeyPurpose) -> [UInt8] {
        Array("osmose/data-key/v1/\(id)/\(purpose.rawValue)".utf8)
    }
}

/// What a data key is for. Each purpose has its own keys and its own primary.
public enum DataKeyPurpose: String, Sendable, CaseIterable, Codable {
    /// AES-256-GCM encryption of columns.
    case column
    /// HMAC-SHA-256 blind indexes for exact-match search.
    case blindIndex = "blind-index"
    /// Keyed pseudonyms for records past their retention term.
    case pseudonymisation
}
