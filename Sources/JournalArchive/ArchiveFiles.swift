import Archive
import Foundation
import Glibc

/// The archive files in the archive directories (cold storage mounts): checked,
/// copied durably and read back, removed.
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

    /// Copies `source` to `destination` under a temporary name, syncs it, renames it
    /// into place, syncs the directory, then reads it back: its SHA-256 must be `sha256`.
    /// - Throws: ``JournalArchiveError`` `.file` naming the file and the reason.
    static func copy(_ source: String, to destination: String, sha256: String) throws {
        let temporary = destination + ".partial"
        unlink(temporary)
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw JournalArchiveError(.file, "cannot open \(source): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        let output = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard output >= 0 else { throw JournalArchiveError(.file, "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        do {
            try FileBlocks.readBlocks(input, path: source) { block in
                try block.withUnsafeBytes { bytes in
                    var offset = 0
                    while offset < bytes.count {
                        let written = write(output, bytes.baseAddress! + offset, bytes.count - offset)
                        if written < 0 && errno == EINTR { continue }
                        guard written > 0 else { throw JournalArchiveError(.file, "writing \(temporary) failed: \(String(cString: strerror(errno)))") }
                        offset += written
                    }
                }
            }
            guard fsync(output) == 0 else { throw JournalArchiveError(.file, "syncing \(temporary) failed: \(String(cString: strerror(errno)))") }
            close(output)
        } catch {
            close(output)
            unlink(temporary)
            throw error
        }
        guard rename(temporary, destination) == 0 else {
            unlink(temporary)
            throw JournalArchiveError(.file, "renaming \(temporary) failed: \(String(cString: strerror(errno)))")
        }
        try syncDirectory(of: destination)
        guard try digest(destination) == sha256 else {
            throw JournalArchiveError(.file, "\(destination) does not read back identical to the archive written")
        }
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
