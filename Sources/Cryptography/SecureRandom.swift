internal import COpenSSL

/// The operating system's cryptographically secure generator, through OpenSSL's DRBG.
public enum SecureRandom {
    /// Returns `count` random bytes.
    /// - Throws: ``CryptoError/Code/providerFailure`` if the generator cannot be seeded.
    public static func bytes(count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try fill($0) }
        return out
    }

    /// Fills `buffer` with random bytes.
    static func fill(_ buffer: UnsafeMutableRawBufferPointer) throws {
        guard buffer.count > 0 else { return }
        guard buffer.count <= Int(Int32.max) else {
            throw CryptoError(.invalidParameter, "random request of \(buffer.count) bytes is too large")
        }
        // Not empty (checked above), so it has a base address; RAND_bytes writes exactly its count.
        guard RAND_bytes(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(buffer.count)) == 1 else {
            throw CryptoError.openSSL("RAND_bytes failed")
        }
    }
}
