internal import COpenSSL

/// SHA-3 and the SHAKE extendable-output functions (FIPS 202), from OpenSSL, as
/// ML-KEM (FIPS 203) and the X-Wing combiner use them. Inputs are given in parts
/// and hashed as their concatenation.
public enum SHA3 {
    /// SHA3-256 of the concatenation of `parts`.
    public static func sha3_256(_ parts: [UInt8]...) -> [UInt8] { digest(Algorithms.sha3_256, "SHA3-256", parts, count: 32, extendable: false) }

    /// SHA3-512 of the concatenation of `parts`.
    public static func sha3_512(_ parts: [UInt8]...) -> [UInt8] { digest(Algorithms.sha3_512, "SHA3-512", parts, count: 64, extendable: false) }

    /// The first `count` bytes of SHAKE128 over the concatenation of `parts`.
    public static func shake128(_ parts: [UInt8]..., count: Int) -> [UInt8] { digest(Algorithms.shake128, "SHAKE128", parts, count: count, extendable: true) }

    /// The first `count` bytes of SHAKE256 over the concatenation of `parts`.
    public static func shake256(_ parts: [UInt8]..., count: Int) -> [UInt8] { digest(Algorithms.shake256, "SHAKE256", parts, count: count, extendable: true) }

    /// `output` is `count` bytes, at least one: exactly the digest's size for SHA3-256/512
    /// (the callers above pass 32 and 64), what EVP_DigestFinalXOF is asked for otherwise.
    private static func digest(_ algorithm: OpaquePointer?, _ name: String, _ parts: [[UInt8]], count: Int, extendable: Bool) -> [UInt8] {
        guard let algorithm else { fatalError("the OpenSSL default provider has no \(name)") }
        precondition(count > 0 && (extendable || count == Int(EVP_MD_get_size(algorithm))), "\(name): \(count) output bytes")
        guard let context = EVP_MD_CTX_new() else { fatalError("out of memory creating a \(name) context") }
        defer { EVP_MD_CTX_free(context) }
        precondition(EVP_DigestInit_ex2(context, algorithm, nil) == 1, "\(name) unavailable")
        for part in parts where !part.isEmpty {
            _ = part.withUnsafeBytes { EVP_DigestUpdate(context, $0.baseAddress, $0.count) }
        }
        var output = [UInt8](repeating: 0, count: count)
        let status = output.withUnsafeMutableBytes { buffer -> Int32 in
            let base = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
            if extendable { return EVP_DigestFinalXOF(context, base, count) }
            var length: UInt32 = 0
            return EVP_DigestFinal_ex(context, base, &length)
        }
        precondition(status == 1, "\(name) finalisation failed")
        return output
    }
}
