public import Age
import Archive
import Cryptography
import Foundation
import Glibc

/// The local spool of `wal-fetch`'s prefetching (as pgBackRest's asynchronous
/// archive-get): while PostgreSQL replays one segment, a background `wal-fetch`
/// decrypts the next ones into the spool, so that the next `restore_command` only
/// hands a file over. A segment gets its final name in the spool only once its
/// signature and SHA-256 were checked (it is written as `<name>.partial` first);
/// at hand-over both are checked again, against the store's signature, before the
/// file is renamed to PostgreSQL's destination. A prefetcher killed mid-work leaves
/// at most a `.partial` file, which nothing uses and the next run removes.
public struct WALPrefetch: Sendable {
    /// The store.
    public let archive: WALArchive
    /// The spool directory (by default `pg_wal/osmose-prefetch`, beside the destination).
    public let spool: String

    /// A spool `spool` for `store`.
    public init(store: String, spool: String) {
        archive = WALArchive(store: store)
        self.spool = spool
    }

    /// The default spool for a destination (PostgreSQL's `%p`, e.g. `pg_wal/RECOVERYXLOG`):
    /// `osmose-prefetch` in the same directory, an absolute path. The same file
    /// system as the destination, so that the hand-over is a rename; inside
    /// `pg_wal`, which base backups leave out and PostgreSQL's own clean-up ignores.
    public static func defaultSpool(for destination: String) -> String {
        let directory = (destination as NSString).deletingLastPathComponent
        let absolute = directory.hasPrefix("/") ? directory : FileManager.default.currentDirectoryPath + (directory.isEmpty ? "" : "/" + directory)
        return absolute + "/osmose-prefetch"
    }

    /// The lock a running prefetcher holds (`flock`), with its process id inside.
    var lockPath: String { "\(spool)/.prefetcher" }

    /// Hands segment `name` over from the spool to `destination`, once its signature
    /// and its SHA-256 are checked again. Removes the spool's segments older than
    /// `name` (replayed already) and, when no prefetcher runs, what a killed one left.
    /// - Returns: whether the spool held `name` and it was handed over; false sends the
    ///   caller to the store (a spool file that fails a check is removed, never used).
    public func take(_ name: String, to destination: String, trust: BackupTrust) -> Bool {
        guard WALArchive.isWALFileName(name), let entries = try? FileManager.default.contentsOfDirectory(atPath: spool) else { return false }
        let prefetcherRunning = isLocked()
        for entry in entries where !entry.hasPrefix(".") {
            let stale = entry.hasSuffix(".partial") ? !prefetcherRunning : (entry.count == 24 && name.count == 24 && entry.prefix(8) == name.prefix(8) && entry < name)
            if stale { unlink("\(spool)/\(entry)") }
        }
        let spooled = "\(spool)/\(name)"
        guard FileManager.default.fileExists(atPath: spooled) else { return false }
        var signed: String?
        do {
            if let authenticated = try archive.authenticate(name, trust: trust) {
                signed = authenticated.statement.value("sha256")
            } else {
                signed = unsignedDigest(name, trust: trust)
            }
        } catch {
            signed = nil
        }
        guard let signed, let found = try? FileBlocks.sha256(ofFile: spooled), found.sha256 == signed,
            rename(spooled, destination) == 0
        else {
            unlink(spooled)
            return false
        }
        return true
    }

    /// An unsigned segment's recorded digest, when `trust` accepts unsigned files.
    private func unsignedDigest(_ name: String, trust: BackupTrust) -> String? {
        guard trust.acceptUnsigned, let text = FileManager.default.contents(atPath: archive.digestPath(name)) else { return nil }
        return String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The segments after `name` (same timeline) that the store holds and the spool
    /// lacks, up to `count` ahead.
    public func wanted(after name: String, count: Int) -> [String] {
        guard name.count == 24, count > 0 else { return [] }
        var names: [String] = []
        var current = name
        for _ in 0..<count {
            guard let next = WALSegment.next(current), FileManager.default.fileExists(atPath: archive.archivePath(next)) else { break }
            if !FileManager.default.fileExists(atPath: "\(spool)/\(next)") { names.append(next) }
            current = next
        }
        return names
    }

    /// Whether a prefetcher holds the spool's lock now.
    public func isLocked() -> Bool {
        let descriptor = open(lockPath, O_RDWR | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else { return true }
        flock(descriptor, LOCK_UN)
        return false
    }

    /// The prefetcher's work: takes the spool's lock (returns at once if another
    /// prefetcher holds it), removes what a killed one left, and fetches the segments
    /// after `name` (up to `count`) into the spool, each checked by
    /// ``WALArchive/fetch(name:to:identities:trust:)`` before it gets its final name.
    /// Then waits (up to `linger`) until PostgreSQL has taken them, or until recovery
    /// has ended (`recovery.signal` and `standby.signal` gone from `dataDirectory`),
    /// and removes what is left then.
    /// - Returns: the segments fetched.
    /// - Throws: ``BackupIntegrityError`` for a refused segment (the spool keeps
    ///   nothing of it: the foreground fetch reports it); ``ArchiveError`` when the
    ///   spool cannot be written.
    @discardableResult
    public func run(after name: String, count: Int, identities: [any AgeUnwrapping], trust: BackupTrust, dataDirectory: String?, linger: Duration = .seconds(600))
        throws -> [String]
    {
        try FileManager.default.createDirectory(atPath: spool, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw ArchiveError("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        defer { close(lock) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else { return [] }
        let pid = Array("\(getpid())\n".utf8)
        ftruncate(lock, 0)
        _ = pid.withUnsafeBytes { pwrite(lock, $0.baseAddress, $0.count, 0) }
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? [] where entry.hasSuffix(".partial") {
            unlink("\(spool)/\(entry)")
        }
        var fetched: [String] = []
        for next in wanted(after: name, count: count) {
            guard Self.recovering(dataDirectory) else { break }
            guard try archive.fetch(name: next, to: "\(spool)/\(next)", identities: identities, trust: trust) else { break }
            fetched.append(next)
        }
        let deadline = ContinuousClock.now + linger
        while ContinuousClock.now < deadline && Self.recovering(dataDirectory) && !spooledSegments().isEmpty {
            usleep(200_000)
        }
        if !Self.recovering(dataDirectory) || ContinuousClock.now >= deadline {
            for entry in spooledSegments() { unlink("\(spool)/\(entry)") }
        }
        return fetched
    }

    private func spooledSegments() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: spool)) ?? []).filter { !$0.hasPrefix(".") && !$0.hasSuffix(".partial") }
    }

    /// Whether PostgreSQL is still recovering in `dataDirectory` (`recovery.signal` or
    /// `standby.signal` there; always true when unknown).
    public static func recovering(_ dataDirectory: String?) -> Bool {
        guard let dataDirectory else { return true }
        return FileManager.default.fileExists(atPath: "\(dataDirectory)/recovery.signal") || FileManager.default.fileExists(atPath: "\(dataDirectory)/standby.signal")
    }
}
