import Archive
import Cryptography
import Foundation
import Glibc

/// One path of the suite's file trees (configuration, policies, witness
/// directories, cold archives), or of the cluster's data directory (`pgdata/…`,
/// direct copies), as a backup saw it. Every backup's manifest lists
/// the *whole* tree, not only what changed: a restore rebuilds exactly this list,
/// so a file deleted since the parent does not come back.
public struct SuiteTreeEntry: Codable, Hashable, Sendable {
    /// Its path in the archive, under `suite/`.
    public var path: String
    /// `file`, `directory` or `symlink`.
    public var kind: String
    /// Permission bits.
    public var mode: UInt32
    /// Modification time, nanoseconds since the epoch (with size and inode, how an
    /// incremental decides a file is unchanged without reading it).
    public var modifiedNanoseconds: Int64
    /// Files: size, SHA-256, and the backup whose `data.tar.zst.age` holds this content.
    public var size: Int64?
    public var sha256: String?
    public var backup: String?
    /// Files: the inode it had (a replaced file with the same size and time is read again).
    public var inode: UInt64?
    /// Data-directory files: the status-change time (`st_ctim`, nanoseconds) the
    /// backup saw, which an incremental of the cluster compares (``ClusterChangeRule``).
    public var changedNanoseconds: Int64?
    /// Symbolic links: the target.
    public var target: String?
}

/// What a walk of the suite's files found on this host, before anything is read.
struct ScannedPath {
    var entry: SuiteTreeEntry
    /// Where it is on this host.
    var source: String
}

enum SuiteTree {
    /// Walks `roots` (path on this host, name under `suite/`), parents before children,
    /// names sorted. A root may be a symbolic link (followed); links inside are kept as links.
    static func scan(_ roots: [(path: String, name: String)]) throws -> [ScannedPath] {
        var found: [ScannedPath] = []
        func visit(_ path: String, as name: String, follow: Bool) throws {
            var status = stat()
            guard (follow ? stat(path, &status) : lstat(path, &status)) == 0 else {
                throw ArchiveError("\(path) (a suite file to back up) cannot be read: \(String(cString: strerror(errno)))")
            }
            let nanoseconds = Int64(status.st_mtim.tv_sec) * 1_000_000_000 + Int64(status.st_mtim.tv_nsec)
            let mode = UInt32(status.st_mode & 0o7777)
            switch status.st_mode & S_IFMT {
            case S_IFDIR:
                found.append(ScannedPath(entry: SuiteTreeEntry(path: name, kind: "directory", mode: mode, modifiedNanoseconds: nanoseconds), source: path))
                for child in try FileManager.default.contentsOfDirectory(atPath: path).sorted() {
                    try visit("\(path)/\(child)", as: "\(name)/\(child)", follow: false)
                }
            case S_IFREG:
                found.append(
                    ScannedPath(
                        entry: SuiteTreeEntry(
                            path: name, kind: "file", mode: mode, modifiedNanoseconds: nanoseconds, size: Int64(status.st_size), inode: UInt64(status.st_ino)),
                        source: path))
            case S_IFLNK:
                let target = try FileManager.default.destinationOfSymbolicLink(atPath: path)
                found.append(ScannedPath(entry: SuiteTreeEntry(path: name, kind: "symlink", mode: 0o777, modifiedNanoseconds: nanoseconds, target: target), source: path))
            default:
                throw ArchiveError("\(path) is neither a file, a directory nor a symbolic link: it cannot be backed up")
            }
        }
        for root in roots {
            guard !root.name.isEmpty, !root.name.contains(".."), !root.name.hasPrefix("/") else { throw ArchiveError("\(root.name) is not a valid name under suite/") }
            try visit(root.path, as: "suite/\(root.name)", follow: true)
        }
        return found
    }

    /// Writes the tree into `writer` for backup `id`. With a `parent` tree (an
    /// incremental), a file whose size, time and inode are unchanged keeps its
    /// parent's content reference without being read; one whose content hashes to
    /// its parent's also keeps it; only the others are written.
    /// - Returns: the whole tree, each file referring to the backup that holds its content.
    static func write(_ scanned: [ScannedPath], id: String, parent: [SuiteTreeEntry]?, into writer: EncryptedArchiveWriter) throws -> [SuiteTreeEntry] {
        let previous = Dictionary((parent ?? []).map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        var tree: [SuiteTreeEntry] = []
        for item in scanned {
            var entry = item.entry
            let seconds = Int(entry.modifiedNanoseconds / 1_000_000_000)
            switch entry.kind {
            case "directory":
                if parent == nil { try writer.addDirectory(entry.path, mode: entry.mode, modified: seconds) }
            case "symlink":
                if parent == nil { try writer.addSymlink(entry.path, target: entry.target ?? "", modified: seconds) }
            default:
                if let old = previous[entry.path], old.kind == "file", let oldHash = old.sha256, let holder = old.backup {
                    if old.size == entry.size, old.modifiedNanoseconds == entry.modifiedNanoseconds, old.inode == entry.inode {
                        entry.sha256 = oldHash
                        entry.backup = holder
                        tree.append(entry)
                        continue
                    }
                    if let (size, digest) = try? FileBlocks.sha256(ofFile: item.source), size == old.size, digest == oldHash {
                        entry.size = size
                        entry.sha256 = digest
                        entry.backup = holder
                        tree.append(entry)
                        continue
                    }
                }
                let member = try writer.addFile(at: item.source, as: entry.path)
                entry.size = member.size
                entry.sha256 = member.sha256
                entry.backup = id
            }
            tree.append(entry)
        }
        return tree
    }
}
