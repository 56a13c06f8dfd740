public import Age
import Cryptography
public import Foundation
import Glibc

/// Where a restore stops.
public enum RecoveryTarget: Sendable, Equatable {
    /// Replay every archived WAL segment.
    case latest
    /// Stop at this moment (PostgreSQL's recovery_target_time).
    case time(Date)
}

/// What a restore did.
public struct RestoreReport: Sendable, Codable {
    /// The base backup used.
    public let backup: String
    /// Members written.
    public let members: Int
    /// The WAL segments available from the base's start, first and last.
    public let walFrom: String
    public let walTo: String
}

/// Restores a base backup and prepares PostgreSQL's own recovery to the target.
public struct BackupRestore: Sendable {
    /// The store.
    public let store: String
    /// The identities that decrypt it.
    public let identities: [any AgeUnwrapping]

    /// A restorer of `store`.
    public init(store: String, identities: [any AgeUnwrapping]) {
        self.store = store
        self.identities = identities
    }

    static func parse(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        return formatter.date(from: text)
    }

    /// The base backup to restore for `target`: the newest that finished before it.
    public func choose(_ target: RecoveryTarget) throws -> BackupSummary {
        let summaries = try BackupCatalogue(store: store).summaries()
        switch target {
        case .latest:
            guard let last = summaries.last else { throw ArchiveError("the store \(store) holds no backup") }
            return last
        case .time(let moment):
            guard let chosen = summaries.last(where: { (Self.parse($0.finished) ?? .distantFuture) < moment }) else {
                throw ArchiveError("no backup in \(store) finished before \(ISO8601DateFormatter().string(from: moment)): that moment cannot be restored")
            }
            return chosen
        }
    }

    /// The archived WAL from `start` on, refusing a gap: segments must follow one
    /// another up to the newest archived one, and reach at least `end`.
    public func walRun(from start: String, through end: String) throws -> (first: String, last: String) {
        let archive = WALArchive(store: store)
        let names = Set(try archive.names().filter { $0.count == 24 })
        guard names.contains(start) else { throw ArchiveError("WAL segment \(start), where the base backup starts, is missing from the archive") }
        // Every segment the push log records from the start on (same timeline) must be there.
        let timeline = start.prefix(8)
        if let missing = try archive.pushedNames().filter({ $0.count == 24 && $0.prefix(8) == timeline && $0 >= start && !names.contains($0) }).min() {
            throw ArchiveError("WAL segment \(missing) was archived but is missing from the store: a restore would silently stop before it; refused")
        }
        var last = start
        while let next = WALSegment.next(last), names.contains(next) { last = next }
        guard last >= end else { throw ArchiveError("WAL segment \(WALSegment.next(last) ?? "?") is missing: the base backup needs WAL up to \(end)") }
        if let beyond = names.filter({ $0.prefix(8) == timeline && $0 > last }).min() {
            throw ArchiveError(
                "WAL segment \(WALSegment.next(last) ?? "?") is missing although \(beyond) is archived: a restore would silently stop before the gap; refused")
        }
        return (start, last)
    }

    /// Restores into `dataDirectory` (absent or empty) the base backup for `target`,
    /// checking every member against the manifest as it is written, and configures
    /// recovery with `restoreCommand` (e.g. `osmose-backupd wal-fetch --config … %f %p`).
    /// On any mismatch the directory is emptied and nothing is left that could start.
    public func restore(to target: RecoveryTarget, into dataDirectory: String, restoreCommand: String) throws -> RestoreReport {
        let summary = try choose(target)
        let manifest = try BackupCatalogue(store: store).manifest(summary.id, identities: identities)
        let run = try walRun(from: manifest.walStart, through: manifest.walEnd)
        if FileManager.default.fileExists(atPath: dataDirectory) {
            guard try FileManager.default.contentsOfDirectory(atPath: dataDirectory).isEmpty else {
                throw ArchiveError("\(dataDirectory) is not empty: restore into a new directory")
            }
        } else {
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        chmod(dataDirectory, 0o700)
        do {
            let written = try extract(summary.id, manifest: manifest, into: dataDirectory)
            try writeRecoverySettings(dataDirectory, target: target, restoreCommand: restoreCommand)
            return RestoreReport(backup: summary.id, members: written, walFrom: run.first, walTo: run.last)
        } catch {
            for child in (try? FileManager.default.contentsOfDirectory(atPath: dataDirectory)) ?? [] {
                try? FileManager.default.removeItem(atPath: "\(dataDirectory)/\(child)")
            }
            throw error
        }
    }

    private func extract(_ id: String, manifest: BackupManifest, into dataDirectory: String) throws -> Int {
        let expected = Dictionary(uniqueKeysWithValues: manifest.members.map { ($0.path, $0) })
        var seen = Set<String>()
        let reader = try EncryptedArchiveReader(path: "\(BackupCatalogue(store: store).directory(id))/data.tar.zst.age", identities: identities)
        try reader.forEachEntry { entry, next in
            guard entry.path.hasPrefix("pgdata/") else {
                while try next() != nil {}
                return
            }
            let relative = String(entry.path.dropFirst(7))
            guard !relative.split(separator: "/").contains(".."), !relative.hasPrefix("/") else { throw ArchiveError("member \(entry.path) escapes the data directory") }
            let destination = relative.isEmpty ? dataDirectory : "\(dataDirectory)/\(relative)"
            switch entry.kind {
            case .directory:
                try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
                chmod(destination, mode_t(entry.mode))
            case .symlink(let target):
                try FileManager.default.createSymbolicLink(atPath: destination, withDestinationPath: target)
            case .file:
                guard let member = expected[entry.path] else { throw ArchiveError("\(entry.path) is in the archive but not in the manifest") }
                let descriptor = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode_t(entry.mode))
                guard descriptor >= 0 else { throw ArchiveError("cannot create \(destination): \(String(cString: strerror(errno)))") }
                defer { close(descriptor) }
                var hasher = SHA256Hasher()
                var size: Int64 = 0
                while let block = try next() {
                    hasher.update(block)
                    size += Int64(block.count)
                    var offset = block.startIndex
                    while offset < block.endIndex {
                        let count = block[offset...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                        guard count > 0 else { throw ArchiveError("writing \(destination) failed: \(String(cString: strerror(errno)))") }
                        offset += count
                    }
                }
                let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
                guard size == member.size, digest == member.sha256 else {
                    throw ArchiveError("\(entry.path) differs from the manifest (size or SHA-256): the backup \(id) is damaged; restore refused")
                }
                guard fsync(descriptor) == 0 else { throw ArchiveError("syncing \(destination) failed") }
                seen.insert(entry.path)
            }
        }
        let missing = expected.keys.filter { $0.hasPrefix("pgdata/") && !seen.contains($0) }.sorted()
        guard missing.isEmpty else { throw ArchiveError("\(missing.count) members of the manifest are missing from the archive, first \(missing[0]); restore refused") }
        return seen.count
    }

    private func writeRecoverySettings(_ dataDirectory: String, target: RecoveryTarget, restoreCommand: String) throws {
        var lines = [
            "# written by osmose backup restore",
            "restore_command = '\(restoreCommand.replacingOccurrences(of: "'", with: "''"))'",
            "recovery_target_action = 'promote'",
            // A restored cluster must not write into the store it came from: once promoted it
            // starts a new timeline, and its WAL there would redirect every later restore.
            // Re-enable archiving deliberately if it becomes the production cluster.
            "archive_mode = 'off'",
        ]
        if case .time(let moment) = target {
            // PostgreSQL's own timestamptz spelling (it refuses the ISO 8601 "T…Z" form here).
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "UTC")
            formatter.dateFormat = "yyyy-MM-dd HH:mm:ss.SSSSSS"
            lines.append("recovery_target_time = '\(formatter.string(from: moment))+00'")
        }
        let auto = "\(dataDirectory)/postgresql.auto.conf"
        let existing = FileManager.default.contents(atPath: auto).map { String(decoding: $0, as: UTF8.self) } ?? ""
        try writeDurably(Array((existing + (existing.isEmpty || existing.hasSuffix("\n") ? "" : "\n") + lines.joined(separator: "\n") + "\n").utf8), to: auto)
        try writeDurably([], to: "\(dataDirectory)/recovery.signal")
    }
}
