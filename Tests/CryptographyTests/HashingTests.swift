import Cryptography
import Testing

@Suite("SHA-256, HMAC, HKDF and scrypt against published vectors")
struct HashingTests {
    @Test("SHA-256: FIPS 180-2 examples, one-shot and streaming agree")
    func sha256() {
        #expect(hexString(SHA256.hash([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hexString(SHA256.hash(bytes("abc"))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = bytes("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
        #expect(hexString(SHA256.hash(long)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        var hasher = SHA256Hasher()
        for chunk in stride(from: 0, to: long.count, by: 7) { hasher.update(long[chunk..<min(chunk + 7, long.count)]) }
        #expect(hasher.finalize() == SHA256.hash(long))
        #expect(SHA256.hash(concatenating: [bytes("ab"), bytes("c")]) == SHA256.hash(bytes("abc")))
    }

    @Test("SHA-256 streaming over a million 'a' (FIPS 180-2 long message)")
    func sha256MillionA() {
        var hasher = SHA256Hasher()
        let block = [UInt8](repeating: 0x61, count: 1000)
        for _ in 0..<1000 { hasher.update(block) }
        #expect(hexString(hasher.finalize()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    struct HMACVector: Sendable, CustomTestStringConvertible {
        let name: String, key: [UInt8], data: [UInt8], tag: String
        var testDescription: String { name }
    }

    static let rfc4231: [HMACVector] = [
        HMACVector(name: "4.2", key: [UInt8](repeating: 0x0b, count: 20), data: bytes("Hi There"),
                   tag: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        HMACVector(name: "4.3", key: bytes("Jefe"), data: bytes("what do ya want for nothing?"),
                   tag: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        HMACVector(name: "4.4", key: [UInt8](repeating: 0xaa, count: 20), data: [UInt8](repeating: 0xdd, count: 50),
                   tag: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        HMACVector(name: "4.5", key: Array(1...25), data: [UInt8](repeating: 0xcd, count: 50),
                   tag: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        HMACVector(name: "4.6 (truncated to 128 bits)", key: [UInt8](repeating: 0x0c, count: 20), data: bytes("Test With Truncation"),
                   tag: "a3b6167473100ee06e0c796c2955552b"),
        HMACVector(name: "4.7", key: [UInt8](repeating: 0xaa, count: 131),
                   data: bytes("Test Using Larger Than Block-Size Key - Hash Key First"),
                   tag: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        HMACVector(name: "4.8", key: [UInt8](repeating: 0xaa, count: 131),
                   data: bytes("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm."),
                   tag: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ]

    @Test("HMAC-SHA-256: RFC 4231", arguments: rfc4231)
    func hmac(vector: HMACVector) throws {
        let tag = try HMACSHA256.authenticationCode(for: vector.data, key: SecretBytes(vector.key))
        #expect(hexString(tag.prefix(vector.tag.count / 2)) == vector.tag)
    }

    @Test("HMAC verification is exact: a changed tag, message or key fails")
    func hmacVerification() throws {
        let key = SecretBytes(bytes("Jefe"))
        let message = bytes("what do ya want for nothing?")
        let tag = try HMACSHA256.authenticationCode(for: message, key: key)
        #expect(try HMACSHA256.isValid(tag, for: message, key: key))
        var flipped = tag
        flipped[31] ^= 1
        #expect(try !HMACSHA256.isValid(flipped, for: message, key: key))
        #expect(try !HMACSHA256.isValid(tag.prefix(16), for: message, key: key))
        #expect(try !HMACSHA256.isValid(tag, for: message + [0], key: key))
        #expect(try !HMACSHA256.isValid(tag, for: message, key: SecretBytes(bytes("Jeff"))))
    }

    @Test("HKDF-SHA-256: RFC 5869 test cases 1 to 3")
    func hkdf() throws {
        let case1 = try HKDFSHA256.deriveKey(
            inputKeyMaterial: SecretBytes([UInt8](repeating: 0x0b, count: 22)), salt: Array(0...12), info: Array(0xf0...0xf9),
            outputByteCount: 42)
        #expect(hexString(case1.exposedCopy()) == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
        let case2 = try HKDFSHA256.deriveKey(
            inputKeyMaterial: SecretBytes(Array(0...0x4f)), salt: Array(0x60...0xaf), info: Array(0xb0...0xff), outputByteCount: 82)
        #expect(
            hexString(case2.exposedCopy())
                == "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87")
        let case3 = try HKDFSHA256.deriveKey(inputKeyMaterial: SecretBytes([UInt8](repeating: 0x0b, count: 22)), outputByteCount: 42)
        #expect(hexString(case3.exposedCopy()) == "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
        #expect(throws: CryptoError.self) {
            try HKDFSHA256.deriveKey(inputKeyMaterial: SecretBytes([1]), outputByteCount: 255 * 32 + 1)
        }
    }

    @Test("scrypt: RFC 7914 §12 vectors")
    func scrypt() throws {
        let first = try Scrypt.deriveKey(
            password: [UInt8](), salt: [UInt8](), parameters: .init(costFactor: 16, blockSize: 1, parallelism: 1), outputByteCount: 64)
        #expect(
            hexString(first.exposedCopy())
                == "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906")
        let second = try Scrypt.deriveKey(
            password: bytes("password"), salt: bytes("NaCl"), parameters: .init(costFactor: 1024, blockSize: 8, parallelism: 16),
            outputByteCount: 64)
        #expect(
            hexString(second.exposedCopy())
                == "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640")
        let third = try Scrypt.deriveKey(
            password: bytes("pleaseletmein"), salt: bytes("SodiumChloride"),
            parameters: .init(costFactor: 16384, blockSize: 8, parallelism: 1), outputByteCount: 64)
        #expect(
            hexString(third.exposedCopy())
                == "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887")
    }

    @Test("scrypt refuses a cost factor that is not a power of two, and zero r or p")
    func scryptParameters() {
        for parameters in [
            Scrypt.Parameters(costFactor: 1000, blockSize: 8, parallelism: 1),
            Scrypt.Parameters(costFactor: 1, blockSize: 8, parallelism: 1),
            Scrypt.Parameters(costFactor: 1024, blockSize: 0, parallelism: 1),
            Scrypt.Parameters(costFactor: 1024, blockSize: 8, parallelism: 0),
            Scrypt.Parameters(costFactor: 1 << 30, blockSize: 8, parallelism: 1),
        ] {
            #expect(throws: CryptoError.self) {
                try Scrypt.deriveKey(password: bytes("p"), salt: bytes("s"), parameters: parameters, outputByteCount: 32)
            }
        }
    }
}
