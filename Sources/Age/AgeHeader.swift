import Cryptography
import Foundation

/// Why an age file could not be read, in the categories of the age conformance
/// vectors. The message never includes key material or plaintext.
public struct AgeError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The stage that failed.
    public enum Kind: String, Sendable, Hashable {
        /// The header is malformed, or a stanza meant for a given identity is.
        case header = "header failure"
        /// No identity given unwraps any stanza.
        case noMatch = "no match"
        /// The file key unwrapped but the header's MAC does not verify: the header was altered.
        case hmac = "HMAC failure"
        /// The payload is truncated, altered, or has data after its final chunk.
        case payload = "payload failure"
        /// The ASCII armor is malformed.
        case armor = "armor failure"
    }

    /// The stage that failed.
    public let kind: Kind
    /// What exactly.
    public let message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { "age: \(kind.rawValue): \(message)" }
}

/// One recipient stanza: `-> arguments…` and its body.
public struct AgeStanza: Hashable, Sendable {
    /// The arguments; the first names the recipient type (`X25519`, `scrypt`, …).
    public let arguments: [String]
    /// The decoded body.
    public let body: [UInt8]

    /// A stanza.
    public init(arguments: [String], body: [UInt8]) {
        self.arguments = arguments
        self.body = body
    }
}

/// The textual header of an age v1 file (c2sp.org/age): the version line, the
/// stanzas, and the MAC line.
public struct AgeHeader: Sendable {
    /// The stanzas, in order.
    public let stanzas: [AgeStanza]
    /// The header bytes the MAC covers: everything up to and including `---`.
    let macInput: [UInt8]
    /// The MAC (32 bytes).
    let mac: [UInt8]
    /// The header's length in bytes; the payload starts there.
    public let byteCount: Int

    /// The largest header accepted (a backup has a few recipients; this leaves room for hundreds).
    public static let maximumByteCount = 1 << 20

    static let versionLine = Array("age-encryption.org/v1\n".utf8)

    init(stanzas: [AgeStanza], macInput: [UInt8], mac: [UInt8], byteCount: Int) {
        self.stanzas = stanzas
        self.macInput = macInput
        self.mac = mac
        self.byteCount = byteCount
    }

    /// Parses the header at the start of `bytes`.
    /// - Returns: nil when `bytes` ends before the header does (read more, unless at the end).
    /// - Throws: ``AgeError`` `.header` naming the first malformed line.
    public static func parse(_ bytes: ArraySlice<UInt8>) throws -> AgeHeader? {
        var position = bytes.startIndex
        /// The next line without its LF, or nil when no LF follows yet.
        func nextLine() throws -> ArraySlice<UInt8>? {
            guard let end = bytes[position...].firstIndex(of: 0x0a) else {
                if bytes.count > maximumByteCount { throw AgeError(.header, "the header is longer than \(maximumByteCount) bytes") }
                return nil
            }
            let line = bytes[position..<end]
            position = end + 1
            return line
        }
        guard let version = try nextLine() else {
            if !versionLine.starts(with: bytes.prefix(versionLine.count)) { throw AgeError(.header, "not an age v1 file (no age-encryption.org/v1 line)") }
            return nil
        }
        guard version.elementsEqual(versionLine.dropLast()) else {
            throw AgeError(.header, version.starts(with: Array("age-encryption.org/".utf8)) ? "unsupported age version" : "not an age v1 file")
        }
        var stanzas: [AgeStanza] = []
        while true {
            let lineStart = position
            guard let line = try nextLine() else { return nil }
            if line.starts(with: Array("---".utf8)) {
                guard !stanzas.isEmpty else { throw AgeError(.header, "the header has no recipient stanza") }
                guard line.count == 4 + 43, line[line.startIndex + 3] == 0x20,
                    let mac = Base64Raw.decodeCanonical(line.dropFirst(4)), mac.count == 32
                else {
                    throw AgeError(.header, "the MAC line must be \"--- \" and 43 characters of canonical base64")
                }
                let macInput = Array(bytes[bytes.startIndex..<(lineStart + 3)])
                return AgeHeader(stanzas: stanzas, macInput: macInput, mac: mac, byteCount: position - bytes.startIndex)
            }
            guard line.starts(with: Array("-> ".utf8)) else { throw AgeError(.header, "a line that starts neither a stanza (->) nor the MAC (---)") }
            let arguments = line.dropFirst(3).split(separator: 0x20, omittingEmptySubsequences: false)
            guard !arguments.isEmpty, arguments.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0 >= 0x21 && $0 <= 0x7e } }) else {
                throw AgeError(.header, "a stanza's arguments must be non-empty printable ASCII separated by single spaces")
            }
            var body: [UInt8] = []
            while true {
                guard let bodyLine = try nextLine() else { return nil }
                guard bodyLine.count <= 64, let decoded = Base64Raw.decodeCanonical(bodyLine) else {
                    throw AgeError(.header, "a stanza body line is not canonical unpadded base64 of at most 64 columns")
                }
                body += decoded
                if bodyLine.count < 64 { break }
            }
            stanzas.append(AgeStanza(arguments: arguments.map { String(decoding: $0, as: UTF8.self) }, body: body))
        }
    }

    /// The header for `stanzas` under `fileKey`, MAC included.
    static func encode(stanzas: [AgeStanza], fileKey: SecretBytes) throws -> [UInt8] {
        var text = versionLine
        for stanza in stanzas {
            text += Array(("-> " + stanza.arguments.joined(separator: " ") + "\n").utf8)
            let encoded = Array(Base64Raw.encode(stanza.body).utf8)
            var offset = 0
            repeat {
                let end = min(offset + 64, encoded.count)
                text += encoded[offset..<end] + [0x0a]
                offset = end
            } while offset < encoded.count
            if encoded.count % 64 == 0 && !encoded.isEmpty { text += [0x0a] }
        }
        text += Array("---".utf8)
        let mac = try HMACSHA256.authenticationCode(for: text, key: try headerKey(fileKey))
        return text + Array((" " + Base64Raw.encode(mac) + "\n").utf8)
    }

    static func headerKey(_ fileKey: SecretBytes) throws -> SecretBytes {
        try HKDFSHA256.deriveKey(inputKeyMaterial: fileKey, info: Array("header".utf8), outputByteCount: 32)
    }

    /// Checks the MAC under `fileKey`.
    /// - Throws: ``AgeError`` `.hmac` when it does not verify.
    func verifyMAC(fileKey: SecretBytes) throws {
        guard try HMACSHA256.isValid(mac, for: macInput, key: try Self.headerKey(fileKey)) else {
            throw AgeError(.hmac, "the header's MAC does not verify: the header was altered")
        }
    }
}

/// Unpadded standard base64 (RFC 4648 §4 without `=`), decoded strictly: only
/// canonical encodings (§3.5) are accepted.
enum Base64Raw {
    static func encode(_ bytes: some Collection<UInt8>) -> String {
        var text = Data(bytes).base64EncodedString()
        while text.hasSuffix("=") { text.removeLast() }
        return text
    }

    static func decodeCanonical(_ text: some Collection<UInt8>) -> [UInt8]? {
        let isAlphabet: (UInt8) -> Bool = { ($0 >= 0x41 && $0 <= 0x5a) || ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2b || $0 == 0x2f }
        guard text.allSatisfy(isAlphabet), text.count % 4 != 1 else { return nil }
        let padded = String(decoding: text, as: UTF8.self) + String(repeating: "=", count: (4 - text.count % 4) % 4)
        guard let data = Data(base64Encoded: padded) else { return nil }
        let bytes = Array(data)
        // Canonical: re-encoding gives the same text (no stray low bits in the last character).
        guard encode(bytes).utf8.elementsEqual(text) else { return nil }
        return bytes
    }
}
