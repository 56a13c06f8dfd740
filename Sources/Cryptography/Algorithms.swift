internal import COpenSSL

/// OpenSSL algorithm objects, fetched once from the default provider and reused:
/// fetching per call costs more than hashing a short message.
enum Algorithms {
    // Fetched algorithm objects are immutable and documented as safe to share between threads.
    nonisolated(unsafe) static let sha256: OpaquePointer? = EVP_MD_fetch(nil, "SHA256", nil)
    nonisolated(unsafe) static let aes256GCM: OpaquePointer? = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil)
    nonisolated(unsafe) static let chaCha20Poly1305: OpaquePointer? = EVP_CIPHER_fetch(nil, "ChaCha20-Poly1305", nil)
    nonisolated(unsafe) static let chaCha20: OpaquePointer? = EVP_CIPHER_fetch(nil, "ChaCha20", nil)
    nonisolated(unsafe) static let hmac: OpaquePointer? = EVP_MAC_fetch(nil, "HMAC", nil)
    nonisolated(unsafe) static let hkdf: OpaquePointer? = EVP_KDF_fetch(nil, "HKDF", nil)
    nonisolated(unsafe) static let sha3_256: OpaquePointer? = EVP_MD_fetch(nil, "SHA3-256", nil)
    nonisolated(unsafe) static let sha3_512: OpaquePointer? = EVP_MD_fetch(nil, "SHA3-512", nil)
    nonisolated(unsafe) static let shake128: OpaquePointer? = EVP_MD_fetch(nil, "SHAKE128", nil)
    nonisolated(unsafe) static let shake256: OpaquePointer? = EVP_MD_fetch(nil, "SHAKE256", nil)

    static func require(_ algorithm: OpaquePointer?, _ name: String) throws -> OpaquePointer {
        guard let algorithm else { throw CryptoError.openSSL("the OpenSSL default provider has no \(name)") }
        return algorithm
    }
}

/// A list of OSSL_PARAM values whose names and buffers this object owns. Buffers are
/// wiped before they are freed, since they often hold keys. Each OSSL_PARAM points
/// into an allocation of `allocations`, freed only in `deinit`: the parameters are
/// valid for as long as the list, and OpenSSL reads them only during the calls that
/// ``withParameters(_:)`` lends them to.
final class ParameterList {
    private var allocations: [UnsafeMutableRawBufferPointer] = []
    private var parameters: [OSSL_PARAM] = []

    private func copy(_ bytes: UnsafeRawBufferPointer) -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        if bytes.count > 0 { buffer.copyMemory(from: bytes) }
        allocations.append(buffer)
        return buffer
    }

    private func cString(_ string: String) -> UnsafeMutablePointer<CChar> {
        let bytes = Array(string.utf8CString)
        let buffer = bytes.withUnsafeBytes { copy($0) }
        return buffer.baseAddress!.assumingMemoryBound(to: CChar.self)
    }

    func addUTF8(_ name: String, _ value: String) {
        let valueBytes = Array(value.utf8)
        parameters.append(OSSL_PARAM_construct_utf8_string(cString(name), cString(value), valueBytes.count))
    }

    func addOctets(_ name: String, _ bytes: UnsafeRawBufferPointer) {
        let buffer = copy(bytes)
        parameters.append(OSSL_PARAM_construct_octet_string(cString(name), buffer.baseAddress, bytes.count))
    }

    /// Calls `body` with the NULL-terminated parameter array, valid during the call only.
    func withParameters<Result>(_ body: (UnsafePointer<OSSL_PARAM>) throws -> Result) rethrows -> Result {
        var terminated = parameters
        terminated.append(OSSL_PARAM_construct_end())
        return try terminated.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    deinit {
        for buffer in allocations {
            OPENSSL_cleanse(buffer.baseAddress, buffer.count)
            buffer.deallocate()
        }
    }
}

extension Collection<UInt8> {
    /// Calls `body` with a contiguous view of the bytes, copying only when needed.
    func withContiguousBytes<Result>(_ body: (UnsafeRawBufferPointer) throws -> Result) rethrows -> Result {
        if let result = try withContiguousStorageIfAvailable({ try body(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return try Array(self).withUnsafeBytes(body)
    }
}

/// A non-null pointer to `buffer`'s bytes, or to a static zero byte when empty: several
/// OpenSSL functions reject a NULL input even with a zero length. The static byte is
/// allocated once and never freed or written, so any thread may pass it (for a length of zero).
func nonNullBase(_ buffer: UnsafeRawBufferPointer) -> UnsafePointer<UInt8> {
    if let base = buffer.baseAddress { return base.assumingMemoryBound(to: UInt8.self) }
    return emptyInput
}

private nonisolated(unsafe) let emptyInput: UnsafePointer<UInt8> = {
    let pointer = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
    pointer.initialize(to: 0)
    return UnsafePointer(pointer)
}()
