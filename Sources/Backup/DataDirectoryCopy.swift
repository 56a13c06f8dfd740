import Archive
import Foundation
import Glibc

/// The session that brackets a direct copy of the data directory: PostgreSQL's
/// non-exclusive low-level backup API, on one connection kept open for the whole
/// copy (closing it aborts the backup).
public struct BackupSession {
    /// Runs `pg_backup_start(label, fast => true)`.
    public var start: (_ label: String) throws -> Void
    /// Runs `pg_backup_stop(wait_for_archive => true)` and returns its label file and
    /// tablespace map, which go into the archive as `backup_label` and `tablespace_map`.
    public var stop: () throws -> (backupLabel: String, tablespaceMap: String)

    /// A session from its two calls.
    public init(start: @escaping (_ label: String) throws -> Void, stop: @escaping () throws -> (backupLabel: String, tablespaceMap: String)) {
        self.start = start
        self.stop = stop
    }
}

/// What a base backup leaves out of the data directory, as PostgreSQL's own
/// `pg_basebackup` does ("Making a Base Backup Using the Low Level API"): files that
/// describe the running server, and the contents of directories PostgreSQL empties
/// or rebuilds at startup. The directories themselves are kept.
enum DataDirectoryExclusions {
    /// Top-level directories copied empty.
    static let emptiedDirectories: Set<String> = [
        "pg_wal", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_stat_tmp", "pg_subtrans",
    ]
    /// Top-level files never copied.
    static let topLevelFiles: Set<String> = [
        "postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map", "backup_manifest", "postgresql.auto.conf.tmp", "current_logfiles.tmp",
    ]

    /// Whether `name`, found in the directory `relative` ("" at the top), is left out.
    static func excludes(_ name: String, in relative: String) -> Bool {
        if name.hasPrefix("pgsql_tmp") || name == "pg_internal.init" { return true }
        return relative.isEmpty && topLevelFiles.contains(name)
    }
}

extension BaseBackup {
    /// Copies the data directory `root` into `writer` under `pgdata/` between
    /// `session.start` and `session.stop`. Files may change, grow, shrink or vanish
    /// while they are read, as in any base backup: replaying the WAL from the backup's
    /// start repairs them. A file is copied up to the size it had when it was opened
    /// (zeros where it shrank since); a file gone before it was opened is skipped.
    /// - Throws: ``ArchiveError`` for a tablespace (copy those with pg_basebackup), an
    ///   unreadable directory or file, or a failed session call.
    func copyDataDirectory(_ root: String, label: String, session: BackupSession, into writer: EncryptedArchiveWriter) throws -> (
        start: String, endSegment: String, timeline: UInt32
    ) {
        var status = stat()
        guard stat(root + "/PG_VERSION", &status) == 0 else {
            throw ArchiveError("\(root) is not a readable PostgreSQL data directory (backup.data_directory): \(String(cString: strerror(errno)))")
        }
        try session.start(label)
        var block = [UInt8](repeating: 0, count: 1 << 20)
        try copyDirectory(root: root, relative: "", block: &block, into: writer)
        let stopped = try session.stop()
        try writer.addBytes(Array(stopped.backupLabel.utf8), as: "pgdata/backup_label", mode: 0o600)
        if !stopped.tablespaceMap.isEmpty {
            try writer.addBytes(Array(stopped.tablespaceMap.utf8), as: "pgdata/tablespace_map", mode: 0o600)
        }
        return try walRange(backupLabel: stopped.backupLabel)
    }

    private func copyDirectory(root: String, relative: String, block: inout [UInt8], into writer: EncryptedArchiveWriter) throws {
        let path = relative.isEmpty ? root : "\(root)/\(relative)"
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        } catch {
            if !relative.isEmpty && !FileManager.default.fileExists(atPath: path) { return }  // removed while copied
            throw ArchiveError("cannot list \(path): \(error.localizedDescription)")
        }
        for name in names where !DataDirectoryExclusions.excludes(name, in: relative) {
            let childRelative = relative.isEmpty ? name : "\(relative)/\(name)"
            let child = "\(root)/\(childRelative)"
            var status = stat()
            guard lstat(child, &status) == 0 else {
                if errno == ENOENT { continue }
                throw ArchiveError("cannot stat \(child): \(String(cString: strerror(errno)))")
            }
            let member = "pgdata/\(childRelative)"
            let modified = Int(status.st_mtim.tv_sec)
            let mode = UInt32(status.st_mode & 0o7777)
            switch status.st_mode & S_IFMT {
            case S_IFDIR:
                try writer.addDirectory(member, mode: mode, modified: modified)
                if relative.isEmpty && DataDirectoryExclusions.emptiedDirectories.contains(name) {
                    if name == "pg_wal" { try writer.addDirectory("\(member)/archive_status", mode: mode, modified: modified) }
                    continue
                }
                try copyDirectory(root: root, relative: childRelative, block: &block, into: writer)
            case S_IFLNK:
                // pg_wal moved elsewhere (initdb -X): an empty pg_wal, as pg_basebackup writes it.
                if relative.isEmpty && name == "pg_wal" {
                    try writer.addDirectory(member, mode: 0o700, modified: modified)
                    try writer.addDirectory("\(member)/archive_status", mode: 0o700, modified: modified)
                    continue
                }
                throw ArchiveError(
                    "\(child) is a symbolic link (a tablespace?): a direct copy holds only the data directory; unset backup.data_directory to back up through pg_basebackup")
            case S_IFREG:
                try copyFile(child, as: member, mode: mode, modified: modified, block: &block, into: writer)
            default:
                throw ArchiveError("\(child) is neither a file, a directory nor a link")
            }
        }
    }

    private func copyFile(_ path: String, as member: String, mode: UInt32, modified: Int, block: inout [UInt8], into writer: EncryptedArchiveWriter) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return }  // dropped or truncated away since listed: the WAL replay accounts for it
            throw ArchiveError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw ArchiveError("cannot stat \(path): \(String(cString: strerror(errno)))") }
        let size = Int64(status.st_size)
        posix_fadvise(descriptor, 0, 0, POSIX_FADV_SEQUENTIAL)
        _ = try writer.addStreamed(name: member, size: size, mode: mode, modified: modified) { sink in
            var remaining = size
            var shrunk = false
            while remaining > 0 {
                let wanted = Int(min(Int64(block.count), remaining))
                var count = 0
                if !shrunk {
                    // Memory: `wanted <= block.count`, so the read stays inside the buffer.
                    count = block.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, wanted) }
                    if count < 0 && errno == EINTR { continue }
                    guard count >= 0 else { throw ArchiveError("reading \(path) failed: \(String(cString: strerror(errno)))") }
                }
                if count == 0 {
                    // Shorter than when opened: zeros to the recorded size.
                    shrunk = true
                    count = wanted
                    // Memory: `count == wanted <= block.count`, and block holds 1 MiB (allocated by the caller).
                    block.withUnsafeMutableBytes { _ = memset($0.baseAddress!, 0, count) }
                }
                try sink(block[0..<count])
                remaining -= Int64(count)
            }
        }
    }

    /// The first WAL segment, the newest archived one at or after it, and the timeline,
    /// from a backup label ("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)",
    /// "START TIMELINE: 1"). PostgreSQL waited until every segment the backup needs was
    /// archived, so the newest archived segment of the timeline is at or after its end.
    func walRange(backupLabel text: String) throws -> (start: String, endSegment: String, timeline: UInt32) {
        guard let location = text.range(of: "START WAL LOCATION: [0-9A-F]+/[0-9A-F]+", options: .regularExpression),
            let timelineLine = text.range(of: "START TIMELINE: [0-9]+", options: .regularExpression),
            let timeline = UInt32(text[timelineLine].split(separator: " ").last ?? "")
        else { throw ArchiveError("the backup label cannot be read: \(text.prefix(200))") }
        let start = String(text[location].split(separator: " ").last ?? "")
        guard let startSegment = WALSegment.name(timeline: timeline, lsn: start),
            let newest = try WALArchive(store: store).names().filter({ $0.count == 24 && $0.hasPrefix(String(startSegment.prefix(8))) }).max(),
            newest >= startSegment
        else { throw ArchiveError("the WAL archive holds nothing from \(start) on: is archive_command set to osmose-backupd wal-push?") }
        return (start, newest, timeline)
    }
}
