/// An error writing or reading an encrypted archive, or handling the files around
/// one (backups, WAL segments, cold journal archives); names the file and member,
/// never their content.
public struct ArchiveError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, naming the file and member.
    public let message: String
    /// An error saying `message`.
    public init(_ message: String) { self.message = message }
    /// `backup.archive: ` and the message (the prefix is the stable code logs and scripts match).
    public var description: String { "backup.archive: \(message)" }
}

/// An entry read from an archive.
public struct ArchiveEntry: Sendable {
    /// Regular file, directory or symbolic link (with its target).
    public enum Kind: Sendable, Equatable {
        case file, directory
        case symlink(String)
    }
    /// Its path inside the archive.
    public let path: String
    /// What it is.
    public let kind: Kind
    /// Its permission bits.
    public let mode: UInt32
    /// Its size (files).
    public let size: Int64
}

/// One member of an archive, as the manifest records it.
public struct ArchiveMember: Hashable, Sendable, Codable {
    /// Its path inside the archive.
    public let path: String
    /// Its size in bytes.
    public let size: Int64
    /// SHA-256 of its content, lowercase hex.
    public let sha256: String
    /// Where the zstd frame holding its header starts, as an offset in the decrypted
    /// (still compressed) stream: a reader can begin there
    /// (``EncryptedArchiveReader/init(path:identities:startingAt:)``). Absent in
    /// archives written before 2026-12-06, one zstd frame from start to end.
    public let frame: Int64?

    /// A member as a manifest records it.
    public init(path: String, size: Int64, sha256: String, frame: Int64? = nil) {
        self.path = path
        self.size = size
        self.sha256 = sha256
        self.frame = frame
    }
}

/// Hands an entry's content to its closure block by block, in order: each block is
/// libarchive's own decompression buffer, valid only during the call (no copy).
/// Content left unread is skipped when the next entry is read.
public typealias ArchiveBlockReader = ((RawSpan) throws -> Void) throws -> Void

