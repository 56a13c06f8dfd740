import Cryptography
import Testing

@Suite("Ed25519 and X25519 against RFC 8032 and RFC 7748")
struct CurveTests {
    struct SignatureVector: Sendable, CustomTestStringConvertible {
        let name: String, seed: String, publicKey: String, message: String, signature: String
        var testDescription: String { name }
    }

    static let rfc8032: [SignatureVector] = [
        SignatureVector(name: "TEST 1", seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                        publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", message: "",
                        signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        SignatureVector(name: "TEST 2", seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                        publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", message: "72",
                        signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        SignatureVector(name: "TEST 3", seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                        publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", message: "af82",
                        signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
        SignatureVector(name: "TEST SHA(abc)", seed: "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
                        publicKey: "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
                        message: "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
                        signature: "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704"),
    ]

    @Test("Ed25519: RFC 8032 §7.1 vectors sign and verify", arguments: rfc8032)
    func ed25519(vector: SignatureVector) throws {
        let key = try Ed25519.PrivateKey(rawRepresentation: secret(vector.seed))
        #expect(hexString(key.publicKey.rawRepresentation) == vector.publicKey)
        #expect(hexString(try key.signature(for: hex(vector.message))) == vector.signature)
        let publicKey = try Ed25519.PublicKey(rawRepresentation: hex(vector.publicKey))
        #expect(publicKey.isValidSignature(hex(vector.signature), for: hex(vector.message)))
        #expect(hexString(key.rawRepresentation.exposedCopy()) == vector.seed)
    }

    @Test("Ed25519: a changed message, signature or key does not verify")
    func ed25519Forgery() throws {
        let key = try Ed25519.PrivateKey()
        let message = bytes("journal.example.org\n42\nroot\n")
        let signature = try key.signature(for: message)
        #expect(key.publicKey.isValidSignature(signature, for: message))
        var forged = signature
        forged[5] ^= 0x04
        #expect(!key.publicKey.isValidSignature(forged, for: message))
        #expect(!key.publicKey.isValidSignature(signature, for: message + [0x0a]))
        #expect(!key.publicKey.isValidSignature(signature.prefix(63), for: message))
        #expect(!(try Ed25519.PrivateKey()).publicKey.isValidSignature(signature, for: message))
        #expect(throws: CryptoError.self) { try Ed25519.PublicKey(rawRepresentation: [UInt8](repeating: 1, count: 31)) }
    }

    @Test("X25519: RFC 7748 §5.2 scalar multiplication vectors")
    func x25519Vectors() throws {
        let cases = [
            ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
             "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
             "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
            ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
             "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
             "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
        ]
        for (scalar, u, expected) in cases {
            let key = try X25519.PrivateKey(rawRepresentation: secret(scalar))
            let shared = try key.sharedSecret(with: X25519.PublicKey(rawRepresentation: hex(u)))
            #expect(hexString(shared.exposedCopy()) == expected)
        }
    }

    @Test("X25519: RFC 7748 §6.1 Diffie-Hellman between Alice and Bob")
    func x25519DiffieHellman() throws {
        let alice = try X25519.PrivateKey(rawRepresentation: secret("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        let bob = try X25519.PrivateKey(rawRepresentation: secret("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        #expect(hexString(alice.publicKey.rawRepresentation) == "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        #expect(hexString(bob.publicKey.rawRepresentation) == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        let shared = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
        #expect(hexString(try alice.sharedSecret(with: bob.publicKey).exposedCopy()) == shared)
        #expect(hexString(try bob.sharedSecret(with: alice.publicKey).exposedCopy()) == shared)
    }

    @Test("X25519: a low-order public key (all-zero secret) is refused")
    func x25519LowOrder() throws {
        let key = try X25519.PrivateKey()
        let error = #expect(throws: CryptoError.self) {
            try key.sharedSecret(with: X25519.PublicKey(rawRepresentation: [UInt8](repeating: 0, count: 32)))
        }
        #expect(error?.code == .weakPublicKey)
    }
}
