import Cryptography
import Testing

@Suite("SHA-3, ML-KEM-768 and X-Wing")
struct MLKEMTests {
    @Test("SHA3-256, SHA3-512, SHAKE128 and SHAKE256 give the FIPS 202 example digests")
    func sha3() {
        #expect(hexString(SHA3.sha3_256(bytes("abc"))) == "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532")
        #expect(hexString(SHA3.sha3_256(bytes("a"), bytes("bc"))) == hexString(SHA3.sha3_256(bytes("abc"))), "parts hash as their concatenation")
        #expect(
            hexString(SHA3.sha3_512(bytes("abc")))
                == "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0")
        #expect(hexString(SHA3.shake128([UInt8](), count: 32)) == "7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef26")
        #expect(
            hexString(SHA3.shake256([UInt8](), count: 64))
                == "46b9dd2b0ba88d13233b3feb743eeb243fcd52ea62b81b82b50c27646ed5762fd75dc4ddd8c0f200cb05019d67b592f6fc821c49479ab48640292eacb3b7c4be")
        #expect(Array(SHA3.shake128(bytes("x"), count: 500).prefix(100)) == SHA3.shake128(bytes("x"), count: 100), "a longer output extends a shorter one")
    }

    @Test("ML-KEM-768: keys from seeds are deterministic and of the standard sizes; 25 encapsulations decapsulate to the same secret")
    func roundTrips() throws {
        let d = try SecureRandom.bytes(count: 32)
        let z = try SecureRandom.bytes(count: 32)
        let pair = try MLKEM768.keyPair(d: d, z: z)
        let again = try MLKEM768.keyPair(d: d, z: z)
        #expect(pair.encapsulationKey == again.encapsulationKey && pair.decapsulationKey.constantTimeEquals(again.decapsulationKey))
        #expect(pair.encapsulationKey.count == 1184 && pair.decapsulationKey.count == 2400)
        var secrets = Set<[UInt8]>()
        for _ in 0..<25 {
            let (secret, ciphertext) = try MLKEM768.encapsulate(pair.encapsulationKey, randomness: try SecureRandom.bytes(count: 32))
            #expect(ciphertext.count == 1088)
            let opened = try MLKEM768.decapsulate(pair.decapsulationKey, ciphertext: ciphertext)
            #expect(opened.constantTimeEquals(secret))
            secrets.insert(secret.exposedCopy())
        }
        #expect(secrets.count == 25)
    }

    @Test("ML-KEM-768: an altered ciphertext gives the implicit-rejection secret J(z ‖ c), never an error; malformed inputs are refused")
    func rejection() throws {
        let z = try SecureRandom.bytes(count: 32)
        let pair = try MLKEM768.keyPair(d: try SecureRandom.bytes(count: 32), z: z)
        let (secret, ciphertext) = try MLKEM768.encapsulate(pair.encapsulationKey, randomness: try SecureRandom.bytes(count: 32))
        for position in [0, 500, 959, 960, 1087] {
            var altered = ciphertext
            altered[position] ^= 0x01
            let opened = try MLKEM768.decapsulate(pair.decapsulationKey, ciphertext: altered)
            #expect(!opened.constantTimeEquals(secret), "byte \(position)")
            #expect(opened.exposedCopy() == SHA3.shake256(z, altered, count: 32), "byte \(position): the rejection secret")
        }
        #expect(throws: CryptoError.self) { try MLKEM768.decapsulate(pair.decapsulationKey, ciphertext: Array(ciphertext.dropLast())) }
        #expect(throws: CryptoError.self) { try MLKEM768.keyPair(d: [1, 2, 3], z: z) }
        // A coefficient of 4095 (≥ q) in the encapsulation key: the §7.2 check refuses it.
        var bad = pair.encapsulationKey
        bad[0] = 0xFF
        bad[1] |= 0x0F
        #expect(throws: CryptoError.self) { try MLKEM768.encapsulate(bad, randomness: try SecureRandom.bytes(count: 32)) }
    }

    @Test("X-Wing: a key from its seed, encapsulation and decapsulation agree; a low-order X25519 share is refused")
    func xwing() throws {
        let seed = try SecretBytes.random(count: 32)
        let key = try XWing.PrivateKey(seed: seed)
        #expect(key.publicKey.count == 1216)
        #expect(try XWing.PrivateKey(seed: seed).publicKey == key.publicKey)
        let (secret, ciphertext) = try XWing.encapsulate(to: key.publicKey)
        #expect(ciphertext.count == 1120)
        #expect(try key.decapsulate(ciphertext).constantTimeEquals(secret))
        var altered = ciphertext
        altered[1100] ^= 0x80
        #expect(try !key.decapsulate(altered).constantTimeEquals(secret), "a changed X25519 share changes the secret")
        let lowOrder = Array(ciphertext.prefix(1088)) + [UInt8](repeating: 0, count: 32)
        #expect(throws: CryptoError.self) { try key.decapsulate(lowOrder) }
        #expect(!"\(key)".contains(hexString(seed.exposedCopy())))
    }
}
