internal import COpenSSL

/// Owns one OpenSSL EVP_PKEY and frees it on release.
///
/// `@unchecked Sendable`, safe to share: an EVP_PKEY is reference-counted and OpenSSL
/// documents concurrent read-only use (signing, verifying, deriving with per-call
/// contexts) as thread-safe; the pointer itself never changes.
final class OwnedKey: @unchecked Sendable {
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { EVP_PKEY_free(pointer) }

    /// `raw` is lent for this call and read (32 bytes, checked) before OpenSSL returns; the key keeps its own copy.
    static func privateKey(type: Int32, raw: UnsafeRawBufferPointer, name: String) throws -> OwnedKey {
        guard raw.count == 32, let key = EVP_PKEY_new_raw_private_key(type, nil, raw.baseAddress!.assumingMemoryBound(to: UInt8.self), 32) else {
            throw CryptoError.openSSL("\(name) private key must be 32 bytes, not \(raw.count)", code: .invalidKey)
        }
        return OwnedKey(key)
    }

    static func publicKey(type: Int32, raw: [UInt8], name: String) throws -> OwnedKey {
        guard raw.count == 32, let key = EVP_PKEY_new_raw_public_key(type, nil, raw, 32) else {
            throw CryptoError.openSSL("\(name) public key must be 32 bytes, not \(raw.count)", code: .invalidKey)
        }
        return OwnedKey(key)
    }

    func rawPublicKey() -> [UInt8] {
        var raw = [UInt8](repeating: 0, count: 32)
        var length = 32
        precondition(EVP_PKEY_get_raw_public_key(pointer, &raw, &length) == 1 && length == 32, "public key export failed")
        return raw
    }

    func rawPrivateKey() -> SecretBytes {
        SecretBytes(count: 32) { out in
            var length = 32
            precondition(
                // `out` is the new secret's 32-byte buffer; `length` tells OpenSSL its size.
                EVP_PKEY_get_raw_private_key(pointer, out.baseAddress!.assumingMemoryBound(to: UInt8.self), &length) == 1 && length == 32,
                "private key export failed")
        }
    }
}

/// Ed25519 signatures (RFC 8032, pure EdDSA).
public enum Ed25519 {
    /// A signing key. Its 32-byte seed is zeroed when released.
    public struct PrivateKey: Sendable, CustomStringConvertible {
        let key: OwnedKey

        /// Generates a new key from the secure random generator.
        public init() throws {
            let seed = try SecretBytes.random(count: 32)
            try self.init(rawRepresentation: seed)
        }

        /// Imports a key from its 32-byte seed (RFC 8032 private key).
        /// - Throws: ``CryptoError/Code/invalidKey`` if the seed is not 32 bytes.
        public init(rawRepresentation seed: SecretBytes) throws {
            key = try seed.withUnsafeBytes { try OwnedKey.privateKey(type: EVP_PKEY_ED25519, raw: $0, name: "Ed25519") }
        }

        /// The 32-byte seed. Handle with care: whoever holds it can sign.
        public var rawRepresentation: SecretBytes { key.rawPrivateKey() }

        /// The matching verification key.
        public var publicKey: PublicKey { PublicKey(verified: key.rawPublicKey()) }

        /// Signs `message`, returning the 64-byte signature.
        public func signature(for message: some Collection<UInt8>) throws -> [UInt8] {
            guard let context = EVP_MD_CTX_new() else { throw CryptoError.openSSL("EVP_MD_CTX_new failed") }
            defer { EVP_MD_CTX_free(context) }
            guard EVP_DigestSignInit_ex(context, nil, nil, nil, nil, key.pointer, nil) == 1 else {
                throw CryptoError.openSSL("Ed25519 signing setup failed")
            }
            var signature = [UInt8](repeating: 0, count: 64)
            var length = 64
            let status = message.withContiguousBytes { bytes in
                EVP_DigestSign(context, &signature, &length, nonNullBase(bytes), bytes.count)
            }
            guard status == 1, length == 64 else { throw CryptoError.openSSL("Ed25519 signing failed") }
            return signature
        }

        public var description: String { "Ed25519.PrivateKey(redacted)" }
    }

    /// A verification key.
    public struct PublicKey: Sendable, Hashable {
        /// The 32-byte encoded point.
        public let rawRepresentation: [UInt8]

        init(verified raw: [UInt8]) { rawRepresentation = raw }

        /// Imports a 32-byte public key.
        /// - Throws: ``CryptoError/Code/invalidKey`` if it is not 32 bytes or not a valid encoding.
        public init(rawRepresentation raw: some Collection<UInt8>) throws {
            let bytes = Array(raw)
            _ = try OwnedKey.publicKey(type: EVP_PKEY_ED25519, raw: bytes, name: "Ed25519")
            rawRepresentation = bytes
        }

        /// True when `signature` is a valid Ed25519 signature of `message` by this key.
        public func isValidSignature(_ signature: some Collection<UInt8>, for message: some Collection<UInt8>) -> Bool {
            let signatureBytes = Array(signature)
            guard signatureBytes.count == 64,
                let key = try? OwnedKey.publicKey(type: EVP_PKEY_ED25519, raw: rawRepresentation, name: "Ed25519"),
                let context = EVP_MD_CTX_new()
            else { return false }
            defer { EVP_MD_CTX_free(context) }
            guard EVP_DigestVerifyInit_ex(context, nil, nil, nil, nil, key.pointer, nil) == 1 else {
                _ = drainOpenSSLErrors()
                return false
            }
            let status = message.withContiguousBytes { bytes in
                EVP_DigestVerify(context, signatureBytes, 64, nonNullBase(bytes), bytes.count)
            }
            if status != 1 { _ = drainOpenSSLErrors() }
            return status == 1
        }
    }
}

/// X25519 key agreement (RFC 7748).
public enum X25519 {
    /// A private scalar. Zeroed when released.
    public struct PrivateKey: Sendable, CustomStringConvertible {
        let key: OwnedKey

        /// Generates a new key from the secure random generator.
        public init() throws {
            try self.init(rawRepresentation: try SecretBytes.random(count: 32))
        }

        /// Imports a 32-byte scalar (clamped by the algorithm, as RFC 7748 says).
        public init(rawRepresentation scalar: SecretBytes) throws {
            key = try scalar.withUnsafeBytes { try OwnedKey.privateKey(type: EVP_PKEY_X25519, raw: $0, name: "X25519") }
        }

        /// The 32-byte scalar as given.
        public var rawRepresentation: SecretBytes { key.rawPrivateKey() }

        /// The matching public key (the scalar times the base point).
        public var publicKey: PublicKey { PublicKey(verified: key.rawPublicKey()) }

        /// The 32-byte shared secret with `peer`.
        /// - Throws: ``CryptoError/Code/weakPublicKey`` when the result is all zeros (a
        ///   low-order point), which RFC 7748 §6.1 says to reject.
        public func sharedSecret(with peer: PublicKey) throws -> SecretBytes {
            let peerKey = try OwnedKey.publicKey(type: EVP_PKEY_X25519, raw: peer.rawRepresentation, name: "X25519")
            guard let context = EVP_PKEY_CTX_new_from_pkey(nil, key.pointer, nil) else {
                throw CryptoError.openSSL("EVP_PKEY_CTX_new failed")
            }
            defer { EVP_PKEY_CTX_free(context) }
            guard EVP_PKEY_derive_init(context) == 1, EVP_PKEY_derive_set_peer(context, peerKey.pointer) == 1 else {
                throw CryptoError.openSSL("X25519 peer key rejected", code: .weakPublicKey)
            }
            let secret = try SecretBytes(count: 32) { out in
                var length = 32
                // `out` is the new secret's 32-byte buffer; `length` tells OpenSSL its size.
                guard EVP_PKEY_derive(context, out.baseAddress!.assumingMemoryBound(to: UInt8.self), &length) == 1, length == 32 else {
                    throw CryptoError.openSSL("X25519 produced the all-zero secret (low-order public key)", code: .weakPublicKey)
                }
            }
            let allZero = secret.withUnsafeBytes { bytes in ConstantTime.equals(bytes, UnsafeRawBufferPointer(zeroKey)) }
            guard !allZero else { throw CryptoError(.weakPublicKey, "X25519 produced the all-zero secret (low-order public key)") }
            return secret
        }

        public var description: String { "X25519.PrivateKey(redacted)" }
    }

    /// A public key: a Montgomery u-coordinate.
    public struct PublicKey: Sendable, Hashable {
        /// The 32-byte u-coordinate.
        public let rawRepresentation: [UInt8]

        init(verified raw: [UInt8]) { rawRepresentation = raw }

        /// Imports a 32-byte public key.
        public init(rawRepresentation raw: some Collection<UInt8>) throws {
            let bytes = Array(raw)
            guard bytes.count == 32 else { throw CryptoError(.invalidKey, "X25519 public key must be 32 bytes, not \(bytes.count)") }
            rawRepresentation = bytes
        }
    }
}

private nonisolated(unsafe) let zeroKey: UnsafeMutableRawBufferPointer = {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 8)
    buffer.initializeMemory(as: UInt8.self, repeating: 0)
    return buffer
}()
