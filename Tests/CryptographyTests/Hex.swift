import Cryptography

/// Decodes a hex string written in a test (spaces allowed).
func hex(_ string: String) -> [UInt8] {
    let digits = Array(string.filter { !$0.isWhitespace })
    precondition(digits.count % 2 == 0, "odd hex length in test vector")
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

func hexString(_ bytes: some Collection<UInt8>) -> String {
    bytes.map { String(($0 >> 4), radix: 16) + String(($0 & 0xf), radix: 16) }.joined()
}

func secret(_ string: String) -> SecretBytes { SecretBytes(hex(string)) }

func bytes(_ string: String) -> [UInt8] { Array(string.utf8) }
