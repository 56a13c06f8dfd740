/// Bech32 (BIP 173) as age uses it for its keys: the original checksum constant
/// (not Bech32m), and no 90-character limit (age's identities and recipients are
/// within it, but plugin recipients are not).
public enum Bech32 {
    /// Why a string is not valid Bech32.
    public struct DecodingError: Error, Hashable, Sendable, CustomStringConvertible {
        /// What is wrong (never the string itself: it may be a secret key).
        public let message: String
        public var description: String { "bech32: \(message)" }
    }

    private static let alphabet = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l".utf8)
    private static let values: [Int8] = {
        var table = [Int8](repeating: -1, count: 128)
        for (index, character) in alphabet.enumerated() { table[Int(character)] = Int8(index) }
        return table
    }()

    private static func polymod(_ values: [UInt8]) -> UInt32 {
        let generator: [UInt32] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]
        var checksum: UInt32 = 1
        for value in values {
            let top = checksum >> 25
            checksum = (checksum & 0x1ff_ffff) << 5 ^ UInt32(value)
            for bit in 0..<5 where (top >> UInt32(bit)) & 1 == 1 { checksum ^= generator[bit] }
        }
        return checksum
    }

    private static func expand(_ prefix: [UInt8]) -> [UInt8] {
        prefix.map { $0 >> 5 } + [0] + prefix.map { $0 & 31 }
    }

    /// Regroups bits (8 → 5 with padding, or 5 → 8 refusing non-zero padding).
    private static func regroup(_ data: [UInt8], from: Int, to: Int, pad: Bool) -> [UInt8]? {
        var accumulator = 0
        var bits = 0
        var result: [UInt8] = []
        let mask = (1 << to) - 1
        for value in data {
            accumulator = accumulator << from | Int(value)
            bits += from
            while bits >= to {
                bits -= to
                result.append(UInt8((accumulator >> bits) & mask))
            }
            accumulator &= (1 << bits) - 1
        }
        if pad {
            if bits > 0 { result.append(UInt8((accumulator << (to - bits)) & mask)) }
        } else if bits >= from || accumulator != 0 {
            return nil
        }
        return result
    }

    /// Encodes `data` under the human-readable part `prefix` (lowercase), in
    /// lowercase, or in uppercase when `uppercase` (age's secret keys).
    public static func encode(prefix: String, data: [UInt8], uppercase: Bool = false) -> String {
        let hrp = Array(prefix.lowercased().utf8)
        let words = regroup(data, from: 8, to: 5, pad: true)!
        let checksum = polymod(expand(hrp) + words + [0, 0, 0, 0, 0, 0]) ^ 1
        let check = (0..<6).map { UInt8((checksum >> UInt32(5 * (5 - $0))) & 31) }
        let text = String(decoding: hrp + [UInt8(ascii: "1")] + (words + check).map { alphabet[Int($0)] }, as: UTF8.self)
        return uppercase ? text.uppercased() : text
    }

    /// Decodes a Bech32 string: its human-readable part (lowercased) and its data.
    /// - Throws: ``DecodingError`` for mixed case, a character outside the alphabet,
    ///   a bad checksum, or bad padding.
    public static func decode(_ text: String) throws -> (prefix: String, data: [UInt8]) {
        let bytes = Array(text.utf8)
        guard bytes.allSatisfy({ $0 >= 33 && $0 <= 126 }) else { throw DecodingError(message: "a character outside printable ASCII") }
        let hasLower = bytes.contains { $0 >= 97 && $0 <= 122 }
        let hasUpper = bytes.contains { $0 >= 65 && $0 <= 90 }
        guard !(hasLower && hasUpper) else { throw DecodingError(message: "mixed upper and lower case") }
        let lower = bytes.map { $0 >= 65 && $0 <= 90 ? $0 + 32 : $0 }
        guard let separator = lower.lastIndex(of: UInt8(ascii: "1")), separator >= 1, lower.count - separator - 1 >= 6 else {
            throw DecodingError(message: "no separator, empty prefix, or shorter than its checksum")
        }
        let hrp = Array(lower[..<separator])
        var words: [UInt8] = []
        for character in lower[(separator + 1)...] {
            let value = character < 128 ? values[Int(character)] : -1
            guard value >= 0 else { throw DecodingError(message: "a character outside the Bech32 alphabet") }
            words.append(UInt8(value))
        }
        guard polymod(expand(hrp) + words) == 1 else { throw DecodingError(message: "the checksum does not match") }
        guard let data = regroup(Array(words.dropLast(6)), from: 5, to: 8, pad: false) else { throw DecodingError(message: "invalid padding") }
        return (String(decoding: hrp, as: UTF8.self), data)
    }
}
