import Cryptography
import Foundation

/// Password hashes in the PHC string format with scrypt:
/// `$scrypt$ln=17,r=8,p=1$<salt base64>$<hash base64>`. The parameters travel
/// with the hash, so raising the cost later leaves old hashes verifiable.
public struct PasswordHasher: Sendable {
    /// log2 of scrypt's N.
    public let costExponent: Int

    /// `costExponent` 17 (N = 131072, 128 MiB) is OWASP's recommendation for logins.
    public init(costExponent: Int = 17) {
        self.costExponent = costExponent
    }

    /// Hashes a new password. Refuses passwords under 12 or over 256 characters.
    public func hash(_ password: String) throws -> String {
        guard (12...256).contains(password.count) else {
            throw CareError(.invalidField, "password must be 12 to 256 characters")
        }
        let salt = try SecureRandom.bytes(count: 16)
        let derived = try Scrypt.deriveKey(
            password: Array(password.utf8), salt: salt,
            parameters: .init(costFactor: 1 << UInt64(costExponent), blockSize: 8, parallelism: 1), outputByteCount: 32)
        return "$scrypt$ln=\(costExponent),r=8,p=1$\(Self.base64(salt))$\(Self.base64(derived.exposedCopy()))"
    }

    /// True when `password` matches `encoded`, compared in constant time. A
    /// malformed hash never matches.
    public static func verify(_ password: String, against encoded: String) -> Bool {
        let parts = encoded.split(separator: "$", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0].isEmpty, parts[1] == "scrypt" else { return false }
        var settings: [String: UInt64] = [:]
        for pair in parts[2].split(separator: ",") {
            let keyValue = pair.split(separator: "=")
            guard keyValue.count == 2, let value = UInt64(keyValue[1]) else { return false }
            settings[String(keyValue[0])] = value
        }
        guard let exponent = settings["ln"], (10...22).contains(exponent), let r = settings["r"], let p = settings["p"],
            (1...32).contains(r), (1...16).contains(p),
            let salt = unbase64(parts[3]), let expected = unbase64(parts[4]), expected.count == 32
        else { return false }
        guard let derived = try? Scrypt.deriveKey(
            password: Array(password.utf8), salt: salt,
            parameters: .init(costFactor: 1 << exponent, blockSize: UInt32(r), parallelism: UInt32(p)), outputByteCount: 32)
        else { return false }
        return ConstantTime.equals(derived.exposedCopy(), expected)
    }

    /// The cost exponent of an encoded hash, to tell when it should be upgraded.
    public static func costExponent(of encoded: String) -> Int? {
        encoded.split(separator: "$").dropFirst(1).first.flatMap { settings in
            settings.split(separator: ",").first { $0.hasPrefix("ln=") }.flatMap { Int($0.dropFirst(3)) }
        }
    }

    private static func base64(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "=", with: "")
    }

    private static func unbase64(_ text: Substring) -> [UInt8]? {
        var padded = String(text)
        while padded.count % 4 != 0 { padded += "=" }
        return Data(base64Encoded: padded).map(Array.init)
    }
}

extension PasswordHasher {
    /// A valid hash of a random password, verified against when a login names an
    /// unknown user, so that timing does not reveal which usernames exist.
    public static let decoyHash: String = {
        (try? PasswordHasher(costExponent: 17).hash("decoy-\(UUID().uuidString)")) ?? "$scrypt$ln=17,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    }()
}
