internal import COpenSSL

/// scrypt (RFC 7914), the memory-hard password-based key derivation function.
public enum Scrypt {
    /// Cost parameters. `costFactor` (N) must be a power of two greater than 1.
    public struct Parameters: Hashable, Sendable {
        /// N: CPU and memory cost, a power of two.
        public var costFactor: UInt64
        /// r: block size.
        public var blockSize: UInt32
        /// p: parallelisation.
        public var parallelism: UInt32

        /// Creates a parameter set.
        public init(costFactor: UInt64, blockSize: UInt32, parallelism: UInt32) {
            self.costFactor = costFactor
            self.blockSize = blockSize
            self.parallelism = parallelism
        }

        /// Interactive-login parameters recommended by OWASP (2023): N = 2^17, r = 8, p = 1 (128 MiB).
        public static let interactiveLogin = Parameters(costFactor: 1 << 17, blockSize: 8, parallelism: 1)

        /// Memory needed in bytes: 128 · r · (N + p).
        var memoryNeeded: UInt64 { 128 * UInt64(blockSize) * (costFactor + UInt64(parallelism)) }
    }

    /// Derives `outputByteCount` bytes from `password` and `salt`.
    /// - Throws: ``CryptoError/Code/invalidParameter`` when N is not a power of two above 1,
    ///   r or p is zero, or the memory needed exceeds 2 GiB.
    public static func deriveKey(
        password: some Collection<UInt8>,
        salt: some Collection<UInt8>,
        parameters: Parameters,
        outputByteCount: Int
    ) throws -> SecretBytes {
        let n = parameters.costFactor
        guard n > 1, n & (n - 1) == 0 else {
            throw CryptoError(.invalidParameter, "scrypt cost factor N must be a power of two above 1, not \(n)")
        }
        guard parameters.blockSize > 0, parameters.parallelism > 0 else {
            throw CryptoError(.invalidParameter, "scrypt r and p must be positive")
        }
        guard parameters.memoryNeeded <= 2 << 30 else {
            throw CryptoError(.invalidParameter, "scrypt parameters need more than 2 GiB of memory")
        }
        guard outputByteCount > 0 else { throw CryptoError(.invalidParameter, "scrypt output length must be positive") }
        let memoryLimit = parameters.memoryNeeded + (1 << 20)
        return try password.withContiguousBytes { passwordBytes in
            try salt.withContiguousBytes { saltBytes in
                try SecretBytes(count: outputByteCount) { out in
                    // Password and salt are lent for this call (non-NULL bases, even when empty); `out` is
                    // the new secret's buffer of `outputByteCount` (> 0) bytes, written for exactly its count.
                    let passwordBase = UnsafeRawPointer(nonNullBase(passwordBytes)).assumingMemoryBound(to: CChar.self)
                    let status = EVP_PBE_scrypt(
                            passwordBase, passwordBytes.count,
                            nonNullBase(saltBytes), saltBytes.count,
                            n, UInt64(parameters.blockSize), UInt64(parameters.parallelism), memoryLimit,
                            out.baseAddress!.assumingMemoryBound(to: UInt8.self), out.count
                        )
                    guard status == 1 else { throw CryptoError.openSSL("scrypt derivation failed", code: .invalidParameter) }
                }
            }
        }
    }
}
