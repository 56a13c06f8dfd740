import Archive
import Foundation
import Glibc
import Synchronization

/// The archive files in the archive directories (cold storage mounts): checked,
/// read back (their SHA-256), removed.
enum ArchiveFiles {
    /// Checks that `directory` is an absolute path to an existing, writable directory.
    /// It is never created: an archive directory is a mount, and creating it would
    /// write the archive to the local disk when the mount is missing.
    /// - Throws: ``JournalArchiveError`` `.invalidArgument` naming the directory.
    static func checkDirectory(_ directory: String) throws {
        guard directory.hasPrefix("/") else { throw JournalArchiveError(.invalidArgument, "the archive directory \(directory) is not an absolute path") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw JournalArchiveError(.invalidArgument, "the archive directory \(directory) does not exist (is the cold storage mounted?)")
        }
        guard access(directory, W_OK | X_OK) == 0 else {
            throw JournalArchiveError(.invalidArgument, "the archive directory \(directory) is not writable by this user")
        }
    }

    /// The SHA-256 (hex) of the file at `path`, nil when it does not exist.
    /// - Throws: ``JournalArchiveError`` `.file` when it exists but cannot be read.
    static func digest(_ path: String) throws -> String? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        do {
            return try FileBlocks.sha256(ofFile: path).sha256
        } catch {
            throw JournalArchiveError(.file, "cannot read \(path): \(error)")
        }
    }

    /// The SHA-256 (hex) of each file in `paths` (nil for a missing one), read in
    /// parallel on up to one thread a core: copies on different storage are read at
    /// the same time, and their hashing shares the cores.
    /// - Throws: ``JournalArchiveError`` `.file` for the first file that exists but cannot be read.
    static func digests(_ paths: [String]) throws -> [String?] {
        let results = Mutex<[Result<String?, any Error>]>(Array(repeating: .success(nil), count: paths.count))
        DispatchQueue.concurrentPerform(iterations: paths.count) { index in
            let result = Result { try digest(paths[index]) }
            results.withLock { $0[index] = result }
        }
        return try results.withLock { $0 }.map { try $0.get() }
    }

    /// Removes `path` (and a leftover `path.partial`); a missing file is not an error.
    /// - Throws: ``JournalArchiveError`` `.file` when it exists and cannot be removed.
    static func remove(_ path: String) throws {
        unlink(path + ".partial")
        guard FileManager.default.fileExists(atPath: path) else { return }
        guard unlink(path) == 0 else { throw JournalArchiveError(.file, "cannot remove \(path): \(String(cString: strerror(errno)))") }
        try syncDirectory(of: path)
    }
}

/// Runs `body` on a thread of its own, so that reading and hashing a large archive
/// never holds one of the cooperative pool's few threads.
func onOwnThread<Result: Sendable>(_ body: @escaping @Sendable () throws -> Result) async throws -> Result {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Swift.Result { try body() }) }
        thread.name = "journal-archive"
        thread.start()
    }
}
