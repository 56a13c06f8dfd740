internal import COpenSSL

/// The output of an AEAD encryption: ciphertext (same length as the plaintext) and tag.
public struct SealedBox: Hashable, Sendable {
    /// The encrypted bytes.
    public let ciphertext: [UInt8]
    /// The 16-byte authentication tag over nonce, associated data and ciphertext.
    public let tag: [UInt8]

    /// Pairs a ciphertext with its tag.
    public init(ciphertext: [UInt8], tag: [UInt8]) {
        self.ciphertext = ciphertext
        self.tag = tag
    }
}

/// An authenticated cipher with a 256-bit key, a 96-bit nonce and a 128-bit tag:
/// AES-256-GCM (NIST SP 800-38D) or ChaCha20-Poly1305 (RFC 8439).
public struct AEAD: Hashable, Sendable, CustomStringConvertible {
    /// AES-256 in Galois/Counter Mode.
    public static let aes256GCM = AEAD(name: "AES-256-GCM")
    /// ChaCha20 with Poly1305, as RFC 8439 specifies.
    public static let chaCha20Poly1305 = AEAD(name: "ChaCha20-Poly1305")

    /// Key length in bytes.
    public let keyByteCount = 32
    /// Nonce length in bytes. A nonce must never repeat under one key.
    public let nonceByteCount = 12
    /// Tag length in bytes.
    public let tagByteCount = 16

    /// The algorithm's name.
    public let name: String

    public var description: String { name }

    var cipher: OpaquePointer? {
        self == .aes256GCM ? Algorithms.aes256GCM : Algorithms.chaCha20Poly1305
    }

    /// Encrypts and authenticates `plaintext`, authenticating `associatedData` too.
    /// - Throws: ``CryptoError`` for a key or nonce of the wrong length.
    public func seal(
        _ plaintext: some Collection<UInt8>, key: SecretBytes, nonce: some Collection<UInt8>,
        authenticating associatedData: some Collection<UInt8> = [UInt8]()
    ) throws -> SealedBox {
        try AEADContext(self, key: key).seal(plaintext, nonce: nonce, authenticating: associatedData)
    }

    /// Checks the tag and decrypts.
    /// - Throws: ``CryptoError/Code/authenticationFailed`` when the ciphertext, tag, nonce,
    ///   key or associated data differ from those used to seal; no plaintext is returned then.
    public func open(
        _ box: SealedBox, key: SecretBytes, nonce: some Collection<UInt8>,
        authenticating associatedData: some Collection<UInt8> = [UInt8]()
    ) throws -> [UInt8] {
        try AEADContext(self, key: key).open(box, nonce: nonce, authenticating: associatedData)
    }
}

/// An AEAD keyed once and reused for many messages: keying costs more than sealing
/// a short value. Not thread-safe; give each task its own.
public final class AEADContext {
    /// The algorithm this context runs.
    public let algorithm: AEAD
    private let encryptor: OpaquePointer
    private let decryptor: OpaquePointer

    /// Keys a new context.
    /// - Throws: ``CryptoError/Code/invalidKey`` if `key` is not 32 bytes.
    public init(_ algorithm: AEAD, key: SecretBytes) throws {
        guard key.count == algorithm.keyByteCount else {
            throw CryptoError(.invalidKey, "\(algorithm) needs a \(algorithm.keyByteCount)-byte key, not \(key.count)")
        }
        let cipher = try Algorithms.require(algorithm.cipher, algorithm.name)
        guard let encryptor = EVP_CIPHER_CTX_new() else { throw CryptoError.openSSL("EVP_CIPHER_CTX_new failed") }
        guard let decryptor = EVP_CIPHER_CTX_new() else {
            EVP_CIPHER_CTX_free(encryptor)
            throw CryptoError.openSSL("EVP_CIPHER_CTX_new failed")
        }
        self.algorithm = algorithm
        self.encryptor = encryptor
        self.decryptor = decryptor
        // The key is 32 bytes (checked above); OpenSSL copies it into the contexts' key schedules.
        let keyed = key.withUnsafeBytes { keyBytes in
            let base = keyBytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
            return EVP_CipherInit_ex2(encryptor, cipher, base, nil, 1, nil) == 1
                && EVP_CipherInit_ex2(decryptor, cipher, base, nil, 0, nil) == 1
        }
        guard keyed else { throw CryptoError.openSSL("\(algorithm) key setup failed", code: .invalidKey) }
    }

    deinit {
        // EVP_CIPHER_CTX_free wipes the key schedule.
        EVP_CIPHER_CTX_free(encryptor)
        EVP_CIPHER_CTX_free(decryptor)
    }

    /// Encrypts and authenticates `plaintext` under `nonce`, authenticating `associatedData`.
    public func seal(
        _ plaintext: some Collection<UInt8>, nonce: some Collection<UInt8>,
        authenticating associatedData: some Collection<UInt8> = [UInt8]()
    ) throws -> SealedBox {
        try plaintext.withContiguousBytes { input in
            try nonce.withContiguousBytes { nonceBytes in
                try associatedData.withContiguousBytes { aad in
                    var ciphertext = [UInt8](repeating: 0, count: input.count)
                    var tag = [UInt8](repeating: 0, count: algorithm.tagByteCount)
                    try ciphertext.withUnsafeMutableBytes { output in
                        try tag.withUnsafeMutableBytes { tagBuffer in
                            try seal(input, nonce: nonceBytes, associatedData: aad, into: output, tag: tagBuffer)
                        }
                    }
                    return SealedBox(ciphertext: ciphertext, tag: tag)
                }
            }
        }
    }

    /// Checks the tag and decrypts.
    /// - Throws: ``CryptoError/Code/authenticationFailed`` on any mismatch.
    public func open(
        _ box: SealedBox, nonce: some Collection<UInt8>,
        authenticating associatedData: some Collection<UInt8> = [UInt8]()
    ) throws -> [UInt8] {
        try box.ciphertext.withUnsafeBytes { input in
            try box.tag.withUnsafeBytes { tag in
                try nonce.withContiguousBytes { nonceBytes in
                    try associatedData.withContiguousBytes { aad in
                        var plaintext = [UInt8](repeating: 0, count: input.count)
                        try plaintext.withUnsafeMutableBytes { output in
                            try open(input, tag: tag, nonce: nonceBytes, associatedData: aad, into: output)
                        }
                        return plaintext
                    }
                }
            }
        }
    }

    /// Seals `input` into `output` (same length) and writes the tag into `tag`.
    /// The buffers are lent by the caller for this call; the precondition bounds every
    /// write OpenSSL makes (`input.count` bytes of output, `tag.count` of tag).
    func seal(
        _ input: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer, associatedData: UnsafeRawBufferPointer,
        into output: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer
    ) throws {
        precondition(output.count >= input.count && tag.count == algorithm.tagByteCount)
        try start(encryptor, encrypt: true, nonce: nonce)
        try process(encryptor, associatedData: associatedData, input: input, output: output)
        var finalLength: Int32 = 0
        guard EVP_CipherFinal_ex(encryptor, output.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? scratchOutput, &finalLength) == 1,
            EVP_CIPHER_CTX_ctrl(encryptor, EVP_CTRL_AEAD_GET_TAG, Int32(tag.count), tag.baseAddress) == 1
        else { throw CryptoError.openSSL("\(algorithm) encryption failed") }
    }

    /// Checks `tag` over `input` and decrypts into `output`. On failure `output` is zeroed.
    /// The buffers are lent by the caller for this call; OpenSSL writes at most
    /// `input.count` bytes of output, which the precondition bounds.
    func open(
        _ input: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer, nonce: UnsafeRawBufferPointer,
        associatedData: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer
    ) throws {
        precondition(output.count >= input.count)
        guard tag.count == algorithm.tagByteCount else {
            throw CryptoError(.authenticationFailed, "\(algorithm) tag must be \(algorithm.tagByteCount) bytes, not \(tag.count)")
        }
        try start(decryptor, encrypt: false, nonce: nonce)
        try process(decryptor, associatedData: associatedData, input: input, output: output)
        var tagCopy = Array(tag)
        var finalLength: Int32 = 0
        let authenticated = EVP_CIPHER_CTX_ctrl(decryptor, EVP_CTRL_AEAD_SET_TAG, Int32(tagCopy.count), &tagCopy) == 1
            && EVP_CipherFinal_ex(decryptor, output.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? scratchOutput, &finalLength) == 1
        guard authenticated else {
            _ = drainOpenSSLErrors()
            if let base = output.baseAddress { OPENSSL_cleanse(base, output.count) }
            throw CryptoError(.authenticationFailed, "\(algorithm) authentication failed: wrong key, nonce, associated data or damaged ciphertext")
        }
    }

    private func start(_ context: OpaquePointer, encrypt: Bool, nonce: UnsafeRawBufferPointer) throws {
        guard nonce.count == algorithm.nonceByteCount else {
            throw CryptoError(.invalidNonce, "\(algorithm) needs a \(algorithm.nonceByteCount)-byte nonce, not \(nonce.count)")
        }
        // The nonce is 12 bytes (checked above), read by OpenSSL during the call.
        guard EVP_CipherInit_ex2(context, nil, nil, nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), encrypt ? 1 : 0, nil) == 1
        else { throw CryptoError.openSSL("\(algorithm) nonce setup failed") }
    }

    private func process(
        _ context: OpaquePointer, associatedData: UnsafeRawBufferPointer,
        input: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer
    ) throws {
        var length: Int32 = 0
        if associatedData.count > 0 {
            guard associatedData.count <= Int(Int32.max),
                EVP_CipherUpdate(context, nil, &length, nonNullBase(associatedData), Int32(associatedData.count)) == 1
            else { throw CryptoError.openSSL("\(algorithm) associated data rejected") }
        }
        guard input.count > 0 else { return }
        guard input.count <= Int(Int32.max),
            EVP_CipherUpdate(context, output.baseAddress!.assumingMemoryBound(to: UInt8.self), &length, nonNullBase(input), Int32(input.count)) == 1
        else { throw CryptoError.openSSL("\(algorithm) update failed") }
    }
}

/// The output pointer for EVP_CipherFinal_ex when the caller's buffer is empty:
/// GCM and ChaCha20-Poly1305 have no padding, so the final step writes nothing (it
/// only needs a non-NULL pointer); never written, hence safe to share between threads.
private nonisolated(unsafe) let scratchOutput = UnsafeMutablePointer<UInt8>.allocate(capacity: 64)
