internal import COpenSSL

/// HMAC-SHA-256 (RFC 2104, FIPS 198-1).
public enum HMACSHA256 {
    /// Tag length in bytes.
    public static let byteCount = 32

    /// The HMAC-SHA-256 tag of `message` under `key`.
    /// - Throws: ``CryptoError`` if OpenSSL fails (it does not for any key length).
    public static func authenticationCode(for message: some Collection<UInt8>, key: SecretBytes) throws -> [UInt8] {
        try key.withUnsafeBytes { keyBytes in
            try message.withContiguousBytes { messageBytes in
                try compute(key: keyBytes, message: messageBytes)
            }
        }
    }

    /// True when `tag` is the HMAC-SHA-256 of `message` under `key`, compared in constant time.
    public static func isValid(_ tag: some Collection<UInt8>, for message: some Collection<UInt8>, key: SecretBytes) throws -> Bool {
        ConstantTime.equals(try authenticationCode(for: message, key: key), tag)
    }

    /// `key` and `message` are lent by the caller for this call; OpenSSL reads them
    /// (through non-NULL bases, even when empty) before returning and keeps no pointer.
    static func compute(key: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer) throws -> [UInt8] {
        let mac = try Algorithms.require(Algorithms.hmac, "HMAC")
        guard let context = EVP_MAC_CTX_new(mac) else { throw CryptoError.openSSL("EVP_MAC_CTX_new failed") }
        defer { EVP_MAC_CTX_free(context) }
        let parameters = ParameterList()
        parameters.addUTF8("digest", "SHA256")
        let initialised = parameters.withParameters { EVP_MAC_init(context, nonNullBase(key), key.count, $0) }
        guard initialised == 1 else { throw CryptoError.openSSL("HMAC initialisation failed") }
        guard EVP_MAC_update(context, nonNullBase(message), message.count) == 1 else {
            throw CryptoError.openSSL("HMAC update failed")
        }
        var tag = [UInt8](repeating: 0, count: byteCount)
        var length = 0
        // `tag` holds `byteCount` bytes, the most EVP_MAC_final may write.
        let finished = tag.withUnsafeMutableBufferPointer { EVP_MAC_final(context, $0.baseAddress, &length, byteCount) }
        guard finished == 1, length == byteCount else { throw CryptoError.openSSL("HMAC finalisation failed") }
        return tag
    }
}
