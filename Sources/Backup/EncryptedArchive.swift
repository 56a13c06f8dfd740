public import Age
internal import CLibarchive
import Cryptography
public import Foundation
import Glibc

/// An error writing or reading an encrypted archive; names the file and member.
public struct ArchiveError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public let message: String
    init(_ message: String) { self.message = message }
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
}

/// Writes a pax tar archive, zstd-compressed, encrypted in the age format to
/// X25519 recipients, into a new file. The file is written under a temporary
/// name, synced, and renamed into place by ``finish()``: a crash never leaves a
/// file under the final name that is not complete. After `age -d`, `bsdtar -t`
/// lists it.
public final class EncryptedArchiveWriter {
    private let archive: OpaquePointer
    /// With several threads: members are hashed beside compression, not before it.
    private let backgroundHasher: BackgroundHasher?
    private let path: String
    private let temporaryPath: String
    private let descriptor: Int32
    private var encryptor: AgeEncryptor
    private var failure: (any Error)?
    private var finished = false
    /// Bytes written to the file so far.
    public private(set) var bytesWritten: Int64 = 0
    /// SHA-256 of the encrypted file as written: what `verify` compares the stored file with.
    private var fileHasher: SHA256Hasher? = SHA256Hasher()
    /// SHA-256 (hex) of the whole encrypted file, once ``finish()`` returned.
    public private(set) var fileSHA256: String?
    /// The members added, in order.
    public private(set) var members: [ArchiveMember] = []

    /// Starts `path` (which must not exist), encrypted to `recipients`.
    /// - Throws: ``ArchiveError`` when the file exists or cannot be created.
    /// `threads` > 1 compresses on that many threads (for base backups: the rest of
    /// the pipeline, hashing and encryption, keeps the calling thread busy).
    public init(path: String, recipients: [any AgePublicRecipient], compressionLevel: Int = 3, threads: Int = 1) throws {
        backgroundHasher = threads > 1 ? BackgroundHasher() : nil
        guard !FileManager.default.fileExists(atPath: path) else { throw ArchiveError("\(path) exists; archives are never overwritten") }
        self.path = path
        temporaryPath = path + ".partial"
        unlink(temporaryPath)
        descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard descriptor >= 0 else { throw ArchiveError("cannot create \(temporaryPath): \(String(cString: strerror(errno)))") }
        encryptor = try AgeEncryptor(recipients: recipients)
        guard let archive = archive_write_new() else { throw ArchiveError("libarchive could not allocate a writer") }
        self.archive = archive
        guard archive_write_set_format_pax_restricted(archive) == ARCHIVE_OK,
            archive_write_add_filter_zstd(archive) == ARCHIVE_OK,
            archive_write_set_filter_option(archive, "zstd", "compression-level", String(compressionLevel)) == ARCHIVE_OK,
            threads <= 1 || archive_write_set_filter_option(archive, "zstd", "threads", String(threads)) == ARCHIVE_OK,
            // No padding of the compressed stream (3.6.2 cannot read back a padded zstd stream: pitfalls.md).
            archive_write_set_bytes_per_block(archive, 0) == ARCHIVE_OK,
            archive_write_set_bytes_in_last_block(archive, 1) == ARCHIVE_OK
        else { throw ArchiveError("libarchive: \(Self.message(archive))") }
        let context = Unmanaged.passUnretained(self).toOpaque()
        let status = archive_write_open2(archive, context, nil, { _, context, buffer, length in
            let writer = Unmanaged<EncryptedArchiveWriter>.fromOpaque(context!).takeUnretainedValue()
            return writer.consume(UnsafeRawBufferPointer(start: buffer, count: length)) ? la_ssize_t(length) : -1
        }, nil, nil)
        guard status == ARCHIVE_OK else { throw ArchiveError("libarchive could not open the writer: \(Self.message(archive))") }
    }

    deinit {
        backgroundHasher?.close()
        archive_write_free(archive)
        if !finished {
            close(descriptor)
            unlink(temporaryPath)
        }
    }

    static func message(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }

    /// libarchive's output: encrypted, then written.
    private func consume(_ bytes: UnsafeRawBufferPointer) -> Bool {
        do {
            try writeAll(try encryptor.update(bytes))
            return true
        } catch {
            failure = error
            return false
        }
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { throw ArchiveError("writing \(temporaryPath) failed: \(String(cString: strerror(errno)))") }
            offset += written
        }
        fileHasher?.update(bytes)
        bytesWritten += Int64(bytes.count)
    }

    private func check(_ status: Int32, _ what: String) throws {
        guard status >= ARCHIVE_WARN else { throw failure ?? ArchiveError("\(what): \(Self.message(archive))") }
    }

    /// Adds a member with the content of the file at `source`, streamed in 1 MiB blocks.
    /// - Throws: ``ArchiveError`` when the file cannot be read or changes size while read.
    @discardableResult
    public func addFile(at source: String, as name: String) throws -> ArchiveMember {
        var status = stat()
        guard stat(source, &status) == 0 else { throw ArchiveError("cannot stat \(source): \(String(cString: strerror(errno)))") }
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw ArchiveError("cannot open \(source): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        return try addStreamed(name: name, size: Int64(status.st_size), mode: UInt32(status.st_mode & 0o7777), modified: Int(status.st_mtim.tv_sec)) { sink in
            let total = try BulkIO.readBlocks(input, path: source, sink)
            guard total == Int64(status.st_size) else { throw ArchiveError("\(source) changed size while it was archived") }
        }
    }

    /// Adds a member holding `bytes`.
    @discardableResult
    public func addBytes(_ bytes: [UInt8], as name: String, mode: UInt32 = 0o640, modified: Int = Int(Date().timeIntervalSince1970)) throws -> ArchiveMember {
        try addStreamed(name: name, size: Int64(bytes.count), mode: mode, modified: modified) { sink in try sink(bytes[...]) }
    }

    /// Adds a directory entry.
    public func addDirectory(_ name: String, mode: UInt32 = 0o750, modified: Int = Int(Date().timeIntervalSince1970)) throws {
        let entry = archive_entry_new()
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname_utf8(entry, name)
        archive_entry_set_filetype(entry, 0o040000)
        archive_entry_set_perm(entry, mode)
        archive_entry_set_mtime(entry, modified, 0)
        try check(archive_write_header(archive, entry), "adding directory \(name)")
    }

    /// Adds a symbolic link.
    func addSymlink(_ name: String, target: String, modified: Int) throws {
        let entry = archive_entry_new()
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname_utf8(entry, name)
        archive_entry_set_filetype(entry, 0o120000)
        archive_entry_set_perm(entry, 0o777)
        archive_entry_set_symlink_utf8(entry, target)
        archive_entry_set_mtime(entry, modified, 0)
        try check(archive_write_header(archive, entry), "adding link \(name)")
    }

    /// Adds a regular file whose content `content` hands over block by block.
    func addStreamed(name: String, size: Int64, mode: UInt32, modified: Int, content: ((ArraySlice<UInt8>) throws -> Void) throws -> Void) throws -> ArchiveMember {
        let entry = archive_entry_new()
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname_utf8(entry, name)
        archive_entry_set_filetype(entry, 0o100000)
        archive_entry_set_perm(entry, mode)
        archive_entry_set_size(entry, size)
        archive_entry_set_mtime(entry, modified, 0)
        try check(archive_write_header(archive, entry), "adding \(name)")
        var hasher = SHA256Hasher()
        var written: Int64 = 0
        try content { chunk in
            if let backgroundHasher { backgroundHasher.update(chunk) } else { hasher.update(chunk) }
            written += Int64(chunk.count)
            let status = chunk.withUnsafeBytes { archive_write_data(archive, $0.baseAddress, $0.count) }
            guard status == chunk.count else { throw failure ?? ArchiveError("writing \(name): \(Self.message(archive))") }
        }
        try check(archive_write_finish_entry(archive), "finishing \(name)")
        let digest: String
        if let backgroundHasher {
            digest = backgroundHasher.finalize()
        } else {
            digest = hexDigest(hasher.finalize())
        }
        let member = ArchiveMember(path: name, size: written, sha256: digest)
        members.append(member)
        return member
    }

    /// Ends the archive, the compression and the encryption, syncs the file and
    /// renames it into place (then syncs its directory).
    public func finish() throws {
        try check(archive_write_close(archive), "closing the archive")
        try writeAll(try encryptor.finish())
        fileSHA256 = (fileHasher.take()?.finalize()).map(hexDigest)
        guard fsync(descriptor) == 0 else { throw ArchiveError("syncing \(temporaryPath) failed: \(String(cString: strerror(errno)))") }
        close(descriptor)
        guard rename(temporaryPath, path) == 0 else { throw ArchiveError("renaming \(temporaryPath) failed: \(String(cString: strerror(errno)))") }
        finished = true
        try syncDirectory(of: path)
    }
}

/// Syncs the directory holding `path`, so that a rename into it survives a crash.
func syncDirectory(of path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    let descriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard descriptor >= 0 else { throw ArchiveError("cannot open \(directory): \(String(cString: strerror(errno)))") }
    defer { close(descriptor) }
    guard fsync(descriptor) == 0 else { throw ArchiveError("syncing \(directory) failed: \(String(cString: strerror(errno)))") }
}

/// Reads an archive written by ``EncryptedArchiveWriter`` (or any age-encrypted,
/// compressed tar): decrypts, decompresses, and hands each member's content over
/// in blocks, checking nothing itself; the caller compares with the manifest.
public final class EncryptedArchiveReader {
    private let archive: OpaquePointer
    private let path: String
    private let descriptor: Int32
    private var decryptor: AgeDecryptor
    private var plaintext: [UInt8] = []
    private var atEnd = false
    private var failure: (any Error)?

    /// Opens `path` with `identities`.
    public init(path: String, identities: [any AgeUnwrapping]) throws {
        self.path = path
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ArchiveError("cannot open \(path): \(String(cString: strerror(errno)))") }
        decryptor = AgeDecryptor(identities: identities)
        guard let archive = archive_read_new() else { throw ArchiveError("libarchive could not allocate a reader") }
        self.archive = archive
        archive_read_support_filter_all(archive)
        archive_read_support_format_tar(archive)
        let context = Unmanaged.passUnretained(self).toOpaque()
        let status = archive_read_open2(archive, context, nil, { _, context, buffer in
            let reader = Unmanaged<EncryptedArchiveReader>.fromOpaque(context!).takeUnretainedValue()
            return reader.produce(buffer!)
        }, nil, nil)
        guard status == ARCHIVE_OK else { throw failure ?? ArchiveError("\(path): not a readable archive: \(EncryptedArchiveWriter.message(archive))") }
    }

    deinit {
        archive_read_free(archive)
        close(descriptor)
    }

    /// The buffer each read of the file goes into (one for the reader's life).
    private var block = [UInt8](repeating: 0, count: 1 << 20)

    /// Decrypts the next piece of the file for libarchive.
    private func produce(_ buffer: UnsafeMutablePointer<UnsafeRawPointer?>) -> la_ssize_t {
        do {
            plaintext = []
            while plaintext.isEmpty && !atEnd {
                let count = block.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                guard count >= 0 else { throw ArchiveError("reading \(path) failed: \(String(cString: strerror(errno)))") }
                if count == 0 {
                    atEnd = true
                    plaintext = try decryptor.finish()
                } else {
                    plaintext = try decryptor.update(block[0..<count])
                }
            }
            return plaintext.withUnsafeBytes { raw in
                buffer.pointee = raw.baseAddress
                return la_ssize_t(raw.count)
            }
        } catch {
            failure = error
            return -1
        }
    }

    /// Calls `body` for each regular file with its path, its size and a function
    /// reading its content block by block (nil at its end).
    public func forEachMember(_ body: (_ path: String, _ size: Int64, _ next: () throws -> ArraySlice<UInt8>?) throws -> Void) throws {
        try forEachMemberBlock { path, size, next in
            try withoutActuallyEscaping(next) { next in try body(path, size) { try next().map { Array($0)[...] } } }
        }
    }

    /// Calls `body` for each entry (files, directories, links), with a function
    /// reading a file's content block by block (nil at its end).
    public func forEachEntry(_ body: (_ entry: ArchiveEntry, _ next: () throws -> ArraySlice<UInt8>?) throws -> Void) throws {
        try forEachEntryBlock { entry, next in
            try withoutActuallyEscaping(next) { next in try body(entry) { try next().map { Array($0)[...] } } }
        }
    }

    /// ``forEachMember(_:)`` for this module's bulk paths (verify, restore, WAL): each
    /// block is libarchive's own buffer, valid until the next call, not a copy.
    func forEachMemberBlock(_ body: (_ path: String, _ size: Int64, _ next: () throws -> UnsafeRawBufferPointer?) throws -> Void) throws {
        try forEachEntryBlock { entry, next in
            guard case .file = entry.kind else { return }
            try withoutActuallyEscaping(next) { next in try body(entry.path, entry.size, next) }
        }
    }

    /// ``forEachEntry(_:)`` with blocks that are libarchive's own buffer, valid until the next call.
    func forEachEntryBlock(_ body: (_ entry: ArchiveEntry, _ next: () throws -> UnsafeRawBufferPointer?) throws -> Void) throws {
        var entry: OpaquePointer?
        while true {
            let status = archive_read_next_header(archive, &entry)
            if status == ARCHIVE_EOF { return }
            guard status >= ARCHIVE_WARN, let entry else {
                throw failure ?? ArchiveError("\(path): \(EncryptedArchiveWriter.message(archive))")
            }
            let name = archive_entry_pathname_utf8(entry).map { String(cString: $0) } ?? archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
            let kind: ArchiveEntry.Kind
            switch archive_entry_filetype(entry) {
            case 0o040000: kind = .directory
            case 0o120000: kind = .symlink(archive_entry_symlink(entry).map { String(cString: $0) } ?? "")
            case 0o100000: kind = .file
            default: throw ArchiveError("\(path): \(name) is of a type backups never hold")
            }
            let described = ArchiveEntry(path: name, kind: kind, mode: UInt32(archive_entry_perm(entry)), size: archive_entry_size(entry))
            // Blocks straight from libarchive's decompression buffer (no copy), valid until the next call.
            var position: Int64 = 0
            try body(described) {
                var data: UnsafeRawPointer?
                var count = 0
                var offset: la_int64_t = 0
                let status = archive_read_data_block(self.archive, &data, &count, &offset)
                if status == ARCHIVE_EOF { return nil }
                guard status >= ARCHIVE_WARN else {
                    throw self.failure ?? ArchiveError("\(self.path): reading \(name): \(EncryptedArchiveWriter.message(self.archive))")
                }
                guard offset == position else { throw ArchiveError("\(self.path): \(name) is a sparse file, which backups never hold") }
                position += Int64(count)
                return UnsafeRawBufferPointer(start: data, count: count)
            }
        }
    }
}
