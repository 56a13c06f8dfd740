internal import COpenSSL
import Glibc

/// The thread-specific key of ``SHA256/hash(prefix:_:_:)``'s digest contexts. Each
/// context is created, used and (by the key's destructor, when its thread ends) freed
/// on one thread only. Freeing it as a thread ends, possibly while the process exits,
/// is safe because OpenSSL's global state is never torn down (see ``OpenSSLRuntime``).
private let contextKey: pthread_key_t = {
    var key = pthread_key_t()
    precondition(pthread_key_create(&key) { context in EVP_MD_CTX_free(OpaquePointer(context)) } == 0, "no thread-specific key")
    return key
}()

/// SHA-256 (FIPS 180-4).
public enum SHA256 {
    /// Digest length in bytes.
    public static let byteCount = 32

    /// The SHA-256 digest of `message`.
    public static func hash(_ message: some Collection<UInt8>) -> [UInt8] {
        message.withContiguousBytes { hash(buffer: $0) }
    }

    /// The SHA-256 digest of the concatenation of `parts`, without building it.
    /// SHA-256 of `prefix ‖ first ‖ second` on a digest context kept per thread:
    /// for the many short inputs of a Merkle tree and a hash chain, where creating a
    /// context (or OpenSSL 3's one-shot `SHA256()`, which fetches the algorithm by
    /// name on every call) costs more than hashing 65 bytes.
    public static func hash(prefix: UInt8?, _ first: [UInt8], _ second: [UInt8] = []) -> [UInt8] {
        first.withUnsafeBytes { first in second.withUnsafeBytes { second in hash(prefix: prefix, first, second) } }
    }

    /// SHA-256 of `prefix ‖ first`, for bytes that lie in a larger buffer (a COPY stream).
    public static func hash(prefix: UInt8?, _ first: ArraySlice<UInt8>) -> [UInt8] {
        first.withUnsafeBytes { hash(prefix: prefix, $0, UnsafeRawBufferPointer(start: nil, count: 0)) }
    }

    /// `first` and `second` are lent for this call and read before it returns; the
    /// digest is written into a new array of exactly `byteCount` bytes.
    private static func hash(prefix: UInt8?, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) -> [UInt8] {
        let context = threadContext()
        precondition(EVP_DigestInit_ex2(context, Algorithms.sha256, nil) == 1, "SHA-256 unavailable")
        if var prefix {
            _ = EVP_DigestUpdate(context, &prefix, 1)
        }
        if !first.isEmpty { _ = EVP_DigestUpdate(context, first.baseAddress, first.count) }
        if !second.isEmpty { _ = EVP_DigestUpdate(context, second.baseAddress, second.count) }
        var length: UInt32 = 0
        let digest = [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, count in
            let status = EVP_DigestFinal_ex(context, buffer.baseAddress, &length)
            precondition(status == 1 && length == byteCount, "SHA-256 finalisation failed")
            count = byteCount
        }
        return digest
    }

    /// This thread's reusable digest context, freed when the thread ends.
    private static func threadContext() -> OpaquePointer {
        if let existing = pthread_getspecific(contextKey) { return OpaquePointer(existing) }
        guard let context = EVP_MD_CTX_new() else { fatalError("out of memory creating a SHA-256 context") }
        pthread_setspecific(contextKey, UnsafeRawPointer(context))
        return context
    }

    public static func hash(concatenating parts: [[UInt8]]) -> [UInt8] {
        var hasher = SHA256Hasher()
        for part in parts { hasher.update(part) }
        return hasher.finalize()
    }

    static func hash(buffer: UnsafeRawBufferPointer) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: byteCount)
        var length: UInt32 = 0
        let status = digest.withUnsafeMutableBufferPointer { out in
            EVP_Digest(nonNullBase(buffer), buffer.count, out.baseAddress, &length, Algorithms.sha256, nil)
        }
        // EVP_Digest fails only on allocation failure or a missing provider; both are fatal.
        precondition(status == 1 && length == byteCount, "SHA-256 unavailable: \(drainOpenSSLErrors() ?? "unknown")")
        return digest
    }
}

/// An incremental SHA-256 computation, for inputs too large to hold in memory.
///
/// Owns its OpenSSL context; not copyable, so exactly one owner frees it.
public struct SHA256Hasher: ~Copyable {
    private let context: OpaquePointer

    /// Starts a new digest.
    public init() {
        guard let context = EVP_MD_CTX_new() else { fatalError("out of memory creating a SHA-256 context") }
        precondition(EVP_DigestInit_ex2(context, Algorithms.sha256, nil) == 1, "SHA-256 unavailable")
        self.context = context
    }

    /// Adds `bytes` to the digest.
    public mutating func update(_ bytes: some Collection<UInt8>) {
        bytes.withContiguousBytes { update(buffer: $0) }
    }

    /// Adds the bytes `span` views to the digest (a block lent by a reader, with no copy).
    public mutating func update(_ span: RawSpan) {
        span.withUnsafeBytes { update(buffer: $0) }
    }

    /// Adds the bytes in `buffer` to the digest.
    mutating func update(buffer: UnsafeRawBufferPointer) {
        guard buffer.count > 0 else { return }
        precondition(EVP_DigestUpdate(context, buffer.baseAddress, buffer.count) == 1, "SHA-256 update failed")
    }

    /// Finishes and returns the 32-byte digest.
    public consuming func finalize() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: SHA256.byteCount)
        var length: UInt32 = 0
        let status = digest.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        precondition(status == 1 && length == SHA256.byteCount, "SHA-256 finalisation failed")
        return digest
    }

    deinit { EVP_MD_CTX_free(context) }
}
