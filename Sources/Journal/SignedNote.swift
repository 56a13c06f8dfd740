public import Cryptography
import Foundation

/// An error reading or verifying a signed note or a note key.
public struct NoteError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong, safe to print (no key material).
    public let message: String
    init(_ message: String) { self.message = message }
    public var description: String { "journal.note: \(message)" }
}

/// A verifier key in the C2SP signed-note form `<name>+<key id hex>+<base64(0x01 ‖ Ed25519 public key)>`.
/// The key id is the first 4 bytes of SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key).
public struct NoteVerifierKey: Hashable, Sendable, CustomStringConvertible {
    /// The key name (for the journal, the checkpoint origin).
    public let name: String
    /// The 4-byte key id.
    public let keyID: UInt32
    /// The Ed25519 public key.
    public let publicKey: Ed25519.PublicKey

    /// Builds the verifier key of a public key.
    public init(name: String, publicKey: Ed25519.PublicKey) throws {
        try NoteVerifierKey.checkName(name)
        self.name = name
        self.publicKey = publicKey
        self.keyID = Self.keyID(name: name, publicKey: publicKey)
    }

    /// Parses the encoded form, refusing a malformed key or one whose id does not match.
    public init(encoded: String) throws {
        let parts = encoded.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw NoteError("a verifier key is name+id+key") }
        let name = String(parts[0])
        try Self.checkName(name)
        guard parts[1].count == 8, parts[1].allSatisfy({ $0.isHexDigit && !$0.isUppercase }), let id = UInt32(parts[1], radix: 16) else {
            throw NoteError("the key id must be 8 lowercase hexadecimal digits")
        }
        guard let material = Data(base64Encoded: String(parts[2])), material.count == 33, material.first == 0x01 else {
            throw NoteError("the key material must be base64 of 0x01 and a 32-byte Ed25519 key")
        }
        let publicKey = try Ed25519.PublicKey(rawRepresentation: material.dropFirst())
        guard Self.keyID(name: name, publicKey: publicKey) == id else { throw NoteError("the key id does not match the key") }
        self.name = name
        self.keyID = id
        self.publicKey = publicKey
    }

    /// The encoded form.
    public var encoded: String {
        "\(name)+\(String(format: "%08x", keyID))+\(Data([0x01] + publicKey.rawRepresentation).base64EncodedString())"
    }

    public var description: String { encoded }

    static func keyID(name: String, publicKey: Ed25519.PublicKey) -> UInt32 {
        let digest = SHA256.hash(Array(name.utf8) + [0x0a, 0x01] + publicKey.rawRepresentation)
        return digest.prefix(4).reduce(0) { $0 << 8 | UInt32($1) }
    }

    static func checkName(_ name: String) throws {
        guard !name.isEmpty, !name.contains("+"), !name.unicodeScalars.contains(where: { CharacterSet.whitespacesAndNewlines.contains($0) }) else {
            throw NoteError("a key name is non-empty, without spaces, newlines or '+'")
        }
    }
}

/// A signer key: `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 ‖ Ed25519 seed)>`.
/// Its `description` never shows the seed.
public struct NoteSignerKey: Sendable, CustomStringConvertible {
    /// The matching verifier key.
    public let verifierKey: NoteVerifierKey
    let privateKey: Ed25519.PrivateKey

    /// A new random key named `name`.
    public static func generate(name: String) throws -> NoteSignerKey {
        let privateKey = try Ed25519.PrivateKey()
        return NoteSignerKey(verifierKey: try NoteVerifierKey(name: name, publicKey: privateKey.publicKey), privateKey: privateKey)
    }

    init(verifierKey: NoteVerifierKey, privateKey: Ed25519.PrivateKey) {
        self.verifierKey = verifierKey
        self.privateKey = privateKey
    }

    /// Parses the encoded form, checking the key id against the derived public key.
    public init(encoded: String) throws {
        guard encoded.hasPrefix("PRIVATE+KEY+") else { throw NoteError("a signer key starts with PRIVATE+KEY+") }
        let parts = encoded.dropFirst(12).split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, var material = Data(base64Encoded: String(parts[2])).map(Array.init), material.count == 33, material[0] == 0x01 else {
            throw NoteError("a signer key is PRIVATE+KEY+name+id+base64(0x01 ‖ seed)")
        }
        defer { ConstantTime.wipe(&material) }
        let privateKey = try Ed25519.PrivateKey(rawRepresentation: SecretBytes(material[1...]))
        let verifier = try NoteVerifierKey(name: String(parts[0]), publicKey: privateKey.publicKey)
        guard String(format: "%08x", verifier.keyID) == parts[1] else { throw NoteError("the signer key's id does not match its key") }
        self.verifierKey = verifier
        self.privateKey = privateKey
    }

    /// The encoded form, for writing a key file once. Whoever holds it can sign.
    public func exposedEncoding() -> String {
        var material = [0x01] + privateKey.rawRepresentation.exposedCopy()
        defer { ConstantTime.wipe(&material) }
        return "PRIVATE+KEY+\(verifierKey.name)+\(String(format: "%08x", verifierKey.keyID))+\(Data(material).base64EncodedString())"
    }

    public var description: String { "NoteSignerKey(\(verifierKey.encoded), private part redacted)" }
}

/// A C2SP signed note: UTF-8 text ending in a newline, a blank line, then one
/// line per signature, `— <name> <base64(key id ‖ signature)>`.
public enum SignedNote {
    /// Signs `text` with each key.
    /// - Throws: ``NoteError`` when the text is empty, does not end with a newline,
    ///   or contains a blank line or a control character other than newline.
    public static func sign(_ text: String, with signers: [NoteSignerKey]) throws -> String {
        try checkText(text)
        var note = text + "\n"
        for signer in signers {
            let signature = try signer.privateKey.signature(for: Array(text.utf8))
            let keyID = withUnsafeBytes(of: signer.verifierKey.keyID.bigEndian) { Array($0) }
            note += "\u{2014} \(signer.verifierKey.name) \(Data(keyID + signature).base64EncodedString())\n"
        }
        return note
    }

    /// The text part of a note, without checking any signature (for messages only).
    /// - Throws: ``NoteError`` when there is no blank line before the signatures.
    public static func text(of note: String) throws -> String {
        guard let split = note.range(of: "\n\n", options: .backwards) else { throw NoteError("a signed note is text, a blank line, and signature lines") }
        return String(note[..<split.lowerBound]) + "\n"
    }

    /// Verifies `note` against known keys; signatures by unknown keys are ignored.
    /// - Returns: the text and the keys whose signatures verified.
    /// - Throws: ``NoteError`` when the note is malformed, a signature by a known
    ///   key does not verify, or no known key signed it.
    public static func open(_ note: String, verifiers: [NoteVerifierKey]) throws -> (text: String, signedBy: [NoteVerifierKey]) {
        guard note.hasSuffix("\n"), let split = note.range(of: "\n\n", options: .backwards) else {
            throw NoteError("a signed note is text, a blank line, and signature lines")
        }
        let text = String(note[..<split.lowerBound]) + "\n"
        try checkText(text)
        let lines = note[split.upperBound...].split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        guard !lines.isEmpty else { throw NoteError("the note has no signature") }
        var signedBy: [NoteVerifierKey] = []
        for line in lines {
            guard line.hasPrefix("\u{2014} ") else { throw NoteError("a signature line starts with an em dash and a space") }
            let fields = line.dropFirst(2).split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 2, let blob = Data(base64Encoded: String(fields[1])), blob.count >= 5 else {
                throw NoteError("a signature line is: em dash, name, base64 of key id and signature")
            }
            let keyID = blob.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            guard let key = verifiers.first(where: { $0.name == fields[0] && $0.keyID == keyID }) else { continue }
            guard blob.count == 68, key.publicKey.isValidSignature(blob.dropFirst(4), for: Array(text.utf8)) else {
                throw NoteError("the signature by \(key.name) (\(String(format: "%08x", keyID))) does not verify")
            }
            if !signedBy.contains(key) { signedBy.append(key) }
        }
        guard !signedBy.isEmpty else { throw NoteError("no known key signed the note") }
        return (text, signedBy)
    }

    static func checkText(_ text: String) throws {
        guard !text.isEmpty, text.hasSuffix("\n"), !text.contains("\n\n") else {
            throw NoteError("note text is non-empty lines, each ending in a newline, with no blank line")
        }
        guard !text.unicodeScalars.contains(where: { $0 != "\n" && CharacterSet.controlCharacters.contains($0) }) else {
            throw NoteError("note text may not contain control characters other than newline")
        }
    }
}
