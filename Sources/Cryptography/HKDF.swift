internal import COpenSSL

/// HKDF with SHA-256 (RFC 5869): extract-then-expand key derivation.
public enum HKDFSHA256 {
    /// Derives `outputByteCount` bytes from `inputKeyMaterial`.
    /// - Parameters:
    ///   - inputKeyMaterial: the secret to derive from.
    ///   - salt: optional non-secret randomness; empty means a string of zeros, as RFC 5869 says.
    ///   - info: context binding the output to its purpose.
    ///   - outputByteCount: 1 to 8160 (255 × 32) bytes.
    /// - Throws: ``CryptoError/Code/invalidParameter`` for an output length out of range.
    public static func deriveKey(
        inputKeyMaterial: SecretBytes,
        salt: some Collection<UInt8> = [UInt8](),
        info: some Collection<UInt8> = [UInt8](),
        outputByteCount: Int
    ) throws -> SecretBytes {
        guard (1...(255 * SHA256.byteCount)).contains(outputByteCount) else {
            throw CryptoError(.invalidParameter, "HKDF-SHA-256 output must be 1 to 8160 bytes, not \(outputByteCount)")
        }
        let kdf = try Algorithms.require(Algorithms.hkdf, "HKDF")
        guard let context = EVP_KDF_CTX_new(kdf) else { throw CryptoError.openSSL("EVP_KDF_CTX_new failed") }
        defer { EVP_KDF_CTX_free(context) }
        let parameters = ParameterList()
        parameters.addUTF8("digest", "SHA256")
        // addOctets copies the bytes into storage `parameters` owns until the derivation is over.
        inputKeyMaterial.withUnsafeBytes { parameters.addOctets("key", $0) }
        salt.withContiguousBytes { if $0.count > 0 { parameters.addOctets("salt", $0) } }
        info.withContiguousBytes { parameters.addOctets("info", $0) }
        return try SecretBytes(count: outputByteCount) { out in
            let status = parameters.withParameters { list in
                // `out` is the secret's own buffer of `outputByteCount` (≥ 1) bytes, written for exactly its count.
                EVP_KDF_derive(context, out.baseAddress!.assumingMemoryBound(to: UInt8.self), out.count, list)
            }
            guard status == 1 else { throw CryptoError.openSSL("HKDF derivation failed") }
        }
    }
}
