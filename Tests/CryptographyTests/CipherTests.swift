import Cryptography
import Testing

@Suite("AEAD ciphers against published vectors, and tampering")
struct CipherTests {
    struct GCMVector: Sendable, CustomTestStringConvertible {
        let name: String, key: String, nonce: String, plaintext: String, aad: String, ciphertext: String, tag: String
        var testDescription: String { name }
    }

    // The AES-256 cases of the GCM specification (McGrew & Viega), which NIST's
    // GCM validation files reproduce.
    static let gcm: [GCMVector] = [
        GCMVector(name: "test case 13 (empty)", key: String(repeating: "00", count: 32), nonce: String(repeating: "00", count: 12),
                  plaintext: "", aad: "", ciphertext: "", tag: "530f8afbc74536b9a963b4f1c4cb738b"),
        GCMVector(name: "test case 14", key: String(repeating: "00", count: 32), nonce: String(repeating: "00", count: 12),
                  plaintext: String(repeating: "00", count: 16), aad: "",
                  ciphertext: "cea7403d4d606b6e074ec5d3baf39d18", tag: "d0d1c8a799996bf0265b98b5d48ab919"),
        GCMVector(name: "test case 15", key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                  nonce: "cafebabefacedbaddecaf888",
                  plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
                  aad: "",
                  ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
                  tag: "b094dac5d93471bdec1a502270e3cc6c"),
        GCMVector(name: "test case 16 (with AAD)", key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
                  nonce: "cafebabefacedbaddecaf888",
                  plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
                  aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
                  ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                  tag: "76fc6ece0f4e1768cddf8853bb2d551b"),
    ]

    @Test("AES-256-GCM: GCM specification vectors seal and open", arguments: gcm)
    func aesGCM(vector: GCMVector) throws {
        let key = secret(vector.key)
        let box = try AEAD.aes256GCM.seal(hex(vector.plaintext), key: key, nonce: hex(vector.nonce), authenticating: hex(vector.aad))
        #expect(hexString(box.ciphertext) == vector.ciphertext)
        #expect(hexString(box.tag) == vector.tag)
        let opened = try AEAD.aes256GCM.open(
            SealedBox(ciphertext: hex(vector.ciphertext), tag: hex(vector.tag)), key: key, nonce: hex(vector.nonce),
            authenticating: hex(vector.aad))
        #expect(hexString(opened) == vector.plaintext)
    }

    static let rfc8439Plaintext = bytes(
        "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.")

    @Test("ChaCha20-Poly1305: RFC 8439 §2.8.2")
    func chaCha() throws {
        let key = SecretBytes(Array(0x80...0x9f))
        let nonce = hex("070000004041424344454647")
        let aad = hex("50515253c0c1c2c3c4c5c6c7")
        let box = try AEAD.chaCha20Poly1305.seal(Self.rfc8439Plaintext, key: key, nonce: nonce, authenticating: aad)
        #expect(
            hexString(box.ciphertext)
                == "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116")
        #expect(hexString(box.tag) == "1ae10b594f09e26a7e902ecbd0600691")
        #expect(try AEAD.chaCha20Poly1305.open(box, key: key, nonce: nonce, authenticating: aad) == Self.rfc8439Plaintext)
    }

    @Test("A tampered tag, nonce, ciphertext, key or associated data is rejected", arguments: [AEAD.aes256GCM, .chaCha20Poly1305])
    func tampering(algorithm: AEAD) throws {
        let key = try SecretBytes.random(count: 32)
        let nonce = try SecureRandom.bytes(count: 12)
        let aad = bytes("care.patient.last_name:42")
        let box = try algorithm.seal(Self.rfc8439Plaintext, key: key, nonce: nonce, authenticating: aad)
        #expect(try algorithm.open(box, key: key, nonce: nonce, authenticating: aad) == Self.rfc8439Plaintext)

        var tag = box.tag
        tag[0] ^= 0x01
        var ciphertext = box.ciphertext
        ciphertext[10] ^= 0x80
        var otherNonce = nonce
        otherNonce[11] ^= 0x01
        let attempts: [(String, () throws -> [UInt8])] = [
            ("tag", { try algorithm.open(SealedBox(ciphertext: box.ciphertext, tag: tag), key: key, nonce: nonce, authenticating: aad) }),
            ("short tag", { try algorithm.open(SealedBox(ciphertext: box.ciphertext, tag: Array(box.tag.prefix(15))), key: key, nonce: nonce, authenticating: aad) }),
            ("ciphertext", { try algorithm.open(SealedBox(ciphertext: ciphertext, tag: box.tag), key: key, nonce: nonce, authenticating: aad) }),
            ("truncated ciphertext", { try algorithm.open(SealedBox(ciphertext: Array(box.ciphertext.dropLast()), tag: box.tag), key: key, nonce: nonce, authenticating: aad) }),
            ("nonce", { try algorithm.open(box, key: key, nonce: otherNonce, authenticating: aad) }),
            ("associated data", { try algorithm.open(box, key: key, nonce: nonce, authenticating: bytes("care.patient.last_name:43")) }),
            ("missing associated data", { try algorithm.open(box, key: key, nonce: nonce) }),
            ("key", { try algorithm.open(box, key: try SecretBytes.random(count: 32), nonce: nonce, authenticating: aad) }),
        ]
        for (what, attempt) in attempts {
            let error = #expect(throws: CryptoError.self, "tampered \(what) must be rejected") { try attempt() }
            #expect(error?.code == .authenticationFailed, "tampered \(what)")
        }
    }

    @Test("A keyed context reused for many messages gives the same results as one-shot calls")
    func contextReuse() throws {
        let key = try SecretBytes.random(count: 32)
        let context = try AEADContext(.aes256GCM, key: key)
        for length in [0, 1, 15, 16, 17, 1000] {
            let plaintext = try SecureRandom.bytes(count: length)
            let nonce = try SecureRandom.bytes(count: 12)
            let box = try context.seal(plaintext, nonce: nonce, authenticating: [1, 2])
            #expect(box == (try AEAD.aes256GCM.seal(plaintext, key: key, nonce: nonce, authenticating: [1, 2])))
            #expect(try context.open(box, nonce: nonce, authenticating: [1, 2]) == plaintext)
        }
    }

    @Test("Wrong key and nonce lengths are refused with their own codes")
    func lengths() throws {
        let short = #expect(throws: CryptoError.self) {
            try AEAD.aes256GCM.seal([1], key: SecretBytes([UInt8](repeating: 1, count: 16)), nonce: [UInt8](repeating: 0, count: 12))
        }
        #expect(short?.code == .invalidKey)
        let nonce = #expect(throws: CryptoError.self) {
            try AEAD.chaCha20Poly1305.seal([1], key: try SecretBytes.random(count: 32), nonce: [UInt8](repeating: 0, count: 8))
        }
        #expect(nonce?.code == .invalidNonce)
    }
}
