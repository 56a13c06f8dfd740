import Archive
public import Age
import Cryptography
import Foundation
import Glibc
import Journal

/// PostgreSQL's WAL, archived segment by segment (`archive_command =
/// 'osmose-backupd wal-push %p %f'`): each segment becomes
/// `<store>/wal/<name>.tar.zst.age`, a one-member pax archive, zstd-compressed,
/// encrypted to the backup recipients, so that after `age -d` it is read with
/// `bsdtar -x` like every other backup file. Beside it, `<name>.sig` is a signed
/// statement (``BackupStatement``) of the segment's SHA-256 and of the stored
/// file's SHA-256 and size: the backup host, which holds no key, can neither read
/// a segment nor write one that passes for the suite's. PostgreSQL may push a
/// segment again after a crash: an identical one is then acknowledged, a different
/// one refused. Stores written before signing hold `<name>.sha256` (the segment's
/// SHA-256 alone) instead.
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
    /// The signed statement of a file.
    func signaturePath(_ name: String) -> String { "\(directory)/\(name).sig" }
    /// Every file ever pushed, one line each (`<name> <sha256>`), appended and synced
    /// after the file itself: what the store should hold, so that a missing file —
    /// at the tail too — is noticed by restore and verify.
    var logPath: String { "\(directory)/pushed.log" }

    /// The names the push log records, each once, in the order first pushed.
    public func pushedNames() throws -> [String] {
        guard let data = FileManager.default.contents(atPath: logPath) else { return [] }
        var seen = Set<Substring>()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            guard let name = line.split(separator: " ").first, seen.insert(name).inserted else { return nil }
            return String(name)
        }
    }

    /// Appends `name` to the push log. The log is read first only when `checkingLog`:
    /// a push that found no archive under that name cannot have been logged (the log is
    /// written after the archive is in place, and prune forgets a name before removing
    /// its archive), so the usual push appends without reading a log that grows with
    /// the store. A name logged twice all the same (an archive removed by hand, then
    /// pushed again) is read once by ``pushedNames()``.
    private func recordPushed(_ name: String, _ digest: String, checkingLog: Bool) throws {
        if checkingLog, try pushedNames().contains(name) { return }
        let descriptor = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw ArchiveError("cannot open \(logPath): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        let line = Array("\(name) \(digest)\n".utf8)
        guard write(descriptor, line, line.count) == line.count, fsync(descriptor) == 0 else {
            throw ArchiveError("appending to \(logPath) failed: \(String(cString: strerror(errno)))")
        }
    }
    /// The digest file of stores written before signing.
    func digestPath(_ name: String) -> String { "\(directory)/\(name).sha256" }

    /// What ``push(segment:name:recipients:signer:)`` did.
    public enum PushOutcome: Sendable, Equatable {
        /// Stored now.
        case stored(bytes: Int64)
        /// The same segment was already stored (PostgreSQL retried after a crash).
        case alreadyStored
    }

    /// The statement signed for WAL file `name`: its SHA-256, and the stored file's.
    static func statement(name: String, sha256: String, fileSHA256: String, bytes: Int64, signedAt: Date = Date()) throws -> BackupStatement {
        try BackupStatement(
            kind: .wal, subject: name,
            fields: [
                ("sha256", sha256), BackupStatement.fileField(name: "\(name).tar.zst.age", bytes: bytes, sha256: fileSHA256),
                ("signed", SignatureTime.format(signedAt)),
            ])
    }

    /// Archives the segment at `segment` under `name`, signed, durably (files and
    /// directory synced) before returning; PostgreSQL may then recycle it. The archive
    /// is written under a temporary name, then its signature, then it is renamed into
    /// place: a file under its final name always has its signature (or, after a crash
    /// before the directory was synced, is rewritten by PostgreSQL's retry).
    /// - Throws: ``ArchiveError`` when the name is not a WAL file name, the segment
    ///   cannot be read, a different segment of that name is already stored, or
    ///   writing fails (PostgreSQL keeps the segment and retries).
    public func push(segment: String, name: String, recipients: [any AgePublicRecipient], signer: BackupSigner) throws -> PushOutcome {
        guard Self.isWALFileName(name) else { throw ArchiveError("\(name) is not a WAL file name") }
        guard access(segment, R_OK) == 0 else { throw ArchiveError("cannot read \(segment): \(String(cString: strerror(errno)))") }
        let existed = FileManager.default.fileExists(atPath: archivePath(name))
        if existed {
            // A retry: hashed first, to compare with what is stored (a first push hashes
            // the segment as it compresses it, and reads it once).
            let digest = try FileBlocks.sha256(ofFile: segment).sha256
            if try storedMatches(name, digest: digest, signer: signer) {
                try recordPushed(name, digest, checkingLog: true)
                return .alreadyStored
            }
            // An archive whose signature is missing, or does not hold for the file: an
            // interrupted push, rewritten from the segment PostgreSQL still holds.
            unlink(archivePath(name))
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let staged = archivePath(name) + ".new"
        unlink(staged)
        unlink(staged + ".partial")
        // One thread: zstd's workers (and a hashing thread) made a 16 MiB segment slower,
        // 72 ms against 62 ms on 2 cores (their buffers alone: 3,000 more page faults in a
        // process that lives for one segment; docs/benchmarks.md).
        let writer = try EncryptedArchiveWriter(path: staged, recipients: recipients)
        let digest = try writer.addFile(at: segment, as: name).sha256
        try writer.finish()
        guard let fileSHA256 = writer.fileSHA256 else { throw ArchiveError("\(staged) was written without its digest") }
        let statement = try Self.statement(name: name, sha256: digest, fileSHA256: fileSHA256, bytes: writer.bytesWritten)
        try writeDurably(Array(try signer.sign(statement).utf8), to: signaturePath(name), syncingDirectory: false)
        guard rename(staged, archivePath(name)) == 0 else { throw ArchiveError("renaming \(staged) failed: \(String(cString: strerror(errno)))") }
        try syncDirectory(of: archivePath(name))
        try recordPushed(name, digest, checkingLog: existed)
        return .stored(bytes: writer.bytesWritten)
    }

    /// Whether the stored file `name` holds the segment whose SHA-256 is `digest`,
    /// as a signature this signer can check states, the stored file matching it.
    /// - Returns: false when it should be rewritten (no signature, or one that does not hold).
    /// - Throws: ``ArchiveError`` when the store states a different segment under that name.
    private func storedMatches(_ name: String, digest: String, signer: BackupSigner) throws -> Bool {
        let different = ArchiveError("\(name) is already archived with different content: refusing to overwrite it (check for two clusters archiving to one store)")
        if let note = FileManager.default.contents(atPath: signaturePath(name)).map({ String(decoding: $0, as: UTF8.self) }) {
            // What the stored signature says, even unchecked: a different segment is never overwritten.
            if let text = try? SignedNote.text(of: note), let stated = try? BackupStatement.parse(text, file: name), stated.value("sha256") != digest {
                throw different
            }
            guard let authenticated = try? BackupTrust(keys: []).adding(signer).authenticate(note, file: name, kind: .wal, subject: name),
                let file = authenticated.statement.file("\(name).tar.zst.age"),
                let stored = try? FileBlocks.sha256(ofFile: archivePath(name)), stored.sha256 == file.sha256, stored.size == file.bytes
            else { return false }
            return true
        }
        if let stored = FileManager.default.contents(atPath: digestPath(name)) {
            guard String(decoding: stored, as: UTF8.self) == digest + "\n" else { throw different }
            return true
        }
        return false
    }

    /// Restores segment `name` to `destination` (`restore_command =
    /// 'osmose-backupd wal-fetch %f %p'`), checking its signature and content.
    /// - Returns: false when the store has no such segment (PostgreSQL then ends recovery there).
    /// - Throws: ``BackupIntegrityError`` when it is unsigned, not signed by a trusted
    ///   key, or not what was signed (nothing is written then); ``ArchiveError`` when
    ///   it cannot be read.
    ///
    /// The segment is streamed to `<destination>.partial` as it is decrypted (never
    /// held whole in memory) and renamed to `destination` only once its SHA-256 matches
    /// the signed one: PostgreSQL never sees a segment that was not checked. It is not
    /// synced: PostgreSQL replays it from the page cache, and after a crash during
    /// recovery it asks for the segment again.
    public func fetch(name: String, to destination: String, identities: [any AgeUnwrapping], trust: BackupTrust) throws -> Bool {
        let temporary = destination + ".partial"
        unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw ArchiveError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        let found: SegmentCheck?
        do {
            defer { close(descriptor) }
            found = try decrypt(
                name: name, identities: identities, trust: trust, reserve: { _ in },
                sink: { block in
                    // Memory: `block` is valid during this call only; it is written out
                    // before it returns, from `offset < bytes.count`, and not kept.
                    try block.withUnsafeBytes { bytes in
                        var offset = 0
                        while offset < bytes.count {
                            let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                            if written < 0 && errno == EINTR { continue }
                            guard written > 0 else { throw ArchiveError("writing \(temporary) failed: \(String(cString: strerror(errno)))") }
                            offset += written
                        }
                    }
                })
        } catch {
            unlink(temporary)
            throw error
        }
        guard found != nil else {
            unlink(temporary)
            return false
        }
        guard rename(temporary, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw ArchiveError("renaming \(temporary) failed: \(reason)")
        }
        return true
    }

    /// What ``check(name:identities:trust:)`` found of a stored segment.
    public struct SegmentCheck: Sendable {
        /// Its checked signature; nil when it is unsigned and that was accepted.
        public let signature: BackupTrust.Authenticated?
    }

    /// Decrypts segment `name` and compares it with its signed SHA-256, hashing as it
    /// streams (nothing kept, nothing written: what verify does).
    /// - Returns: nil when the store has no such segment.
    /// - Throws: ``BackupIntegrityError`` or ``ArchiveError`` as ``fetch(name:to:identities:trust:)``.
    public func check(name: String, identities: [any AgeUnwrapping], trust: BackupTrust) throws -> SegmentCheck? {
        try decrypt(name: name, identities: identities, trust: trust, reserve: { _ in }, sink: { _ in })
    }

    /// The signature of `name`, checked (nil when unsigned and `trust` accepts that).
    /// - Throws: ``BackupIntegrityError`` naming the signature file.
    public func authenticate(_ name: String, trust: BackupTrust) throws -> BackupTrust.Authenticated? {
        let file = "wal/\(name).sig"
        guard let note = FileManager.default.contents(atPath: signaturePath(name)) else {
            guard trust.acceptUnsigned else {
                throw BackupIntegrityError(
                    .unsigned, file,
                    "missing: wal/\(name).tar.zst.age is unsigned (written before signing, or its signature was removed); refused without --accept-unsigned")
            }
            return nil
        }
        return try trust.authenticate(String(decoding: note, as: UTF8.self), file: file, kind: .wal, subject: name)
    }

    /// Checks the signature of `name`, then streams its content to `sink` and checks
    /// its SHA-256 against the signed one (or, unsigned and accepted, the old digest file).
    private func decrypt(
        name: String, identities: [any AgeUnwrapping], trust: BackupTrust, reserve: (Int) -> Void, sink: (RawSpan) throws -> Void
    ) throws -> SegmentCheck? {
        guard Self.isWALFileName(name) else { throw ArchiveError("\(name) is not a WAL file name") }
        guard FileManager.default.fileExists(atPath: archivePath(name)) else { return nil }
        let authenticated = try authenticate(name, trust: trust)
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
        if let authenticated {
            guard authenticated.statement.value("sha256") == digest else {
                throw BackupIntegrityError(
                    .mismatch, "wal/\(name).tar.zst.age", "decrypts to a segment other than the one signed in wal/\(name).sig (SHA-256 differs): replaced or damaged")
            }
        } else if let stored = FileManager.default.contents(atPath: digestPath(name)), String(decoding: stored, as: UTF8.self) != digest + "\n" {
            throw ArchiveError("\(name) does not match its recorded SHA-256: the store is damaged")
        }
        return SegmentCheck(signature: authenticated)
    }

    /// The names of the stored segments, sorted.
    public func names() throws -> [String] {
        guard FileManager.default.fileExists(atPath: directory) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".tar.zst.age") }
            .map { String($0.dropLast(12)) }.sorted()
    }
}

/// Writes `bytes` to `path` through a temporary file, synced, renamed, directory synced.
/// Without `syncingDirectory`, the caller syncs the directory after a later rename there.
func writeDurably(_ bytes: [UInt8], to path: String, mode: mode_t = 0o640, syncingDirectory: Bool = true) throws {
    let temporary = path + ".partial"
    unlink(temporary)
    let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
    guard descriptor >= 0 else { throw ArchiveError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
    var offset = 0
    while offset < bytes.count {
        // Memory: the slice `offset...` is inside `bytes` (offset < bytes.count in the loop).
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
    if syncingDirectory { try syncDirectory(of: path) }
}
