public import Age
internal import CLibarchive
import Cryptography
import Foundation
import Glibc

/// Reads an archive written by ``EncryptedArchiveWriter`` (or any age-encrypted,
/// compressed tar): decrypts, decompresses, and hands each member's content over
/// in blocks, checking nothing itself; the caller compares with the manifest.
public final class EncryptedArchiveReader {
    private let archive: OpaquePointer
    private let path: String
    private let descriptor: Int32
    private var decryptor: AgeDecryptor
    /// The block handed to libarchive by the last read callback. libarchive reads it
    /// until its next call of the callback, which alone replaces or frees it; `deinit`
    /// frees it after `archive_read_free`, which makes no more calls.
    private var handedOut = UnsafeMutableRawBufferPointer(start: nil, count: 0)
    private var atEnd = false
    private var failure: (any Error)?
    /// The file being written, when it is read as it grows (its descriptor is its own).
    private let growingFile: GrowingFile?
    /// Bytes of the file read so far.
    public private(set) var bytesRead: Int64 = 0
    /// SHA-256 of the file's bytes as read, when reading along a ``GrowingFile``.
    private var fileHasher: SHA256Hasher?
    /// SHA-256 (hex) of the whole file as read, once ``readToEnd()`` returned (reading along a ``GrowingFile`` only).
    public private(set) var fileSHA256: String?

    /// Plaintext bytes still to drop before libarchive sees any: the start of the
    /// first chunk read, before the frame the reader starts at.
    private var skip = 0

    /// Opens `path` with `identities`.
    public convenience init(path: String, identities: [any AgeUnwrapping]) throws {
        try self.init(path: path, identities: identities, startingAt: 0)
    }

    /// Opens `path` with `identities` and reads from the zstd frame starting at `frame`
    /// in the decrypted stream (an ``ArchiveMember/frame`` from the archive's
    /// manifest): the first entry is the first member of that frame, and nothing
    /// before the age chunk holding it is read. Frame 0 is the whole archive.
    /// - Throws: ``ArchiveError`` when the file cannot be opened, its header read or
    ///   unwrapped; an offset that is not a frame's start fails at the first entry.
    public convenience init(path: String, identities: [any AgeUnwrapping], startingAt frame: Int64) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw ArchiveError("cannot open \(path): \(String(cString: strerror(errno)))") }
        var decryptor = AgeDecryptor(identities: identities)
        var skip = 0
        guard frame >= 0 else {
            close(descriptor)
            throw ArchiveError("\(path): frame \(frame) is negative")
        }
        if frame > 0 {
            do {
                // An age header with a few recipients is well under 64 KiB; position() says so if not.
                var head = [UInt8](repeating: 0, count: 64 << 10)
                let count = head.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
                guard count >= 0 else { throw ArchiveError("reading \(path) failed: \(String(cString: strerror(errno)))") }
                let position = try decryptor.position(atPlaintext: frame, head: Array(head[0..<count]), wholeFile: count < head.count)
                guard lseek(descriptor, off_t(position.fileOffset), SEEK_SET) == off_t(position.fileOffset) else {
                    throw ArchiveError("\(path): cannot seek to \(position.fileOffset): \(String(cString: strerror(errno)))")
                }
                skip = position.skip
            } catch let error as ArchiveError {
                close(descriptor)
                throw error
            } catch {
                close(descriptor)
                throw ArchiveError("\(path): \(error)")
            }
        }
        try self.init(path: path, descriptor: descriptor, growingFile: nil, decryptor: decryptor, skip: skip)
    }

    /// Reads the file `growing` describes while it is written, waiting for its writer
    /// at the end of what is written so far; hashes every byte read (``fileSHA256``).
    /// Waits until the writer has created the file.
    /// - Throws: ``ArchiveError`` when the writer failed first, or as ``init(path:identities:)``.
    public convenience init(growing: GrowingFile, identities: [any AgeUnwrapping]) throws {
        try self.init(
            path: growing.path, descriptor: try growing.readDescriptor(), growingFile: growing, decryptor: AgeDecryptor(identities: identities), skip: 0)
    }

    private init(path: String, descriptor: Int32, growingFile: GrowingFile?, decryptor: AgeDecryptor, skip: Int) throws {
        self.path = path
        self.descriptor = descriptor
        self.growingFile = growingFile
        if growingFile != nil { fileHasher = SHA256Hasher() }
        self.decryptor = decryptor
        self.skip = skip
        guard let archive = archive_read_new() else {
            if growingFile == nil { close(descriptor) }
            throw ArchiveError("libarchive could not allocate a reader")
        }
        self.archive = archive
        archive_read_support_filter_all(archive)
        archive_read_support_format_tar(archive)
        // The callback's context is this reader, unretained: the reader owns `archive` and
        // frees it first thing in deinit, and libarchive calls back only from calls on
        // `archive`, so the reader is alive at every callback.
        let context = Unmanaged.passUnretained(self).toOpaque()
        let status = archive_read_open2(archive, context, nil, { _, context, buffer in
            let reader = Unmanaged<EncryptedArchiveReader>.fromOpaque(context!).takeUnretainedValue()
            return reader.produce(buffer!)
        }, nil, nil)
        guard status == ARCHIVE_OK else { throw failure ?? ArchiveError("\(path): not a readable archive: \(EncryptedArchiveWriter.message(archive))") }
    }

    deinit {
        archive_read_free(archive)
        handedOut.deallocate()
        if growingFile == nil { close(descriptor) }
    }

    /// The buffer each read of the file goes into (one for the reader's life).
    private var block = [UInt8](repeating: 0, count: 1 << 20)

    /// Decrypts the next piece of the file for libarchive: points `buffer` at a block
    /// this reader owns (``handedOut``), which stays valid until the next call.
    private func produce(_ buffer: UnsafeMutablePointer<UnsafeRawPointer?>) -> la_ssize_t {
        do {
            let plaintext = try nextPlaintext()
            // libarchive has finished with the previous block: it calls again only for more data.
            if handedOut.count < plaintext.count {
                handedOut.deallocate()
                handedOut = UnsafeMutableRawBufferPointer.allocate(byteCount: plaintext.count, alignment: 16)
            }
            plaintext.withUnsafeBytes { bytes in
                if let source = bytes.baseAddress { handedOut.baseAddress!.copyMemory(from: source, byteCount: bytes.count) }
            }
            buffer.pointee = UnsafeRawPointer(handedOut.baseAddress)
            return la_ssize_t(plaintext.count)
        } catch {
            failure = error
            return -1
        }
    }

    /// Reads and decrypts the next piece of the file; empty at its end. Reading along
    /// a growing file, waits at the end of what is written until more is or the writer ends.
    private func nextPlaintext() throws -> [UInt8] {
        var plaintext: [UInt8] = []
        while plaintext.isEmpty && !atEnd {
            let count = block.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw ArchiveError("reading \(path) failed: \(String(cString: strerror(errno)))") }
            if count == 0 {
                if let growingFile {
                    switch growingFile.wait(beyond: bytesRead) {
                    case .more: continue
                    case .failed(let reason): throw ArchiveError("\(path) was not completed: \(reason)")
                    case .end: break
                    }
                }
                atEnd = true
                plaintext = try decryptor.finish()
                fileSHA256 = (fileHasher.take()?.finalize()).map(hexDigest)
            } else {
                bytesRead += Int64(count)
                fileHasher?.update(block[0..<count])
                plaintext = try decryptor.update(block[0..<count])
            }
            if skip > 0 && !plaintext.isEmpty {
                let dropped = min(skip, plaintext.count)
                plaintext.removeFirst(dropped)
                skip -= dropped
            }
        }
        return plaintext
    }

    /// Reads, decrypts and authenticates whatever of the file libarchive left unread
    /// after the archive's end (the compressed stream's last bytes, the age stream's
    /// final chunk), so that ``fileSHA256`` covers the whole file.
    /// - Throws: ``ArchiveError`` when the file cannot be read or is not a whole age stream.
    public func readToEnd() throws {
        while !atEnd { _ = try nextPlaintext() }
    }

    /// Calls `body` for each regular file with its path, its size and a reader of its content.
    /// - Throws: ``ArchiveError`` when the file is not a readable archive for these
    ///   identities, is damaged or truncated, or holds an entry of another type; or what `body` throws.
    public func forEachMember(_ body: (_ path: String, _ size: Int64, _ content: ArchiveBlockReader) throws -> Void) throws {
        try forEachEntry { entry, content in
            guard case .file = entry.kind else { return }
            try withoutActuallyEscaping(content) { content in try body(entry.path, entry.size, content) }
        }
    }

    /// Calls `body` for each entry (files, directories, links) with a reader of a
    /// file's content.
    /// - Throws: ``ArchiveError`` when the file is not a readable archive for these
    ///   identities, is damaged or truncated, holds a sparse file or an entry of
    ///   another type; or what `body` throws.
    public func forEachEntry(_ body: (_ entry: ArchiveEntry, _ content: ArchiveBlockReader) throws -> Void) throws {
        try readEntries { entry, content in
            try withoutActuallyEscaping(content) { content in try body(entry, content) }
            return true
        }
    }

    /// As ``forEachEntry(_:)``, until `body` returns false: what follows is not read
    /// (a reader started at a frame stops once it has the members it came for).
    public func readEntries(_ body: (_ entry: ArchiveEntry, _ content: ArchiveBlockReader) throws -> Bool) throws {
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
            default: throw ArchiveError("\(path): \(name) is of a type these archives never hold")
            }
            let described = ArchiveEntry(path: name, kind: kind, mode: UInt32(archive_entry_perm(entry)), size: archive_entry_size(entry))
            // Blocks straight from libarchive's decompression buffer (no copy), valid until the next call.
            var position: Int64 = 0
            let more = try body(described) { consume in
                while true {
                    var data: UnsafeRawPointer?
                    var count = 0
                    var offset: la_int64_t = 0
                    let status = archive_read_data_block(self.archive, &data, &count, &offset)
                    if status == ARCHIVE_EOF { return }
                    guard status >= ARCHIVE_WARN else {
                        throw self.failure ?? ArchiveError("\(self.path): reading \(name): \(EncryptedArchiveWriter.message(self.archive))")
                    }
                    guard offset == position else { throw ArchiveError("\(self.path): \(name) is a sparse file, which archives here never hold") }
                    position += Int64(count)
                    // libarchive keeps the block valid until its next call, which comes after `consume` returns.
                    try consume(UnsafeRawBufferPointer(start: data, count: count).bytes)
                }
            }
            if !more { return }
        }
    }
}
