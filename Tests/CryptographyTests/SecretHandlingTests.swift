import Cryptography
import Testing
import TestSupport

@Suite("Key material never shows in descriptions or errors")
struct SecretHandlingTests {
    @Test("Descriptions of secrets and private keys show no bytes")
    func redaction() throws {
        let material: [UInt8] = Array(repeating: 0xab, count: 32)
        let secretBytes = SecretBytes(material)
        for text in [String(describing: secretBytes), String(reflecting: secretBytes)] {
            #expect(!text.lowercased().contains("abab"))
            #expect(text.contains("redacted"))
        }
        let signing = try Ed25519.PrivateKey(rawRepresentation: secretBytes)
        #expect(!String(describing: signing).lowercased().contains("abab"))
        let agreement = try X25519.PrivateKey(rawRepresentation: secretBytes)
        #expect(!String(describing: agreement).lowercased().contains("abab"))
    }

    @Test("Errors name the problem, not the input")
    func errorsCarryNoData() throws {
        let key = SecretBytes(Array(repeating: 0x5a, count: 32))
        let box = try AEAD.aes256GCM.seal(bytes("Dupont"), key: key, nonce: [UInt8](repeating: 0, count: 12))
        do {
            _ = try AEAD.aes256GCM.open(SealedBox(ciphertext: box.ciphertext, tag: [UInt8](repeating: 0, count: 16)),
                                        key: key, nonce: [UInt8](repeating: 0, count: 12))
            Issue.record("a zero tag must not authenticate")
        } catch {
            let text = String(describing: error) + String(reflecting: error)
            #expect(!text.contains("Dupont"))
            #expect(!text.lowercased().contains("5a5a"))
            #expect(text.contains("crypto.authentication_failed"))
        }
    }

    @Test("Errors are equal on their code alone")
    func equality() {
        let a = #expect(throws: CryptoError.self) { try AEAD.aes256GCM.seal([1], key: SecretBytes([1]), nonce: [UInt8](repeating: 0, count: 12)) }
        let b = #expect(throws: CryptoError.self) { try AEAD.chaCha20Poly1305.seal([1], key: SecretBytes([1, 2]), nonce: [UInt8](repeating: 0, count: 12)) }
        #expect(a == b)
    }

    @Test("Constant-time comparison matches ordinary equality")
    func constantTime() throws {
        var random = TestSeed.generator(test: "constant-time comparison")
        for _ in 0..<100 {
            let a = random.bytes(count: Int.random(in: 0...40, using: &random))
            var b = a
            if !b.isEmpty, Bool.random(using: &random) { b[Int.random(in: 0..<b.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random) }
            #expect(ConstantTime.equals(a, b) == (a == b))
        }
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
        var wiped: [UInt8] = [1, 2, 3]
        ConstantTime.wipe(&wiped)
        #expect(wiped == [0, 0, 0])
    }

    @Test("The random generator returns distinct values of the requested length")
    func random() throws {
        let a = try SecureRandom.bytes(count: 32), b = try SecureRandom.bytes(count: 32)
        #expect(a.count == 32 && a != b)
        #expect(try SecureRandom.bytes(count: 0).isEmpty)
    }
}
