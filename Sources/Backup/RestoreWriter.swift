import Archive
internal import CGlibcExtras
import Cryptography
import Foundation
import Glibc

/// Writes a restore's files on a thread of its own, hashing each block there just
/// before writing it; the caller's thread only decrypts, decompresses and fills
/// buffers. Each file is synced and closed by ``BackgroundSyncer`` threads once
/// written.
///
/// The files go through the page cache: PostgreSQL reads them as soon as the
/// restore returns (recovery, then the first queries), and a cluster restored with
/// `O_DIRECT` answered its first full-table query 3.3 s after starting against 1.0 s
/// for pgBackRest's, which writes through the cache (docs/benchmarks.md, 2026-12-05);
/// the copy into the cache costs CPU that the runs' parallel reading more than repays.
///
/// `@unchecked Sendable`: `buffer`, `filled` and `current` are touched only by the
/// caller's thread (one restore); the writing thread receives work through `queue`
/// and hands results back through `results`, each safe by its own rule.
final class RestoreWriter: @unchecked Sendable {
    static let blockSize = 1 << 20

    /// One unit of the writing thread's work.
    ///
    /// A block's buffer has one owner at a time: the caller's thread fills it (as
    /// `buffer`), hands it over in `.block` and forgets it (`buffer = nil`), and the
    /// writing thread frees it once written. `deinit` frees only a buffer never handed
    /// over; buffers already queued are freed by the thread, which `queue.finish()`
    /// lets run to the end of the queue.
    private enum Work {
        /// Hash and write `count` bytes of `buffer` at the file's current end; the thread frees `buffer`.
        case block(File, UnsafeMutableRawPointer, count: Int)
        /// The file is complete: hand it over to be synced, post its digest.
        case end(File)
    }

    /// A file being written. Its hasher and offset are touched only by the writing thread.
    /// `@unchecked Sendable`: created by the caller, then mutated by the writing thread alone.
    final class File: @unchecked Sendable {
        let descriptor: Int32
        let path: String
        var hasher: SHA256Hasher? = SHA256Hasher()
        var offset: Int64 = 0

        init(descriptor: Int32, path: String) {
            self.descriptor = descriptor
            self.path = path
        }
    }

    /// What the thread hands back: digests in order, and the first failure.
    /// `@unchecked Sendable`: both fields are read and written under `ready`.
    private final class Results: @unchecked Sendable {
        let ready = NSCondition()
        var digests: [String] = []
        var failure: String?
    }

    private let results = Results()
    private let queue: WorkQueue<Work>
    private let syncer: BackgroundSyncer
    /// The buffer being filled for the current file (caller's thread).
    private var buffer: UnsafeMutableRawPointer?
    private var filled = 0
    private var current: File?

    /// Files are synced and closed by `syncer`.
    init(syncer: BackgroundSyncer, maximumPending: Int = 32 << 20) {
        self.syncer = syncer
        queue = WorkQueue(threads: 1, maximumPending: maximumPending) { [results, syncer] work in
            switch work {
            case .block(let file, let buffer, let count):
                defer { free(buffer) }
                let failed = results.ready.withLock { results.failure != nil }
                guard !failed else { return }
                file.hasher?.update(UnsafeRawBufferPointer(start: buffer, count: count))
                if let problem = Self.writeFully(file, buffer, length: count) {
                    results.ready.withLock { if results.failure == nil { results.failure = problem } }
                }
                file.offset += Int64(count)
            case .end(let file):
                let digest = (file.hasher.take()?.finalize()).map(hexDigest) ?? ""
                syncer.close(BackgroundSyncer.Handle(descriptor: file.descriptor, path: file.path))
                results.ready.withLock {
                    results.digests.append(digest)
                    results.ready.broadcast()
                }
            }
        }
    }

    deinit {
        if let buffer { free(buffer) }
        queue.finish()
    }

    private static func writeFully(_ file: File, _ buffer: UnsafeMutableRawPointer, length: Int) -> String? {
        var done = 0
        while done < length {
            let count = pwrite(file.descriptor, buffer + done, length - done, off_t(file.offset) + off_t(done))
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return "writing \(file.path) failed: \(String(cString: strerror(errno)))" }
            done += count
        }
        return nil
    }

    /// Creates `path` (which must not exist) and makes it the file being written.
    func begin(_ path: String, mode: mode_t) throws {
        precondition(current == nil, "a file is still being written")
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw ArchiveError("cannot create \(path): \(String(cString: strerror(errno)))") }
        current = File(descriptor: descriptor, path: path)
    }

    /// Appends `bytes` to the current file.
    func append(_ block: RawSpan) throws {
        try block.withUnsafeBytes { try append($0) }
    }

    private func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard let file = current else { preconditionFailure("no file is being written") }
        var rest = bytes
        while !rest.isEmpty {
            if buffer == nil {
                guard let allocated = malloc(Self.blockSize) else { throw ArchiveError("out of memory for a write buffer") }
                buffer = allocated
                filled = 0
            }
            // `filled < blockSize` here (a full buffer is handed over at once below), so the
            // copy stays inside the 1 MiB buffer; `rest` is not empty, so it has a base address.
            let taken = min(rest.count, Self.blockSize - filled)
            (buffer! + filled).copyMemory(from: rest.baseAddress!, byteCount: taken)
            filled += taken
            rest = UnsafeRawBufferPointer(rebasing: rest[taken...])
            if filled == Self.blockSize { hand(file) }
        }
    }

    private func hand(_ file: File) {
        guard let full = buffer else { return }
        queue.add(.block(file, full, count: filled), weight: filled)
        buffer = nil
        filled = 0
    }

    /// Ends the current file; returns its SHA-256 (hex) once every block is written.
    /// - Throws: ``ArchiveError`` naming the first write that failed.
    func end() throws -> String {
        guard let file = current else { preconditionFailure("no file is being written") }
        if filled > 0 { hand(file) }
        current = nil
        queue.add(.end(file))
        return try results.ready.withLock {
            while results.digests.isEmpty { results.ready.wait() }
            if let failure = results.failure { throw ArchiveError(failure) }
            return results.digests.removeFirst()
        }
    }

    /// Abandons the current file (after a failure elsewhere): it is closed, not synced.
    func abandon() {
        guard let file = current else { return }
        if filled > 0 { hand(file) }
        current = nil
        queue.add(.end(file))
        results.ready.withLock {
            while results.digests.isEmpty { results.ready.wait() }
            results.digests.removeFirst()
        }
    }

    /// Waits until the writing thread is idle.
    func finish() throws {
        queue.finish()
        if let failure = results.ready.withLock({ results.failure }) { throw ArchiveError(failure) }
    }
}

/// Files synced and closed on background threads, so that a restore waits for no
/// fsync until its end: `finish()` returns once every file handed over is durable.
/// `@unchecked Sendable`: its stored properties are constants, each safe by its own rule.
final class BackgroundSyncer: @unchecked Sendable {
    struct Handle {
        let descriptor: Int32
        let path: String
    }

    /// The first failure, shared with the threads (which hold no reference to the syncer).
    /// `@unchecked Sendable`: `message` is read and written under `lock`.
    private final class Failure: @unchecked Sendable {
        let lock = NSLock()
        var message: String?
    }

    private let failure = Failure()
    private let queue: WorkQueue<Handle>

    init(threads count: Int) {
        queue = WorkQueue(threads: count) { [failure] handle in
            if fsync(handle.descriptor) != 0 {
                let message = "syncing \(handle.path) failed: \(String(cString: strerror(errno)))"
                failure.lock.lock()
                if failure.message == nil { failure.message = message }
                failure.lock.unlock()
            }
            Glibc.close(handle.descriptor)
        }
    }

    deinit { queue.finish() }

    /// Hands `handle`'s file over to be synced and closed.
    func close(_ handle: Handle) {
        _ = sync_file_range(handle.descriptor, 0, 0, UInt32(SYNC_FILE_RANGE_WRITE))
        queue.add(handle)
    }

    /// Waits until every file handed over is synced and closed.
    /// - Throws: ``ArchiveError`` naming the first file that could not be synced.
    func finish() throws {
        queue.finish()
        failure.lock.lock()
        defer { failure.lock.unlock() }
        if let message = failure.message { throw ArchiveError(message) }
    }
}
