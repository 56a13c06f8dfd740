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

/// What a direct copy of the data directory compares with: the parent backup's
/// list of the cluster (from its signed local tree) and when the parent started.
struct ClusterParent {
    /// The parent's entries under `pgdata/`, by path.
    var entries: [String: SuiteTreeEntry]
    /// When the parent started (before its `pg_backup_start`).
    var started: Date
}

/// One direct copy of the data directory under way: the rule that leaves files out
/// (incrementals), the list being built, and what was done.
struct ClusterCopy {
    /// The backup being written.
    let id: String
    /// The parent's list; nil for a full copy.
    let parent: ClusterParent?
    /// The incremental's rule (nil for a full copy).
    let rule: ClusterChangeRule?
    /// Every directory and file copied or referred to, under `pgdata/`.
    var tree: [SuiteTreeEntry] = []
    /// Files read and written, left out unread, and hashed to be compared.
    var copied = 0
    var unchanged = 0
    var hashed = 0
    /// The read buffer (1 MiB, on the heap).
    var block = [UInt8](repeating: 0, count: 1 << 20)

    init(id: String, parent: ClusterParent?) {
        self.id = id
        self.parent = parent
        rule = parent.map {
            ClusterChangeRule(parentStartedNanoseconds: Int64(($0.started.timeIntervalSince1970 * 1e9).rounded(.down)), nowNanoseconds: Self.nanoseconds(Date()))
        }
    }

    static func nanoseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1e9).rounded(.down)) }
}

extension BaseBackup {
    /// Copies the data directory `root` into `writer` under `pgdata/` between
    /// `session.start` and `session.stop`. Files may change, grow, shrink or vanish
    /// while they are read, as in any base backup: replaying the WAL from the backup's
    /// start repairs them. A file is copied up to the size it had when it was opened
    /// (zeros where it shrank since); a file gone before it was opened is skipped.
    /// With a `parent` (an incremental of the cluster), a file ``ClusterChangeRule``
    /// proves unchanged, or whose content hashes to the parent's, is not written: the
    /// returned list refers to the backup holding it.
    /// - Returns: the WAL range, and the list of every directory and file of the cluster.
    /// - Throws: ``ArchiveError`` for a tablespace (copy those with pg_basebackup), an
    ///   unreadable directory or file, or a failed session call.
    func copyDataDirectory(_ root: String, id: String, label: String, parent: ClusterParent?, session: BackupSession, into writer: EncryptedArchiveWriter) throws -> (
        start: String, endSegment: String, timeline: UInt32, tree: [SuiteTreeEntry]
    ) {
        var status = stat()
        guard stat(root + "/PG_VERSION", &status) == 0 else {
            throw ArchiveError("\(root) is not a readable PostgreSQL data directory (backup.data_directory): \(String(cString: strerror(errno)))")
        }
        try session.start(label)
        // After pg_backup_start: every write from here on is in the WAL the restore replays.
        var copy = ClusterCopy(id: id, parent: parent)
        try copyDirectory(root: root, relative: "", copy: &copy, into: writer)
        let stopped = try session.stop()
        var added = [try writer.addBytes(Array(stopped.backupLabel.utf8), as: "pgdata/backup_label", mode: 0o600)]
        if !stopped.tablespaceMap.isEmpty {
            added.append(try writer.addBytes(Array(stopped.tablespaceMap.utf8), as: "pgdata/tablespace_map", mode: 0o600))
        }
        for member in added {
            copy.tree.append(
                SuiteTreeEntry(
                    path: member.path, kind: "file", mode: 0o600, modifiedNanoseconds: ClusterCopy.nanoseconds(Date()), size: member.size, sha256: member.sha256,
                    backup: id))
        }
        let range = try walRange(backupLabel: stopped.backupLabel)
        return (range.start, range.endSegment, range.timeline, copy.tree)
    }

    private func copyDirectory(root: String, relative: String, copy: inout ClusterCopy, into writer: EncryptedArchiveWriter) throws {
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
            func directory(_ path: String, mode: UInt32) throws {
                try writer.addDirectory(path, mode: mode, modified: modified)
                copy.tree.append(SuiteTreeEntry(path: path, kind: "directory", mode: mode, modifiedNanoseconds: Self.nanoseconds(status.st_mtim)))
            }
            switch status.st_mode & S_IFMT {
            case S_IFDIR:
                try directory(member, mode: mode)
                if relative.isEmpty && DataDirectoryExclusions.emptiedDirectories.contains(name) {
                    if name == "pg_wal" { try directory("\(member)/archive_status", mode: mode) }
                    continue
                }
                try copyDirectory(root: root, relative: childRelative, copy: &copy, into: writer)
            case S_IFLNK:
                // pg_wal moved elsewhere (initdb -X): an empty pg_wal, as pg_basebackup writes it.
                if relative.isEmpty && name == "pg_wal" {
                    try directory(member, mode: 0o700)
                    try directory("\(member)/archive_status", mode: 0o700)
                    continue
                }
                throw ArchiveError(
                    "\(child) is a symbolic link (a tablespace?): a direct copy holds only the data directory; unset backup.data_directory to back up through pg_basebackup")
            case S_IFREG:
                let state = ClusterFileState(
                    size: Int64(status.st_size), modifiedNanoseconds: Self.nanoseconds(status.st_mtim), changedNanoseconds: Self.nanoseconds(status.st_ctim),
                    inode: UInt64(status.st_ino))
                if let entry = try reuse(child, as: member, mode: mode, state: state, copy: &copy) {
                    copy.tree.append(entry)
                    continue
                }
                if let entry = try copyFile(child, as: member, mode: mode, modified: modified, copy: &copy, into: writer) { copy.tree.append(entry) }
            default:
                throw ArchiveError("\(child) is neither a file, a directory nor a link")
            }
        }
    }

    static func nanoseconds(_ time: timespec) -> Int64 { Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec) }

    /// The entry referring to the parent's content when the incremental's rule proves
    /// the file unchanged, or its content hashes to the parent's; nil when it must be copied.
    private func reuse(_ path: String, as member: String, mode: UInt32, state: ClusterFileState, copy: inout ClusterCopy) throws -> SuiteTreeEntry? {
        guard let rule = copy.rule, let previous = copy.parent?.entries[member] else { return nil }
        // The state recorded is the one seen before reading: a write after it moves the
        // status-change time, and the next incremental reads the file again.
        var entry = SuiteTreeEntry(
            path: member, kind: "file", mode: mode, modifiedNanoseconds: state.modifiedNanoseconds, size: state.size, sha256: previous.sha256,
            backup: previous.backup, inode: state.inode)
        entry.changedNanoseconds = state.changedNanoseconds
        switch rule.decide(state, previous: previous) {
        case .copy:
            return nil
        case .unchanged:
            copy.unchanged += 1
            return entry
        case .compareChecksum:
            copy.hashed += 1
            let hashed: (size: Int64, sha256: String)
            do {
                hashed = try FileBlocks.sha256(ofFile: path)
            } catch {
                if !FileManager.default.fileExists(atPath: path) { return nil }  // dropped meanwhile: copyFile skips it
                throw error
            }
            guard hashed.size == previous.size, hashed.sha256 == previous.sha256 else { return nil }
            copy.unchanged += 1
            return entry
        }
    }

    private func copyFile(_ path: String, as member: String, mode: UInt32, modified: Int, copy: inout ClusterCopy, into writer: EncryptedArchiveWriter) throws
        -> SuiteTreeEntry?
    {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return nil }  // dropped or truncated away since listed: the WAL replay accounts for it
            throw ArchiveError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw ArchiveError("cannot stat \(path): \(String(cString: strerror(errno)))") }
        let size = Int64(status.st_size)
        posix_fadvise(descriptor, 0, 0, POSIX_FADV_SEQUENTIAL)
        var block = copy.block
        copy.block = []
        defer { copy.block = block }
        let written = try writer.addStreamed(name: member, size: size, mode: mode, modified: modified) { sink in
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
                    // Memory: `count == wanted <= block.count`, and block holds 1 MiB (allocated by ClusterCopy).
                    block.withUnsafeMutableBytes { _ = memset($0.baseAddress!, 0, count) }
                }
                try sink(block[0..<count])
                remaining -= Int64(count)
            }
        }
        copy.copied += 1
        // The state when opened, before reading (see reuse(_:as:mode:state:copy:)).
        var entry = SuiteTreeEntry(
            path: member, kind: "file", mode: mode, modifiedNanoseconds: Self.nanoseconds(status.st_mtim), size: written.size, sha256: written.sha256,
            backup: copy.id, inode: UInt64(status.st_ino))
        entry.changedNanoseconds = Self.nanoseconds(status.st_ctim)
        return entry
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
