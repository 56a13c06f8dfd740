import Archive
public import Age
import Cryptography
import Foundation
import Glibc

/// PostgreSQL's WAL, archived segment by segment (`archive_command =
/// 'osmose-backupd wal-push %p %f'`): each segment becomes
/// `<store>/wal/<name>.tar.zst.age`, a one-member pax archive, zstd-compressed,
/// encrypted to the backup recipients, so that after `age -d` it is read with
/// `bsdtar -x` like every other backup file. Beside it, `<name>.sha256` holds the
/// SHA-256 of the segment (the backup host has no key to decrypt with, and
/// PostgreSQL may push a segment again after a crash: an identical one is then
/// acknowledged, a different one refused).
public struct WALArchive: Sendable {
    /// The directory holding the segments.
    public let directory: String

    /// The WAL directory of a backup store.
    public init(store: String) { directory = store + "/wal" }

    /// WAL segment, timeline history and backup-label file names as PostgreSQL writes them.
    public static func isWALFileName(_ name: String) -> Bool {
        name.range(of: "^([0-9A-F]{24}(\\.partial|\\.[0-9A-F]{8}\\.backup)?|[0-9A-F]{8}\\.history)$", options: .regularExpression) != nil
    }

    func archivePath(_ name: String) -> String { "\(directory)/\(name).tar.zst.age" }
    /// Every file ever pushed, one line each (`<name> <sha256>`), appended and synced
    /// after the file itself: what the store should hold, so that a missing file —
    /// at the tail too — is noticed by restore and verify.
    var logPath: String { "\(directory)/pushed.log" }

    /// The names the push log records.
    public func pushedNames() throws -> [String] {
        guard let data = FileManager.default.contents(atPath: logPath) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    private func recordPushed(_ name: String, _ digest: String) throws {
        if try pushedNames().contains(name) { return }
        let descriptor = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw ArchiveError("cannot open \(logPath): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let line = Array("\(name) \(digest)\n".utf8)
        guard write(descriptor, line, line.count) == line.count, fsync(descriptor) == 0 else {
            throw ArchiveError("appending to \(logPath) failed: \(String(cString: strerror(errno)))")
        }
    }
    func digestPath(_ name: String) -> String { "\(directory)/\(name).sha256" }

    /// What ``push(segment:name:recipients:)`` did.
    public enum PushOutcome: Sendable, Equatable {
        /// Stored now.
        case stored(bytes: Int64)
        /// The same segment was already stored (PostgreSQL retried after a crash).
        case alreadyStored
    }

    /// Archives the segment at `segment` under `name`, durably (file and directory
    /// synced) before returning; PostgreSQL may then recycle it.
    /// - Throws: ``ArchiveError`` when the name is not a WAL file name, the segment
    ///   cannot be read, a different segment of that name is already stored, or
    ///   writing fails (PostgreSQL keeps the segment and retries).
    public func push(segment: String, name: String, recipients: [any AgePublicRecipient]) throws -> PushOutcome {
        guard Self.isWALFileName(name) else { throw ArchiveError("\(name) is not a WAL file name") }
        guard let content = FileManager.default.contents(atPath: segment) else { throw ArchiveError("cannot read \(segment)") }
        let digest = hexSHA256(content)
        if FileManager.default.fileExists(atPath: archivePath(name)) {
            guard let stored = FileManager.default.contents(atPath: digestPath(name)), String(decoding: stored, as: UTF8.self) == digest + "\n" else {
                throw ArchiveError("\(name) is already archived with different content: refusing to overwrite it (check for two clusters archiving to one store)")
            }
            try recordPushed(name, digest)
            return .alreadyStored
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // The digest first (a digest without its archive is simply rewritten), then the archive by rename.
        try writeDurably(Array((digest + "\n").utf8), to: digestPath(name))
        unlink(archivePath(name) + ".partial")
        let writer = try EncryptedArchiveWriter(path: archivePath(name), recipients: recipients)
        try writer.addBytes(Array(content), as: name, mode: 0o600)
        try writer.finish()
        try recordPushed(name, digest)
        return .stored(bytes: writer.bytesWritten)
    }

    /// Restores segment `name` to `destination` (`restore_command =
    /// 'osmose-backupd wal-fetch %f %p'`), checking it against its digest.
    /// - Returns: false when the store has no such segment (PostgreSQL then ends recovery there).
    public func fetch(name: String, to destination: String, identities: [any AgeUnwrapping]) throws -> Bool {
        guard let content = try read(name: name, identities: identities) else { return false }
        try writeDurably(content, to: destination)
        return true
    }

    /// Decrypts segment `name` in memory and checks it against its digest.
    /// - Returns: nil when the store has no such segment.
    public func read(name: String, identities: [any AgeUnwrapping]) throws -> [UInt8]? {
        var content: [UInt8] = []
        let found = try decrypt(name: name, identities: identities, reserve: { content.reserveCapacity($0) }, sink: { block in block.withUnsafeBytes { content.append(contentsOf: $0) } })
        return found ? content : nil
    }

    /// Decrypts segment `name` and compares it with its recorded digest, hashing as it
    /// streams (nothing kept, nothing written: what verify does).
    /// - Returns: false when the store has no such segment.
    /// - Throws: ``ArchiveError`` when it cannot be read or differs from its digest.
    public func check(name: String, identities: [any AgeUnwrapping]) throws -> Bool {
        try decrypt(name: name, identities: identities, reserve: { _ in }, sink: { _ in })
    }

    /// Streams the content of segment `name` to `sink`, then checks its SHA-256.
    private func decrypt(
        name: String, identities: [any AgeUnwrapping], reserve: (Int) -> Void, sink: (RawSpan) throws -> Void
    ) throws -> Bool {
        guard Self.isWALFileName(name) else { throw ArchiveError("\(name) is not a WAL file name") }
        guard FileManager.default.fileExists(atPath: archivePath(name)) else { return false }
        let reader = try EncryptedArchiveReader(path: archivePath(name), identities: identities)
        var hasher = SHA256Hasher()
        var found = false
        try reader.forEachMember { path, size, content in
            guard path == name, !found else { throw ArchiveError("\(archivePath(name)) holds \(path), not only \(name)") }
            found = true
            reserve(Int(clamping: max(0, size)))
            try withoutActuallyEscaping(sink) { sink in
                try content { block in
                    hasher.update(block)
                    try sink(block)
                }
            }
        }
        guard found else { throw ArchiveError("\(archivePath(name)) is empty") }
        let digest = hexDigest(hasher.finalize())
        if let stored = FileManager.default.contents(atPath: digestPath(name)), String(decoding: stored, as: UTF8.self) != digest + "\n" {
            throw ArchiveError("\(name) does not match its recorded SHA-256: the store is damaged")
        }
        return true
    }

    /// The names of the stored segments, sorted.
    public func names() throws -> [String] {
        guard FileManager.default.fileExists(atPath: directory) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".tar.zst.age") }
            .map { String($0.dropLast(12)) }.sorted()
    }
}

/// Writes `bytes` to `path` through a temporary file, synced, renamed, directory synced.
func writeDurably(_ bytes: [UInt8], to path: String, mode: mode_t = 0o640) throws {
    let temporary = path + ".partial"
    unlink(temporary)
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard descriptor >= 0 else { throw ArchiveError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else {
            close(descriptor)
            throw ArchiveError("writing \(temporary) failed: \(String(cString: strerror(errno)))")
        }
        offset += written
    }
    guard fsync(descriptor) == 0 else {
        close(descriptor)
        throw ArchiveError("syncing \(temporary) failed: \(String(cString: strerror(errno)))")
    }
    close(descriptor)
    guard rename(temporary, path) == 0 else { throw ArchiveError("renaming \(temporary) failed: \(String(cString: strerror(errno)))") }
    try syncDirectory(of: path)
}
