import Foundation

/// A C2SP tlog-checkpoint: the note text `<origin>\n<tree size>\n<base64 root hash>\n`
/// followed by optional extension lines, carried in a signed note whose key name
/// equals the origin.
public struct Checkpoint: Hashable, Sendable {
    /// The log's origin, e.g. `journal.chu-exemple.fr`.
    public let origin: String
    /// The number of entries.
    public let size: UInt64
    /// The RFC 6962 root of the first `size` entries.
    public let rootHash: [UInt8]
    /// Extension lines, kept as given.
    public let extensions: [String]

    /// Creates a checkpoint.
    public init(origin: String, size: UInt64, rootHash: [UInt8], extensions: [String] = []) {
        self.origin = origin
        self.size = size
        self.rootHash = rootHash
        self.extensions = extensions
    }

    /// The note text.
    public var text: String {
        ([origin, String(size), Data(rootHash).base64EncodedString()] + extensions).map { $0 + "\n" }.joined()
    }

    /// Parses a checkpoint's note text.
    /// - Throws: ``NoteError`` naming the first malformed line.
    public init(text: String) throws {
        guard text.hasSuffix("\n") else { throw NoteError("a checkpoint ends with a newline") }
        let lines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.count >= 3, !lines[0].isEmpty else { throw NoteError("a checkpoint has an origin, a size and a root hash") }
        guard let size = UInt64(lines[1]), lines[1] == String(size) else { throw NoteError("checkpoint line 2: the size must be a decimal number without leading zeros") }
        guard let root = Data(base64Encoded: lines[2]), root.count == 32 else { throw NoteError("checkpoint line 3: the root hash must be base64 of 32 bytes") }
        guard !lines.dropFirst(3).contains(where: \.isEmpty) else { throw NoteError("a checkpoint extension line is empty") }
        self.init(origin: lines[0], size: size, rootHash: Array(root), extensions: Array(lines.dropFirst(3)))
    }

    /// Signs the checkpoint; the first key's name must be the origin.
    public func signed(by signers: [NoteSignerKey]) throws -> String {
        guard signers.first?.verifierKey.name == origin else { throw NoteError("the log's key name must equal the origin \(origin)") }
        return try SignedNote.sign(text, with: signers)
    }

    /// Opens a signed checkpoint; the log's own key (named after the origin) must have signed it.
    public static func open(_ note: String, logKey: NoteVerifierKey, witnesses: [NoteVerifierKey] = []) throws -> Checkpoint {
        try open(note, logKeys: [logKey], witnesses: witnesses).checkpoint
    }

    /// Opens a signed checkpoint of a log that has had several keys (a key rollover):
    /// at least one of `logKeys` named after the origin must have signed it, and
    /// every signature by a known key must verify.
    /// - Returns: the checkpoint and the log keys whose signatures verified.
    public static func open(_ note: String, logKeys: [NoteVerifierKey], witnesses: [NoteVerifierKey] = []) throws
        -> (checkpoint: Checkpoint, signedBy: [NoteVerifierKey])
    {
        let (text, signedBy) = try SignedNote.open(note, verifiers: logKeys + witnesses)
        let checkpoint = try Checkpoint(text: text)
        let byLog = signedBy.filter { key in key.name == checkpoint.origin && logKeys.contains(key) }
        guard !byLog.isEmpty else {
            let names = Set(logKeys.map(\.name)).sorted().joined(separator: ", ")
            throw NoteError("the checkpoint for \(checkpoint.origin) is not signed by a log key of \(names)")
        }
        return (checkpoint, byLog)
    }
}
