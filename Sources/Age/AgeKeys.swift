public import Cryptography

/// An error about an age key (never showing the key itself).
public struct AgeKeyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong.
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { "age.key: \(message)" }
}

/// A recipient a backup can name: X25519 (`age1…`) or hybrid post-quantum (`age1pq1…`).
public protocol AgePublicRecipient: AgeWrapping {
    /// Its Bech32 encoding.
    var encoded: String { get }
}

extension AgePublicRecipient {
    /// The first 16 hexadecimal digits of SHA-256 of ``encoded``: how the keyring
    /// and the backup catalogue name it.
    public var fingerprint: String {
        SHA256.hash(Array(encoded.utf8)).prefix(8).map { String($0, radix: 16).leftPadded(to: 2) }.joined()
    }

    /// True for a hybrid post-quantum recipient.
    public var isPostQuantum: Bool { self is AgeHybridRecipient }
}

/// Parsing either kind of recipient.
public enum AgeRecipients {
    /// `age1pq1…` or `age1…`.
    /// - Throws: ``AgeKeyError`` when it is neither.
    public static func parse(_ encoded: String) throws -> any AgePublicRecipient {
        encoded.hasPrefix("age1pq1") ? try AgeHybridRecipient(encoded: encoded) : try AgeRecipient(encoded: encoded)
    }
}

/// An age X25519 recipient, `age1…` (Bech32 of the 32-byte public key): what a
/// backup is encrypted to. Public; the backup host holds only these.
public struct AgeRecipient: AgePublicRecipient, Hashable, Sendable, CustomStringConvertible {
    /// The X25519 public key.
    public let publicKey: X25519.PublicKey

    /// Parses `age1…`.
    /// - Throws: ``AgeKeyError`` when it is not an age X25519 recipient.
    public init(encoded: String) throws {
        let decoded: (prefix: String, data: [UInt8])
        do {
            decoded = try Bech32.decode(encoded)
        } catch {
            throw AgeKeyError("not an age recipient: \(error)")
        }
        guard decoded.prefix == "age", decoded.data.count == 32, encoded == encoded.lowercased() else {
            throw AgeKeyError("an age X25519 recipient is age1 followed by 58 lowercase Bech32 characters")
        }
        publicKey = try X25519.PublicKey(rawRepresentation: decoded.data)
    }

    /// The recipient of a public key.
    public init(publicKey: X25519.PublicKey) { self.publicKey = publicKey }

    /// `age1…`.
    public var encoded: String { Bech32.encode(prefix: "age", data: publicKey.rawRepresentation) }
    public var description: String { encoded }

}

/// An age X25519 identity, `AGE-SECRET-KEY-1…`: what decrypts a backup. It is kept
/// offline by the sysadmins; its `description` never shows it.
public struct AgeIdentity: Sendable, CustomStringConvertible {
    let privateKey: X25519.PrivateKey

    /// A new random identity.
    public static func generate() throws -> AgeIdentity { AgeIdentity(privateKey: try X25519.PrivateKey()) }

    init(privateKey: X25519.PrivateKey) { self.privateKey = privateKey }

    /// Parses `AGE-SECRET-KEY-1…` (as `age-keygen` writes it; surrounding spaces ignored).
    /// - Throws: ``AgeKeyError`` when it is not an age X25519 identity.
    public init(encoded: String) throws {
        let decoded: (prefix: String, data: [UInt8])
        do {
            decoded = try Bech32.decode(encoded)
        } catch {
            throw AgeKeyError("not an age identity: \(error)")
        }
        var data = decoded.data
        defer { ConstantTime.wipe(&data) }
        guard decoded.prefix == "age-secret-key-", data.count == 32, encoded == encoded.uppercased() else {
            throw AgeKeyError("an age X25519 identity is AGE-SECRET-KEY-1 followed by 58 uppercase Bech32 characters")
        }
        privateKey = try X25519.PrivateKey(rawRepresentation: SecretBytes(data))
    }

    /// Reads the identities of an identity file as `age-keygen` writes it: one per
    /// line, `#` comments and blank lines ignored.
    /// - Throws: ``AgeKeyError`` naming the line that is not an identity.
    public static func parseFile(_ text: String) throws -> [AgeIdentity] {
        var identities: [AgeIdentity] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            do {
                identities.append(try AgeIdentity(encoded: trimmed))
            } catch {
                throw AgeKeyError("line \(number + 1) of the identity file is not an age X25519 identity")
            }
        }
        guard !identities.isEmpty else { throw AgeKeyError("the identity file holds no identity") }
        return identities
    }

    /// The matching recipient.
    public var recipient: AgeRecipient { AgeRecipient(publicKey: privateKey.publicKey) }

    /// The encoded identity, for writing an identity file once. Whoever holds it can decrypt.
    public func exposedEncoding() -> String {
        var scalar = privateKey.rawRepresentation.exposedCopy()
        defer { ConstantTime.wipe(&scalar) }
        return Bech32.encode(prefix: "AGE-SECRET-KEY-", data: scalar, uppercase: true)
    }

    /// The identity file `age-keygen` would write: a creation comment, the public key, the identity.
    public func exposedFile(created: String) -> String {
        "# created: \(created)\n# public key: \(recipient.encoded)\n\(exposedEncoding())\n"
    }

    public var description: String { "AgeIdentity(\(recipient.encoded), secret redacted)" }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
    fileprivate func trimmingCharacters(in set: CharacterSetLike) -> String {
        var scalars = Substring(self)
        while let first = scalars.first, set.contains(first) { scalars.removeFirst() }
        while let last = scalars.last, set.contains(last) { scalars.removeLast() }
        return String(scalars)
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: CharacterSetLike) -> String { String(self).trimmingCharacters(in: set) }
}

/// Spaces and tabs (Foundation-free trimming).
fileprivate struct CharacterSetLike {
    static let whitespaces = CharacterSetLike()
    func contains(_ character: Character) -> Bool { character == " " || character == "\t" || character == "\r" }
}
