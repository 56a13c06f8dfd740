public import Age
internal import CLibarchive
import Cryptography
public import Foundation
import Glibc

/// Writes a pax tar archive, zstd-compressed, encrypted in the age format to
/// X25519 recipients, into a new file. The zstd stream is a run of independent
/// frames, one starting before and after each member of 1 MiB or more and after
/// every 8 MiB of smaller ones; each member records where its frame starts
/// (``ArchiveMember/frame``), so that ``EncryptedArchiveReader/init(path:identities:startingAt:)``
/// can read from there without decrypting or decompressing what comes before. The file is written under a temporary
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
    /// The tar stream's compression, frame by frame.
    private let compressor: ZstdFrames
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
    /// The file as another thread reads it back while it is written, if it does.
    private let readAlong: GrowingFile?
    /// The copies written with the file, byte for byte, each under its own temporary name.
    private let copies: [(path: String, temporary: String, descriptor: Int32)]

    /// Starts `path` (which must not exist), encrypted to `recipients`.
    /// - Throws: ``ArchiveError`` when the file exists or cannot be created.
    /// `threads` > 1 compresses on that many threads (for base backups: the rest of
    /// the pipeline, hashing and encryption, keeps the calling thread busy).
    /// `readAlong` lets another thread read the file back while it is written (see
    /// ``GrowingFile``). `copies` are other paths (none may exist) that receive every
    /// byte as the file does, each under its own temporary name, synced and renamed
    /// into place by ``finish()`` with it: one stream, several files, no second pass.
    public convenience init(
        path: String, recipients: [any AgePublicRecipient], compressionLevel: Int = 3, threads: Int = 1, readAlong: GrowingFile? = nil, copies: [String] = []
    ) throws {
        try self.init(
            path: path, wrappingTo: recipients.map { $0 as any AgeWrapping }, compressionLevel: compressionLevel, threads: threads, readAlong: readAlong,
            copies: copies)
    }

    /// Starts `path` (which must not exist), its file key wrapped by `wrappers`: public
    /// recipients, or one passphrase (age's scrypt recipient, which stands alone), as
    /// a subject-access pack delivered to a patient is.
    /// - Throws: ``ArchiveError`` when the file exists or cannot be created.
    public init(
        path: String, wrappingTo wrappers: [any AgeWrapping], compressionLevel: Int = 3, threads: Int = 1, readAlong: GrowingFile? = nil, copies: [String] = []
    ) throws {
        // Until every stored property is set (deinit cleans up after that), a failure
        // closes and removes what was created and tells the reader, if any.
        var created: [(path: String, temporary: String, descriptor: Int32)] = []
        var reading: Int32 = -1
        func failing(_ message: String) -> ArchiveError {
            for file in created {
                close(file.descriptor)
                unlink(file.temporary)
            }
            if reading >= 0 { close(reading) }
            readAlong?.failed(message)
            return ArchiveError(message)
        }
        // Two spellings of one file (a directory named twice, with and without a slash)
        // would have the second creation remove the first's temporary file.
        var seen: [String: String] = [:]
        for destination in [path] + copies {
            var directory = stat()
            let parent = (destination as NSString).deletingLastPathComponent
            guard stat(parent.isEmpty ? "." : parent, &directory) == 0 else {
                throw failing("cannot create \(destination): its directory: \(String(cString: strerror(errno)))")
            }
            let key = "\(directory.st_dev):\(directory.st_ino)/\((destination as NSString).lastPathComponent)"
            if let first = seen[key] { throw failing("\(first) and \(destination) are the same file: each copy needs a directory of its own") }
            seen[key] = destination
        }
        for destination in [path] + copies {
            guard !FileManager.default.fileExists(atPath: destination) else { throw failing("\(destination) exists; archives are never overwritten") }
            let temporary = destination + ".partial"
            unlink(temporary)
            let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
            guard descriptor >= 0 else { throw failing("cannot create \(temporary): \(String(cString: strerror(errno)))") }
            created.append((destination, temporary, descriptor))
        }
        if readAlong != nil {
            reading = open(created[0].temporary, O_RDONLY | O_CLOEXEC)
            guard reading >= 0 else { throw failing("cannot open \(created[0].temporary) to read it back: \(String(cString: strerror(errno)))") }
        }
        let encryptor: AgeEncryptor
        let compressor: ZstdFrames
        do {
            encryptor = try AgeEncryptor(recipients: wrappers)
        } catch {
            throw failing("cannot encrypt \(path): \(error)")
        }
        do {
            compressor = try ZstdFrames(level: compressionLevel, threads: threads)
        } catch {
            throw failing("cannot compress \(path): \(error)")
        }
        guard let archive = archive_write_new() else { throw failing("libarchive could not allocate a writer for \(path)") }
        self.path = path
        temporaryPath = created[0].temporary
        descriptor = created[0].descriptor
        self.copies = created.dropFirst().map { ($0.path, $0.temporary, $0.descriptor) }
        self.encryptor = encryptor
        self.compressor = compressor
        self.readAlong = readAlong
        backgroundHasher = threads > 1 ? BackgroundHasher() : nil
        if let readAlong { readAlong.opened(readDescriptor: reading) }
        self.archive = archive
        // libarchive writes the tar stream unblocked (each header and block reaches the
        // callback at once, so a member's start is a frame boundary when the writer ends
        // a frame before it); compression is ZstdFrames'.
        guard archive_write_set_format_pax_restricted(archive) == ARCHIVE_OK,
            archive_write_set_bytes_per_block(archive, 0) == ARCHIVE_OK,
            archive_write_set_bytes_in_last_block(archive, 1) == ARCHIVE_OK
        else { throw ArchiveError("libarchive: \(Self.message(archive))") }
        // The callback's context is this writer, unretained: the writer owns `archive` and
        // frees it in deinit (where libarchive may still flush through the callback, while
        // every stored property is alive), and libarchive calls back only from calls on
        // `archive`. `buffer` is libarchive's, read during the callback only.
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
        readAlong?.failed(failure.map { "the archive was not completed: \($0)" } ?? "the archive was not completed")
        if !finished {
            close(descriptor)
            unlink(temporaryPath)
            for copy in copies {
                close(copy.descriptor)
                unlink(copy.temporary)
            }
        }
    }

    /// libarchive's last error on `archive`.
    static func message(_ archive: OpaquePointer) -> String {
        archive_error_string(archive).map { String(cString: $0) } ?? "unknown error"
    }

    /// libarchive's output: compressed, encrypted, then written.
    private func consume(_ bytes: UnsafeRawBufferPointer) -> Bool {
        do {
            try compressor.compress(bytes, sink: emit)
            return true
        } catch {
            failure = error
            return false
        }
    }

    /// Ends the current zstd frame when the next member, of `size` bytes, should start
    /// one (it is large, follows a large one, or the frame has taken enough small
    /// members); returns where the frame holding the member's header starts.
    private func frameForMember(size: Int64) throws -> Int64 {
        let afterLarge = (members.last?.size ?? 0) >= ZstdFrames.largeMember
        guard compressor.inputInFrame > 0, size >= ZstdFrames.largeMember || afterLarge || compressor.inputInFrame >= ZstdFrames.frameInput else {
            return compressor.frameStart
        }
        // The previous member's padding is written by finish_entry, not before the next header.
        try check(archive_write_finish_entry(archive), "ending a member")
        try compressor.endFrame(sink: emit)
        return compressor.frameStart
    }

    /// Compressed bytes: encrypted, then written.
    private func emit(_ compressed: UnsafeRawBufferPointer) throws {
        try writeAll(try encryptor.update(compressed))
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        try Self.write(bytes, to: descriptor, named: temporaryPath)
        for copy in copies { try Self.write(bytes, to: copy.descriptor, named: copy.temporary) }
        fileHasher?.update(bytes)
        bytesWritten += Int64(bytes.count)
        if let readAlong {
            readAlong.grew(to: bytesWritten)
            if readAlong.abandoned { throw ArchiveError("\(path): the read-back stopped, so the writing did") }
        }
    }

    private static func write(_ bytes: [UInt8], to descriptor: Int32, named name: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { throw ArchiveError("writing \(name) failed: \(String(cString: strerror(errno)))") }
            offset += written
        }
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
            let total = try FileBlocks.readBlocks(input, path: source, sink)
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
    public func addSymlink(_ name: String, target: String, modified: Int) throws {
        let entry = archive_entry_new()
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname_utf8(entry, name)
        archive_entry_set_filetype(entry, 0o120000)
        archive_entry_set_perm(entry, 0o777)
        archive_entry_set_symlink_utf8(entry, target)
        archive_entry_set_mtime(entry, modified, 0)
        try check(archive_write_header(archive, entry), "adding link \(name)")
    }

    /// Adds a regular file whose content `content` hands over block by block: it
    /// receives a sink and calls it with each block, in order.
    /// - Parameters:
    ///   - name: the member's path.
    ///   - size: its size; libarchive refuses a member whose blocks add up to another.
    ///   - mode: its permission bits.
    ///   - modified: its modification time (seconds since 1970).
    /// - Returns: the member, with the SHA-256 of what was written.
    /// - Throws: ``ArchiveError`` when libarchive or the file refuses the data, or what `content` throws.
    @discardableResult
    public func addStreamed(name: String, size: Int64, mode: UInt32, modified: Int, content: ((ArraySlice<UInt8>) throws -> Void) throws -> Void) throws -> ArchiveMember {
        let entry = archive_entry_new()
        defer { archive_entry_free(entry) }
        archive_entry_set_pathname_utf8(entry, name)
        archive_entry_set_filetype(entry, 0o100000)
        archive_entry_set_perm(entry, mode)
        archive_entry_set_size(entry, size)
        archive_entry_set_mtime(entry, modified, 0)
        let frame = try frameForMember(size: size)
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
        let member = ArchiveMember(path: name, size: written, sha256: digest, frame: frame)
        members.append(member)
        return member
    }

    /// Ends the archive, the compression and the encryption, syncs the file and
    /// renames it into place (then syncs its directory).
    public func finish() throws {
        try check(archive_write_close(archive), "closing the archive")
        try compressor.endFrame(sink: emit)
        try writeAll(try encryptor.finish())
        readAlong?.finished()
        fileSHA256 = (fileHasher.take()?.finalize()).map(hexDigest)
        guard fsync(descriptor) == 0 else { throw ArchiveError("syncing \(temporaryPath) failed: \(String(cString: strerror(errno)))") }
        for copy in copies {
            guard fsync(copy.descriptor) == 0 else { throw ArchiveError("syncing \(copy.temporary) failed: \(String(cString: strerror(errno)))") }
        }
        close(descriptor)
        for copy in copies { close(copy.descriptor) }
        finished = true
        let renames = [(temporaryPath, path)] + copies.map { ($0.temporary, $0.path) }
        for (index, (temporary, final)) in renames.enumerated() {
            guard rename(temporary, final) == 0 else {
                let reason = String(cString: strerror(errno))
                for (left, _) in renames[index...] { unlink(left) }
                throw ArchiveError("renaming \(temporary) failed: \(reason)")
            }
        }
        for (_, final) in renames { try syncDirectory(of: final) }
    }
}

extension EncryptedArchiveWriter {
    /// Copies every member of the tar stream on `descriptor` (pg_basebackup's
    /// output, say) into this archive under `prefix`, keeping type, mode and time.
    /// - Parameters:
    ///   - descriptor: a readable file descriptor (a pipe from pg_basebackup); read to its end, not closed.
    ///   - prefix: put before every member's path (e.g. `pgdata/`).
    ///   - capturing: the path (without `prefix`) of a member whose content is also returned.
    /// - Returns: the content of the top-level member `capturing` (e.g. backup_label).
    /// - Throws: ``ArchiveError`` for an unreadable stream or a member of an unexpected type.
    public func copyTarStream(from descriptor: Int32, prefix: String, capturing: String) throws -> [UInt8] {
        var captured: [UInt8] = []
        guard let input = archive_read_new() else { throw ArchiveError("libarchive could not allocate a reader") }
        defer { archive_read_free(input) }
        archive_read_support_format_tar(input)
        guard archive_read_open_fd(input, descriptor, 1 << 20) == ARCHIVE_OK else {
            throw ArchiveError("cannot read the tar stream: \(EncryptedArchiveWriter.message(input))")
        }
        var entry: OpaquePointer?
        var block = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let status = archive_read_next_header(input, &entry)
            if status == ARCHIVE_EOF { return captured }
            guard status >= ARCHIVE_WARN, let entry else { throw ArchiveError("the tar stream: \(EncryptedArchiveWriter.message(input))") }
            let name = prefix + (archive_entry_pathname(entry).map { String(cString: $0) } ?? "")
            let type = archive_entry_filetype(entry)
            let mode = UInt32(archive_entry_perm(entry))
            let modified = Int(archive_entry_mtime(entry))
            switch type {
            case 0o040000:
                try addDirectory(name, mode: mode, modified: modified)
            case 0o120000:
                let target = archive_entry_symlink(entry).map { String(cString: $0) } ?? ""
                try addSymlink(name, target: target, modified: modified)
            case 0o100000:
                _ = try addStreamed(name: name, size: archive_entry_size(entry), mode: mode, modified: modified) { sink in
                    while true {
                        let count = block.withUnsafeMutableBytes { archive_read_data(input, $0.baseAddress, $0.count) }
                        guard count >= 0 else { throw ArchiveError("reading \(name) from the tar stream: \(EncryptedArchiveWriter.message(input))") }
                        if count == 0 { break }
                        if name == prefix + capturing { captured += block[0..<count] }
                        try sink(block[0..<count])
                    }
                }
            default:
                throw ArchiveError("the tar stream holds \(name) of an unexpected type")
            }
        }
    }
}

/// Syncs the directory holding `path`, so that a rename into it survives a crash.
/// - Throws: ``ArchiveError`` when the directory cannot be opened or synced.
public func syncDirectory(of path: String) throws {
    let directory = (path as NSString).deletingLastPathComponent
    let descriptor = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard descriptor >= 0 else { throw ArchiveError("cannot open \(directory): \(String(cString: strerror(errno)))") }
    defer { close(descriptor) }
    guard fsync(descriptor) == 0 else { throw ArchiveError("syncing \(directory) failed: \(String(cString: strerror(errno)))") }
}

