public import Cryptography
import Foundation

/// Something that may unwrap an age file key from the header's stanzas.
public protocol AgeUnwrapping: Sendable {
    /// The file key, or nil when no stanza is addressed to this identity.
    /// - Throws: ``AgeError`` `.header` when a stanza of this identity's type is malformed.
    func unwrap(_ stanzas: [AgeStanza]) throws -> SecretBytes?
}

/// Something a file key can be wrapped to.
public protocol AgeWrapping: Sendable {
    /// The stanza carrying `fileKey` for this recipient.
    func wrap(_ fileKey: SecretBytes) throws -> AgeStanza
}

private let x25519Label = Array("age-encryption.org/v1/X25519".utf8)
private let zeroNonce = [UInt8](repeating: 0, count: 12)

extension AgeRecipient: AgeWrapping {
    /// An X25519 stanza: a fresh ephemeral share, and the file key under
    /// HKDF(shared secret, share ‖ recipient, "age-encryption.org/v1/X25519").
    public func wrap(_ fileKey: SecretBytes) throws -> AgeStanza {
        let ephemeral = try X25519.PrivateKey()
        let share = ephemeral.publicKey.rawRepresentation
        let shared = try ephemeral.sharedSecret(with: publicKey)
        let wrapKey = try HKDFSHA256.deriveKey(
            inputKeyMaterial: shared, salt: share + publicKey.rawRepresentation, info: x25519Label, outputByteCount: 32)
        let sealed = try AEAD.chaCha20Poly1305.seal(fileKey.exposedCopy(), key: wrapKey, nonce: zeroNonce)
        return AgeStanza(arguments: ["X25519", Base64Raw.encode(share)], body: sealed.ciphertext + sealed.tag)
    }
}

extension AgeIdentity: AgeUnwrapping {
    public func unwrap(_ stanzas: [AgeStanza]) throws -> SecretBytes? {
        let recipient = privateKey.publicKey.rawRepresentation
        for stanza in stanzas where stanza.arguments.first == "X25519" {
            guard stanza.arguments.count == 2 else { throw AgeError(.header, "an X25519 stanza has exactly one argument after its type") }
            guard let share = Base64Raw.decodeCanonical(stanza.arguments[1].utf8), share.count == 32 else {
                throw AgeError(.header, "an X25519 stanza's share must be canonical base64 of 32 bytes")
            }
            guard stanza.body.count == 32 else { throw AgeError(.header, "an X25519 stanza's body must be 32 bytes") }
            let shared: SecretBytes
            do {
                shared = try privateKey.sharedSecret(with: try X25519.PublicKey(rawRepresentation: share))
            } catch {
                throw AgeError(.header, "an X25519 stanza's share is a low-order point")
            }
            let wrapKey = try HKDFSHA256.deriveKey(inputKeyMaterial: shared, salt: share + recipient, info: x25519Label, outputByteCount: 32)
            let box = SealedBox(ciphertext: Array(stanza.body.prefix(16)), tag: Array(stanza.body.suffix(16)))
            guard var fileKey = try? AEAD.chaCha20Poly1305.open(box, key: wrapKey, nonce: zeroNonce) else { continue }
            defer { ConstantTime.wipe(&fileKey) }
            return SecretBytes(fileKey)
        }
        return nil
    }
}

/// A passphrase, as the scrypt recipient type uses it (the age conformance vectors
/// have such files; backups do not use it).
public struct AgePassphrase: AgeUnwrapping, AgeWrapping {
    let passphrase: SecretBytes
    /// The largest work factor (log2 N) accepted: 22 (4 GiB·s of work is a denial of service).
    public let maximumWorkFactor: Int
    /// The work factor used when encrypting.
    public let workFactor: Int

    /// A passphrase identity or recipient.
    public init(_ passphrase: String, workFactor: Int = 18, maximumWorkFactor: Int = 22) {
        self.passphrase = SecretBytes(Array(passphrase.utf8))
        self.workFactor = workFactor
        self.maximumWorkFactor = maximumWorkFactor
    }

    private static let label = Array("age-encryption.org/v1/scrypt".utf8)

    private func wrapKey(salt: [UInt8], workFactor: Int) throws -> SecretBytes {
        try Scrypt.deriveKey(
            password: passphrase.exposedCopy(), salt: Self.label + salt,
            parameters: .init(costFactor: 1 << UInt64(workFactor), blockSize: 8, parallelism: 1), outputByteCount: 32)
    }

    public func wrap(_ fileKey: SecretBytes) throws -> AgeStanza {
        let salt = try SecureRandom.bytes(count: 16)
        let sealed = try AEAD.chaCha20Poly1305.seal(fileKey.exposedCopy(), key: try wrapKey(salt: salt, workFactor: workFactor), nonce: zeroNonce)
        return AgeStanza(arguments: ["scrypt", Base64Raw.encode(salt), String(workFactor)], body: sealed.ciphertext + sealed.tag)
    }

    public func unwrap(_ stanzas: [AgeStanza]) throws -> SecretBytes? {
        for stanza in stanzas where stanza.arguments.first == "scrypt" {
            guard stanza.arguments.count == 3 else { throw AgeError(.header, "a scrypt stanza has a salt and a work factor") }
            guard let salt = Base64Raw.decodeCanonical(stanza.arguments[1].utf8), salt.count == 16 else {
                throw AgeError(.header, "a scrypt stanza's salt must be canonical base64 of 16 bytes")
            }
            let factor = stanza.arguments[2]
            guard factor.range(of: "^[1-9][0-9]{0,2}$", options: .regularExpression) != nil, let workFactor = Int(factor) else {
                throw AgeError(.header, "a scrypt stanza's work factor must be a decimal number without leading zeros")
            }
            guard workFactor <= maximumWorkFactor, workFactor < 64 else {
                throw AgeError(.header, "the scrypt work factor \(workFactor) is above the accepted \(maximumWorkFactor)")
            }
            guard stanza.body.count == 32 else { throw AgeError(.header, "a scrypt stanza's body must be 32 bytes") }
            let box = SealedBox(ciphertext: Array(stanza.body.prefix(16)), tag: Array(stanza.body.suffix(16)))
            guard var fileKey = try? AEAD.chaCha20Poly1305.open(box, key: try wrapKey(salt: salt, workFactor: workFactor), nonce: zeroNonce) else {
                continue
            }
            defer { ConstantTime.wipe(&fileKey) }
            return SecretBytes(fileKey)
        }
        return nil
    }
}

/// The age v1 payload's STREAM: 64 KiB chunks of ChaCha20-Poly1305 under
/// HKDF(file key, nonce, "payload"), nonce = 11-byte big-endian counter ‖ final flag.
struct AgeStream {
    static let chunkSize = 64 * 1024
    static let tagSize = 16
    private let aead: AEADContext
    private var counter: UInt64 = 0

    init(fileKey: SecretBytes, nonce: [UInt8]) throws {
        let key = try HKDFSHA256.deriveKey(inputKeyMaterial: fileKey, salt: nonce, info: Array("payload".utf8), outputByteCount: 32)
        aead = try AEADContext(.chaCha20Poly1305, key: key)
    }

    private func chunkNonce(final: Bool) -> [UInt8] {
        var nonce = [UInt8](repeating: 0, count: 12)
        for index in 0..<8 { nonce[3 + index] = UInt8(truncatingIfNeeded: counter >> UInt64(8 * (7 - index))) }
        nonce[11] = final ? 1 : 0
        return nonce
    }

    mutating func seal(_ chunk: ArraySlice<UInt8>, final: Bool) throws -> [UInt8] {
        let box = try aead.seal(chunk, nonce: chunkNonce(final: final))
        counter += 1
        return box.ciphertext + box.tag
    }

    mutating func open(_ chunk: ArraySlice<UInt8>, final: Bool) throws -> [UInt8] {
        guard chunk.count >= Self.tagSize else { throw AgeError(.payload, "chunk \(counter) is shorter than its tag") }
        let box = SealedBox(ciphertext: Array(chunk.dropLast(Self.tagSize)), tag: Array(chunk.suffix(Self.tagSize)))
        do {
            let plaintext = try aead.open(box, nonce: chunkNonce(final: final))
            counter += 1
            return plaintext
        } catch {
            throw AgeError(.payload, "chunk \(counter) does not authenticate\(final ? " as the final chunk" : ""): the payload was altered, truncated or extended")
        }
    }

    var chunksDone: UInt64 { counter }

    /// The next chunk opened or sealed is chunk `index` (random access: each chunk's
    /// nonce is its index, so any chunk opens on its own).
    mutating func seek(toChunk index: UInt64) { counter = index }
}

/// Encrypts a stream to age recipients, piece by piece: the header first, then
/// 64 KiB chunks as plaintext arrives, the final chunk at ``finish()``.
public struct AgeEncryptor {
    private var stream: AgeStream
    private var pending: [UInt8] = []
    private var started = false
    private let header: [UInt8]

    /// An encryptor to `recipients` (X25519: several may be given; any one identity decrypts).
    /// - Throws: ``AgeError`` `.header` when there is no recipient, a passphrase is
    ///   mixed with others, or hybrid post-quantum recipients with classic ones (the
    ///   file would be only as strong as its weakest stanza; age refuses it too).
    public init(recipients: [any AgeWrapping]) throws {
        guard !recipients.isEmpty else { throw AgeError(.header, "no recipient to encrypt to") }
        if recipients.count > 1 && recipients.contains(where: { $0 is AgePassphrase }) {
            throw AgeError(.header, "a passphrase must be the only recipient")
        }
        let hybrid = recipients.filter { $0 is AgeHybridRecipient }.count
        guard hybrid == 0 || hybrid == recipients.count else {
            throw AgeError(.header, "hybrid post-quantum (age1pq1…) and classic recipients cannot be mixed in one file")
        }
        let fileKey = try SecretBytes.random(count: 16)
        let nonce = try SecureRandom.bytes(count: 16)
        header = try AgeHeader.encode(stanzas: try recipients.map { try $0.wrap(fileKey) }, fileKey: fileKey) + nonce
        stream = try AgeStream(fileKey: fileKey, nonce: nonce)
    }

    /// The ciphertext for `plaintext` so far (the header first).
    public mutating func update(_ plaintext: some Collection<UInt8>) throws -> [UInt8] {
        var output: [UInt8] = []
        if !started {
            output = header
            started = true
        }
        pending.append(contentsOf: plaintext)
        // Keep at least one byte back: the final chunk must not be empty unless the whole payload is.
        var offset = 0
        while pending.count - offset > AgeStream.chunkSize {
            output += try stream.seal(pending[offset..<(offset + AgeStream.chunkSize)], final: false)
            offset += AgeStream.chunkSize
        }
        if offset > 0 { pending.removeFirst(offset) }
        return output
    }

    /// The rest of the ciphertext: the final chunk.
    public mutating func finish() throws -> [UInt8] {
        var output = started ? [] : header
        started = true
        output += try stream.seal(pending[...], final: true)
        pending.removeAll()
        return output
    }
}

/// Decrypts an age file piece by piece: feed ciphertext with ``update(_:)``, call
/// ``finish()`` at its end. Nothing is returned that has not authenticated, and
/// ``finish()`` fails unless a valid final chunk ended the stream exactly.
public struct AgeDecryptor {
    private let identities: [any AgeUnwrapping]
    private var buffer: [UInt8] = []
    private var stream: AgeStream?
    private var finished = false

    /// A decryptor trying each identity in turn.
    public init(identities: [any AgeUnwrapping]) {
        self.identities = identities
    }

    /// The plaintext that `ciphertext` completes (possibly none yet).
    /// - Throws: ``AgeError`` for the header, no matching identity, the MAC, or the payload.
    public mutating func update(_ ciphertext: some Collection<UInt8>) throws -> [UInt8] {
        buffer.append(contentsOf: ciphertext)
        if stream == nil {
            guard try startIfHeaderComplete(atEnd: false) else { return [] }
        }
        var output: [UInt8] = []
        let sealedChunk = AgeStream.chunkSize + AgeStream.tagSize
        // A full chunk followed by more data cannot be the final one.
        var offset = 0
        while buffer.count - offset > sealedChunk {
            output += try stream!.open(buffer[offset..<(offset + sealedChunk)], final: false)
            offset += sealedChunk
        }
        if offset > 0 { buffer.removeFirst(offset) }
        return output
    }

    /// The last plaintext, after checking that the stream ended with its final chunk.
    public mutating func finish() throws -> [UInt8] {
        if stream == nil {
            guard try startIfHeaderComplete(atEnd: true) else { throw AgeError(.header, "the file ends inside its header") }
        }
        guard var stream else { throw AgeError(.header, "the file ends inside its header") }
        guard !buffer.isEmpty else {
            throw AgeError(.payload, stream.chunksDone == 0 ? "the payload has no chunk" : "the payload ends without a final chunk")
        }
        let plaintext = try stream.open(buffer[...], final: true)
        if plaintext.isEmpty && stream.chunksDone > 1 {
            throw AgeError(.payload, "the final chunk is empty although the payload is not")
        }
        self.stream = stream
        buffer.removeAll()
        return plaintext
    }

    /// Random access: parses the header at the start of `head` (the file's first bytes),
    /// unwraps the file key, checks the MAC, and positions the decryptor on the chunk
    /// holding plaintext byte `offset`. Feed it the file from `fileOffset` on; its first
    /// `skip` plaintext bytes precede `offset` and are the caller's to drop. Every chunk
    /// still authenticates (its index is in its nonce), and ``finish()`` still requires
    /// the final chunk, so a file cut short or extended is refused as in a whole read.
    /// - Parameter wholeFile: `head` is the whole file (shorter than what was asked
    ///   for): a header cut short is then reported as such.
    /// - Throws: ``AgeError`` as ``update(_:)``; `.header` when `head` does not hold
    ///   the whole header and the payload's nonce; `.payload` for a negative offset or
    ///   one beyond any file.
    public mutating func position(atPlaintext offset: Int64, head: [UInt8], wholeFile: Bool = false) throws -> (fileOffset: Int64, skip: Int) {
        precondition(stream == nil && buffer.isEmpty, "position(atPlaintext:head:) comes first")
        guard offset >= 0 else { throw AgeError(.payload, "plaintext offset \(offset) is negative") }
        buffer = head
        guard try startIfHeaderComplete(atEnd: wholeFile) else {
            throw AgeError(.header, "the header is longer than the \(head.count) bytes read to find it")
        }
        let headerBytes = head.count - buffer.count
        buffer.removeAll()
        let chunk = offset / Int64(AgeStream.chunkSize)
        let sealedChunk = Int64(AgeStream.chunkSize + AgeStream.tagSize)
        let (payload, overflow) = chunk.multipliedReportingOverflow(by: sealedChunk)
        guard !overflow, payload <= Int64.max - Int64(headerBytes) else {
            throw AgeError(.payload, "plaintext offset \(offset) lies beyond any file")
        }
        stream!.seek(toChunk: UInt64(chunk))
        return (Int64(headerBytes) + payload, Int(offset % Int64(AgeStream.chunkSize)))
    }

    /// Parses the header once it is complete, unwraps the file key and checks the MAC.
    private mutating func startIfHeaderComplete(atEnd: Bool) throws -> Bool {
        guard let header = try AgeHeader.parse(buffer[...]) else {
            if atEnd { throw AgeError(.header, "the file ends inside its header") }
            return false
        }
        guard buffer.count >= header.byteCount + 16 else {
            if atEnd { throw AgeError(.header, "the file ends before the payload's 16-byte nonce") }
            return false
        }
        if header.stanzas.contains(where: { $0.arguments.first == "scrypt" }) && header.stanzas.count > 1 {
            throw AgeError(.header, "a scrypt stanza must be the only one in the header")
        }
        var fileKey: SecretBytes?
        for identity in identities where fileKey == nil {
            fileKey = try identity.unwrap(header.stanzas)
        }
        guard let fileKey else { throw AgeError(.noMatch, "no identity given matches a recipient of this file") }
        guard fileKey.count == 16 else { throw AgeError(.header, "the file key is not 16 bytes") }
        try header.verifyMAC(fileKey: fileKey)
        let nonce = Array(buffer[header.byteCount..<(header.byteCount + 16)])
        stream = try AgeStream(fileKey: fileKey, nonce: nonce)
        buffer.removeFirst(header.byteCount + 16)
        return true
    }
}

/// Whole-buffer conveniences.
public enum Age {
    /// Encrypts `plaintext` to `recipients`.
    public static func encrypt(_ plaintext: some Collection<UInt8>, to recipients: [any AgeWrapping]) throws -> [UInt8] {
        var encryptor = try AgeEncryptor(recipients: recipients)
        return try encryptor.update(plaintext) + encryptor.finish()
    }

    /// Decrypts a whole age file (binary or armored).
    public static func decrypt(_ file: [UInt8], identities: [any AgeUnwrapping]) throws -> [UInt8] {
        let binary = try AgeArmor.isArmored(file) ? AgeArmor.decode(file) : file
        var decryptor = AgeDecryptor(identities: identities)
        return try decryptor.update(binary) + decryptor.finish()
    }
}
