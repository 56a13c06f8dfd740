/// ML-KEM-768 (FIPS 203, August 2024): key generation from a seed, encapsulation
/// and decapsulation with implicit rejection. Written from the standard's
/// algorithms because Debian 12's OpenSSL 3.0 has no ML-KEM; it is checked against
/// the age post-quantum conformance vectors (X-Wing) and by round trips. The
/// arithmetic has no branch or table index that depends on secret values; the
/// re-encryption check compares and selects in constant time.
public enum MLKEM768 {
    static let n = 256
    static let q: Int32 = 3329
    static let k = 3
    static let eta1 = 2
    static let eta2 = 2
    static let du = 10
    static let dv = 4

    /// Encapsulation key size (bytes).
    public static let encapsulationKeyCount = 384 * k + 32  // 1184
    /// Decapsulation key size (bytes).
    public static let decapsulationKeyCount = 768 * k + 96  // 2400
    /// Ciphertext size (bytes).
    public static let ciphertextCount = 32 * (du * k + dv)  // 1088

    typealias Polynomial = [Int32]

    // MARK: Arithmetic modulo q

    /// x mod q for 0 ≤ x < 2^32 (Barrett reduction, then a constant-time subtraction).
    @inline(__always)
    static func reduce(_ x: UInt32) -> Int32 {
        let quotient = UInt32((UInt64(x) * 1_290_167) >> 32)  // floor(2^32 / q)
        return subtractQ(Int32(bitPattern: x &- quotient &* UInt32(q)))
    }

    /// r − q if r ≥ q, else r, for 0 ≤ r < 2q.
    @inline(__always)
    static func subtractQ(_ r: Int32) -> Int32 {
        let s = r &- q
        return s &+ (q & (s >> 31))
    }

    @inline(__always)
    static func multiply(_ a: Int32, _ b: Int32) -> Int32 { reduce(UInt32(a) &* UInt32(b)) }

    @inline(__always)
    static func add(_ a: Int32, _ b: Int32) -> Int32 { subtractQ(a &+ b) }

    @inline(__always)
    static func subtract(_ a: Int32, _ b: Int32) -> Int32 { subtractQ(a &+ q &- b) }

    /// ζ^BitRev7(i) mod q for i in 0..<128, ζ = 17.
    static let zetas: [Int32] = {
        var powers = [Int32](repeating: 1, count: 128)
        for i in 1..<128 { powers[i] = Int32(Int(powers[i - 1]) * 17 % Int(q)) }
        return (0..<128).map { i in powers[bitReverse7(i)] }
    }()

    /// ζ^(2·BitRev7(i)+1) mod q for i in 0..<128: the moduli of the base-case products.
    static let gammas: [Int32] = (0..<128).map { i in
        var result = 1
        for _ in 0..<(2 * bitReverse7(i) + 1) { result = result * 17 % Int(q) }
        return Int32(result)
    }

    static func bitReverse7(_ value: Int) -> Int {
        var result = 0
        for bit in 0..<7 where value >> bit & 1 == 1 { result |= 1 << (6 - bit) }
        return result
    }

    /// Algorithm 9.
    static func ntt(_ input: Polynomial) -> Polynomial {
        var f = input
        var i = 1
        var length = 128
        while length >= 2 {
            for start in stride(from: 0, to: n, by: 2 * length) {
                let zeta = zetas[i]
                i += 1
                for j in start..<(start + length) {
                    let t = multiply(zeta, f[j + length])
                    f[j + length] = subtract(f[j], t)
                    f[j] = add(f[j], t)
                }
            }
            length /= 2
        }
        return f
    }

    /// Algorithm 10.
    static func inverseNTT(_ input: Polynomial) -> Polynomial {
        var f = input
        var i = 127
        var length = 2
        while length <= 128 {
            for start in stride(from: 0, to: n, by: 2 * length) {
                let zeta = zetas[i]
                i -= 1
                for j in start..<(start + length) {
                    let t = f[j]
                    f[j] = add(t, f[j + length])
                    f[j + length] = multiply(zeta, subtract(f[j + length], t))
                }
            }
            length *= 2
        }
        return f.map { multiply($0, 3303) }  // 128⁻¹ mod q
    }

    /// Algorithms 11 and 12: the product in the NTT domain.
    static func multiplyNTT(_ f: Polynomial, _ g: Polynomial) -> Polynomial {
        var h = Polynomial(repeating: 0, count: n)
        for i in 0..<128 {
            let a0 = f[2 * i], a1 = f[2 * i + 1], b0 = g[2 * i], b1 = g[2 * i + 1]
            h[2 * i] = add(multiply(a0, b0), multiply(multiply(a1, b1), gammas[i]))
            h[2 * i + 1] = add(multiply(a0, b1), multiply(a1, b0))
        }
        return h
    }

    static func addPolynomials(_ f: Polynomial, _ g: Polynomial) -> Polynomial { (0..<n).map { add(f[$0], g[$0]) } }

    // MARK: Sampling

    /// Algorithm 7: a uniform polynomial in the NTT domain from SHAKE128(ρ ‖ j ‖ i).
    static func sampleNTT(_ rho: [UInt8], _ j: UInt8, _ i: UInt8) -> Polynomial {
        var length = 168 * 5
        while true {
            // SHAKE's output is a prefix of any longer output: asking again for more is the same stream.
            let stream = SHA3.shake128(rho, [j, i], count: length)
            var coefficients = Polynomial()
            coefficients.reserveCapacity(n)
            var offset = 0
            while coefficients.count < n, offset + 3 <= stream.count {
                let d1 = Int32(stream[offset]) | (Int32(stream[offset + 1]) & 0x0F) << 8
                let d2 = Int32(stream[offset + 1]) >> 4 | Int32(stream[offset + 2]) << 4
                if d1 < q { coefficients.append(d1) }
                if d2 < q, coefficients.count < n { coefficients.append(d2) }
                offset += 3
            }
            if coefficients.count == n { return coefficients }
            length += 168 * 3
        }
    }

    /// Algorithm 8: a polynomial with small coefficients from 64·η bytes.
    static func samplePolyCBD(_ bytes: [UInt8], eta: Int) -> Polynomial {
        func bit(_ index: Int) -> Int32 { Int32(bytes[index >> 3] >> UInt8(index & 7) & 1) }
        return (0..<n).map { i in
            var x: Int32 = 0
            var y: Int32 = 0
            for j in 0..<eta {
                x += bit(2 * i * eta + j)
                y += bit(2 * i * eta + eta + j)
            }
            return subtract(x, y)
        }
    }

    static func prf(_ seed: [UInt8], _ counter: UInt8, eta: Int) -> [UInt8] { SHA3.shake256(seed, [counter], count: 64 * eta) }

    // MARK: Encodings

    /// Algorithm 5: packs `d` bits of each coefficient, least significant first.
    static func byteEncode(_ f: Polynomial, bits d: Int) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32 * d)
        var bitIndex = 0
        for coefficient in f {
            for j in 0..<d {
                output[bitIndex >> 3] |= UInt8((coefficient >> Int32(j)) & 1) << UInt8(bitIndex & 7)
                bitIndex += 1
            }
        }
        return output
    }

    /// Algorithm 6: the inverse of ``byteEncode(_:bits:)``; for d = 12, values mod q.
    static func byteDecode(_ bytes: ArraySlice<UInt8>, bits d: Int) -> Polynomial {
        let base = bytes.startIndex
        return (0..<n).map { i in
            var value: Int32 = 0
            for j in 0..<d {
                let bitIndex = i * d + j
                value |= Int32(bytes[base + bitIndex >> 3] >> UInt8(bitIndex & 7) & 1) << Int32(j)
            }
            return d == 12 ? reduce(UInt32(value)) : value
        }
    }

    /// Compress_d: round(2^d / q · x) mod 2^d.
    static func compress(_ f: Polynomial, bits d: Int) -> Polynomial {
        f.map { x in Int32(truncatingIfNeeded: ((UInt64(x) << UInt64(d)) + 1664) / 3329) & ((1 << Int32(d)) - 1) }
    }

    /// Decompress_d: round(q / 2^d · y).
    static func decompress(_ f: Polynomial, bits d: Int) -> Polynomial {
        f.map { y in Int32((Int64(y) * Int64(q) + (1 << Int64(d - 1))) >> Int64(d)) }
    }

    // MARK: K-PKE

    static func matrix(_ rho: [UInt8], transposed: Bool) -> [[Polynomial]] {
        (0..<k).map { i in (0..<k).map { j in transposed ? sampleNTT(rho, UInt8(i), UInt8(j)) : sampleNTT(rho, UInt8(j), UInt8(i)) } }
    }

    /// Algorithm 13.
    static func pkeKeyGen(_ d: [UInt8]) -> (encryptionKey: [UInt8], decryptionKey: [UInt8]) {
        let g = SHA3.sha3_512(d, [UInt8(k)])
        let rho = Array(g[0..<32])
        let sigma = Array(g[32..<64])
        let a = matrix(rho, transposed: false)
        var counter: UInt8 = 0
        var s: [Polynomial] = []
        var e: [Polynomial] = []
        for _ in 0..<k {
            s.append(ntt(samplePolyCBD(prf(sigma, counter, eta: eta1), eta: eta1)))
            counter += 1
        }
        for _ in 0..<k {
            e.append(ntt(samplePolyCBD(prf(sigma, counter, eta: eta1), eta: eta1)))
            counter += 1
        }
        var encryptionKey: [UInt8] = []
        var decryptionKey: [UInt8] = []
        for i in 0..<k {
            var t = e[i]
            for j in 0..<k { t = addPolynomials(t, multiplyNTT(a[i][j], s[j])) }
            encryptionKey += byteEncode(t, bits: 12)
            decryptionKey += byteEncode(s[i], bits: 12)
        }
        return (encryptionKey + rho, decryptionKey)
    }

    /// Algorithm 14.
    static func pkeEncrypt(_ encryptionKey: ArraySlice<UInt8>, message: [UInt8], randomness r: [UInt8]) -> [UInt8] {
        let base = encryptionKey.startIndex
        let t = (0..<k).map { byteDecode(encryptionKey[(base + 384 * $0)..<(base + 384 * ($0 + 1))], bits: 12) }
        let rho = Array(encryptionKey[(base + 384 * k)...])
        let aTransposed = matrix(rho, transposed: true)
        var counter: UInt8 = 0
        var y: [Polynomial] = []
        for _ in 0..<k {
            y.append(ntt(samplePolyCBD(prf(r, counter, eta: eta1), eta: eta1)))
            counter += 1
        }
        var e1: [Polynomial] = []
        for _ in 0..<k {
            e1.append(samplePolyCBD(prf(r, counter, eta: eta2), eta: eta2))
            counter += 1
        }
        let e2 = samplePolyCBD(prf(r, counter, eta: eta2), eta: eta2)
        var ciphertext: [UInt8] = []
        for i in 0..<k {
            var sum = Polynomial(repeating: 0, count: n)
            for j in 0..<k { sum = addPolynomials(sum, multiplyNTT(aTransposed[i][j], y[j])) }
            ciphertext += byteEncode(compress(addPolynomials(inverseNTT(sum), e1[i]), bits: du), bits: du)
        }
        var sum = Polynomial(repeating: 0, count: n)
        for j in 0..<k { sum = addPolynomials(sum, multiplyNTT(t[j], y[j])) }
        let mu = decompress(byteDecode(message[...], bits: 1), bits: 1)
        let v = addPolynomials(addPolynomials(inverseNTT(sum), e2), mu)
        return ciphertext + byteEncode(compress(v, bits: dv), bits: dv)
    }

    /// Algorithm 15.
    static func pkeDecrypt(_ decryptionKey: ArraySlice<UInt8>, _ ciphertext: [UInt8]) -> [UInt8] {
        let base = decryptionKey.startIndex
        let u = (0..<k).map { decompress(byteDecode(ciphertext[(32 * du * $0)..<(32 * du * ($0 + 1))], bits: du), bits: du) }
        let v = decompress(byteDecode(ciphertext[(32 * du * k)...], bits: dv), bits: dv)
        var sum = Polynomial(repeating: 0, count: n)
        for i in 0..<k {
            let s = byteDecode(decryptionKey[(base + 384 * i)..<(base + 384 * (i + 1))], bits: 12)
            sum = addPolynomials(sum, multiplyNTT(s, ntt(u[i])))
        }
        let product = inverseNTT(sum)
        let w = (0..<n).map { subtract(v[$0], product[$0]) }
        return byteEncode(compress(w, bits: 1), bits: 1)
    }

    // MARK: ML-KEM

    /// Algorithm 16: the key pair from the 32-byte seeds d and z.
    public static func keyPair(d: [UInt8], z: [UInt8]) throws -> (encapsulationKey: [UInt8], decapsulationKey: SecretBytes) {
        guard d.count == 32, z.count == 32 else { throw CryptoError(.invalidParameter, "ML-KEM-768 key generation takes two 32-byte seeds") }
        let (encryptionKey, decryptionKey) = pkeKeyGen(d)
        var decapsulationKey = decryptionKey + encryptionKey + SHA3.sha3_256(encryptionKey) + z
        defer { ConstantTime.wipe(&decapsulationKey) }
        return (encryptionKey, SecretBytes(decapsulationKey))
    }

    /// Algorithm 17 with the encapsulation key check of §7.2: the shared secret and
    /// the ciphertext for `encapsulationKey`, from the 32-byte `randomness` m.
    public static func encapsulate(_ encapsulationKey: [UInt8], randomness m: [UInt8]) throws -> (sharedSecret: SecretBytes, ciphertext: [UInt8]) {
        guard encapsulationKey.count == encapsulationKeyCount, m.count == 32 else {
            throw CryptoError(.invalidParameter, "an ML-KEM-768 encapsulation key is \(encapsulationKeyCount) bytes")
        }
        for i in 0..<k {
            let slice = encapsulationKey[(384 * i)..<(384 * (i + 1))]
            guard byteEncode(byteDecode(slice, bits: 12), bits: 12).elementsEqual(slice) else {
                throw CryptoError(.invalidParameter, "the ML-KEM-768 encapsulation key holds a coefficient not below q")
            }
        }
        let g = SHA3.sha3_512(m, SHA3.sha3_256(encapsulationKey))
        let ciphertext = pkeEncrypt(encapsulationKey[...], message: m, randomness: Array(g[32..<64]))
        return (SecretBytes(Array(g[0..<32])), ciphertext)
    }

    /// Algorithm 18: the shared secret of `ciphertext`; a ciphertext that does not
    /// re-encrypt to itself gives the implicit-rejection secret J(z ‖ c), never an error.
    public static func decapsulate(_ decapsulationKey: SecretBytes, ciphertext: [UInt8]) throws -> SecretBytes {
        guard decapsulationKey.count == decapsulationKeyCount, ciphertext.count == ciphertextCount else {
            throw CryptoError(.invalidParameter, "ML-KEM-768 takes a \(decapsulationKeyCount)-byte key and a \(ciphertextCount)-byte ciphertext")
        }
        var key = decapsulationKey.exposedCopy()
        defer { ConstantTime.wipe(&key) }
        let decryptionKey = key[0..<(384 * k)]
        let encryptionKey = key[(384 * k)..<(768 * k + 32)]
        let h = Array(key[(768 * k + 32)..<(768 * k + 64)])
        let z = Array(key[(768 * k + 64)...])
        var message = pkeDecrypt(decryptionKey, ciphertext)
        defer { ConstantTime.wipe(&message) }
        var g = SHA3.sha3_512(message, h)
        defer { ConstantTime.wipe(&g) }
        let rejection = SHA3.shake256(z, ciphertext, count: 32)
        let reencrypted = pkeEncrypt(encryptionKey, message: message, randomness: Array(g[32..<64]))
        // Constant-time: mask is all ones when the ciphertexts are equal.
        var difference: UInt8 = 0
        for index in 0..<ciphertextCount { difference |= reencrypted[index] ^ ciphertext[index] }
        let mask = UInt8(truncatingIfNeeded: (Int32(difference) - 1) >> 8)
        var secret = (0..<32).map { (g[$0] & mask) | (rejection[$0] & ~mask) }
        defer { ConstantTime.wipe(&secret) }
        return SecretBytes(secret)
    }
}

/// X-Wing (draft-connolly-cfrg-xwing-kem, the MLKEM768-X25519 KEM of
/// draft-ietf-hpke-pq): ML-KEM-768 and X25519 combined with SHA3-256, keys from
/// a 32-byte seed. Secure while either component is.
public enum XWing {
    /// `\.//^\`
    static let label: [UInt8] = [0x5C, 0x2E, 0x2F, 0x2F, 0x5E, 0x5C]
    /// Encapsulation (public) key size: ML-KEM-768's then X25519's.
    public static let publicKeyCount = MLKEM768.encapsulationKeyCount + 32  // 1216
    /// Ciphertext size: ML-KEM-768's then the X25519 ephemeral share.
    public static let ciphertextCount = MLKEM768.ciphertextCount + 32  // 1120

    /// A decapsulation key expanded from its 32-byte seed.
    public struct PrivateKey: Sendable, CustomStringConvertible {
        let seed: SecretBytes
        let mlkem: SecretBytes
        let x25519: X25519.PrivateKey
        /// The encapsulation key (1216 bytes).
        public let publicKey: [UInt8]

        /// The key of `seed` (32 bytes): SHAKE256(seed, 96) gives ML-KEM's d and z and the X25519 scalar.
        public init(seed: SecretBytes) throws {
            guard seed.count == 32 else { throw CryptoError(.invalidParameter, "an X-Wing decapsulation key is a 32-byte seed") }
            var expanded = seed.withUnsafeBytes { SHA3.shake256(Array($0), count: 96) }
            defer { ConstantTime.wipe(&expanded) }
            let pair = try MLKEM768.keyPair(d: Array(expanded[0..<32]), z: Array(expanded[32..<64]))
            x25519 = try X25519.PrivateKey(rawRepresentation: SecretBytes(Array(expanded[64..<96])))
            mlkem = pair.decapsulationKey
            self.seed = seed
            publicKey = pair.encapsulationKey + x25519.publicKey.rawRepresentation
        }

        /// A new random key.
        public init() throws { try self.init(seed: try SecretBytes.random(count: 32)) }

        /// The seed, for writing a key file once.
        public func exposedSeed() -> [UInt8] { seed.exposedCopy() }

        /// The shared secret of `ciphertext` (1120 bytes).
        /// - Throws: ``CryptoError`` for a wrong length, or an X25519 share giving the all-zero secret.
        public func decapsulate(_ ciphertext: [UInt8]) throws -> SecretBytes {
            guard ciphertext.count == XWing.ciphertextCount else { throw CryptoError(.invalidParameter, "an X-Wing ciphertext is 1120 bytes") }
            let share = Array(ciphertext[MLKEM768.ciphertextCount...])
            let mlkemSecret = try MLKEM768.decapsulate(mlkem, ciphertext: Array(ciphertext[..<MLKEM768.ciphertextCount]))
            let x25519Secret = try x25519.sharedSecret(with: try X25519.PublicKey(rawRepresentation: share))
            return XWing.combine(mlkemSecret, x25519Secret, share: share, publicKey: Array(publicKey[MLKEM768.encapsulationKeyCount...]))
        }

        public var description: String { "XWing.PrivateKey(secret redacted)" }
    }

    static func combine(_ mlkemSecret: SecretBytes, _ x25519Secret: SecretBytes, share: [UInt8], publicKey x25519Public: [UInt8]) -> SecretBytes {
        var first = mlkemSecret.exposedCopy()
        var second = x25519Secret.exposedCopy()
        defer {
            ConstantTime.wipe(&first)
            ConstantTime.wipe(&second)
        }
        return SecretBytes(SHA3.sha3_256(first, second, share, x25519Public, label))
    }

    /// A shared secret and its ciphertext for `publicKey` (1216 bytes).
    /// - Throws: ``CryptoError`` for a malformed key (wrong length, ML-KEM coefficient not below q, low-order X25519 point).
    public static func encapsulate(to publicKey: [UInt8]) throws -> (sharedSecret: SecretBytes, ciphertext: [UInt8]) {
        guard publicKey.count == publicKeyCount else { throw CryptoError(.invalidParameter, "an X-Wing encapsulation key is 1216 bytes") }
        var randomness = try SecureRandom.bytes(count: 32)
        defer { ConstantTime.wipe(&randomness) }
        let (mlkemSecret, mlkemCiphertext) = try MLKEM768.encapsulate(Array(publicKey[..<MLKEM768.encapsulationKeyCount]), randomness: randomness)
        let ephemeral = try X25519.PrivateKey()
        let x25519Public = Array(publicKey[MLKEM768.encapsulationKeyCount...])
        let x25519Secret = try ephemeral.sharedSecret(with: try X25519.PublicKey(rawRepresentation: x25519Public))
        let share = ephemeral.publicKey.rawRepresentation
        return (combine(mlkemSecret, x25519Secret, share: share, publicKey: x25519Public), mlkemCiphertext + share)
    }
}
