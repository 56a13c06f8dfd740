internal import COpenSSL

/// SHA-256 (FIPS 180-4).
public enum SHA256 {
    /// Digest length in bytes.
    public static let byteCount = 32

    /// The SHA-256 digest of `message`.
    public static func hash(_ message: some Collection<UInt8>) -> [UInt8] {
        message.withContiguousBytes { hash(buffer: $0) }
    }

    /// The SHA-256 digest of the concatenation of `parts`, without building it.
    /// SHA-256 of `prefix ‖ first ‖ second`, with OpenSSL's one-shot function and no
    /// digest context: for the many short inputs of a Merkle tree and a hash chain,
    /// where setting up an EVP context costs more than hashing 65 bytes.
    public static func hash(prefix: UInt8?, _ first: [UInt8], _ second: [UInt8] = []) -> [UInt8] {
        let count = (prefix == nil ? 0 : 1) + first.count + second.count
        var digest = [UInt8](repeating: 0, count: byteCount)
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: max(count, 1)) { buffer in
            var offset = 0
            if let prefix {
                buffer[0] = prefix
                offset = 1
            }
            for part in [first, second] {
                part.withUnsafeBufferPointer { source in
                    guard let base = source.baseAddress else { return }
                    (buffer.baseAddress! + offset).update(from: base, count: source.count)
                    offset += source.count
                }
            }
            digest.withUnsafeMutableBufferPointer { output in
                _ = COpenSSL.SHA256(buffer.baseAddress, count, output.baseAddress)
            }
        }
        return digest
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
