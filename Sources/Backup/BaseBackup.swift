import Archive
public import Age
import Foundation
import Glibc

/// What a backup holds.
public enum BackupKind: String, Sendable, Codable {
    /// The cluster (a base backup) and every suite file.
    case full
    /// The suite files changed since the previous backup, and the whole tree's list.
    /// With a direct copy of the data directory (`backup.data_directory`), also the
    /// cluster's files changed since the previous backup (between `pg_backup_start` and
    /// `pg_backup_stop`) and the list of all of them: a restore rebuilds the cluster
    /// from that list and replays the WAL from this backup on. Otherwise the cluster
    /// comes from the newest full and the WAL archive since it.
    case incremental
}

/// A full backup: a consistent physical base backup of the cluster taken with
/// `pg_basebackup` (tar format, streamed: nothing is staged in clear on disk),
/// rewritten member by member into `data.tar.zst.age` under `pgdata/`, plus the
/// suite's own files under `suite/`; then its manifest and summary. The WAL it
/// needs comes from the WAL archive (`wal-push`).
public struct BaseBackup: Sendable {
    /// A libpq connection string for a role allowed to take base backups (REPLICATION).
    public let connection: String
    /// The store.
    public let store: String
    /// The recipients.
    public let recipients: [any AgePublicRecipient]
    /// Files and directories of the suite to include: (path on this host, name under `suite/`).
    public let suiteFiles: [(path: String, name: String)]
    /// Where `pg_basebackup` is.
    public let pgBasebackup: String
    /// The cluster's data directory, when full backups read it directly (with a
    /// ``BackupSession``) instead of running `pg_basebackup`.
    public let dataDirectory: String?
    /// The backup-signing keys the backup is signed with.
    public let signer: BackupSigner
    /// Which earlier backups are trusted as parent, base and holders of unchanged
    /// files: those signed by `trust`'s keys or the signer's (a backup the backup host
    /// added is never chained to).
    public let trust: BackupTrust

    /// A backup job.
    public init(
        connection: String, store: String, recipients: [any AgePublicRecipient], signer: BackupSigner, trust: BackupTrust = BackupTrust(keys: []),
        suiteFiles: [(path: String, name: String)] = [], pgBasebackup: String = "/usr/bin/pg_basebackup", dataDirectory: String? = nil
    ) {
        self.connection = connection
        self.store = store
        self.recipients = recipients
        self.signer = signer
        self.trust = trust.adding(signer)
        self.suiteFiles = suiteFiles
        self.pgBasebackup = pgBasebackup
        self.dataDirectory = dataDirectory
    }

    /// `date` in UTC to the millisecond: `20261122T013000.123Z` for ids (a directory
    /// name; ids sort in time order), `2026-11-22T01:30:00.123Z` for summaries. Older
    /// stores hold ids and times to the second; both forms sort and parse together.
    static func timestamp(_ date: Date, compact: Bool) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = compact ? "yyyyMMdd'T'HHmmss.SSS'Z'" : "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"
        return formatter.string(from: date)
    }

    /// Takes the backup, then waits (up to `walWait`) until the last WAL segment it
    /// needs is in the WAL archive, so that a listed backup is always restorable.
    /// An incremental (``BackupKind/incremental``) holds only the suite files (and,
    /// with ``dataDirectory``, the cluster's files) that changed since the previous
    /// backup, and the lists of the whole trees; without ``dataDirectory`` the cluster
    /// is restored from its base (the newest full) and the WAL archive.
    /// - Throws: ``ArchiveError`` naming what failed; nothing is left under the backup's name then.
    /// A backup with ``dataDirectory`` set needs `session`.
    public func run(kind: BackupKind = .full, session: BackupSession? = nil, walWait: Duration = .seconds(120)) throws -> BackupSummary {
        var started = Date()
        var id = Self.timestamp(started, compact: true)
        let catalogue = BackupCatalogue(store: store)
        // Ids are milliseconds: a backup started within the same one as another waits for the next.
        while FileManager.default.fileExists(atPath: catalogue.directory(id)) || FileManager.default.fileExists(atPath: catalogue.directory(id) + ".partial") {
            guard Date().timeIntervalSince(started) < 2 else { throw ArchiveError("backup \(id) exists already") }
            usleep(2_000)
            started = Date()
            id = Self.timestamp(started, compact: true)
        }
        let directory = catalogue.directory(id)
        // One backup at a time; what a killed one left (never listed: no summary
        // under a final name) is removed first.
        let base = "\(store)/base"
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        let lock = open("\(base)/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard lock >= 0 else { throw ArchiveError("cannot open \(base)/.lock: \(String(cString: strerror(errno)))") }
        defer { close(lock) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else { throw ArchiveError("another backup is running on \(store)") }
        for stale in try FileManager.default.contentsOfDirectory(atPath: base) where stale.hasSuffix(".partial") || stale.hasSuffix(".pruning") {
            try FileManager.default.removeItem(atPath: "\(base)/\(stale)")
        }
        let staging = directory + ".partial"
        try FileManager.default.createDirectory(atPath: staging, withIntermediateDirectories: true)
        do {
            let summary = try take(id: id, kind: kind, session: session, started: started, into: staging, walWait: walWait)
            guard rename(staging, directory) == 0 else { throw ArchiveError("renaming \(staging) failed: \(String(cString: strerror(errno)))") }
            try syncDirectory(of: directory)
            return summary
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    /// The file beside each backup that keeps its tree in clear for the next
    /// incremental, which must not need a key to decrypt the manifest. It holds
    /// hashes of this host's own files, stays on this host (copies do not take it),
    /// and is only an accelerator: without it the next incremental writes every file.
    static let localTreeName = "tree.local.json"

    private func take(id: String, kind: BackupKind, session: BackupSession?, started: Date, into staging: String, walWait: Duration) throws -> BackupSummary {
        let catalogue = BackupCatalogue(store: store)
        // Only what this suite signed is chained to (or, in a store from before signing, what precedes it).
        let summaries = catalogue.audit(trust: BackupTrust(keys: trust.keys, acceptUnsigned: true)).trusted
        let previous = summaries.last
        let scanned = try SuiteTree.scan(suiteFiles)
        // The parent's trees in clear (suite and cluster), when their signature covers them.
        let parentTree = previous.flatMap { summary -> [SuiteTreeEntry]? in
            guard let data = FileManager.default.contents(atPath: "\(catalogue.directory(summary.id))/\(Self.localTreeName)"),
                localTreeIsSigned(Array(data), backup: summary.id)
            else { return nil }
            return try? JSONDecoder().decode([SuiteTreeEntry].self, from: data)
        }
        let copiesCluster = dataDirectory != nil
        let writer = try EncryptedArchiveWriter(
            path: "\(staging)/data.tar.zst.age", recipients: recipients, threads: kind == .full || copiesCluster ? max(1, ProcessInfo.processInfo.activeProcessorCount) : 1)
        let walStart: String
        let walEnd: String
        let tree: [SuiteTreeEntry]
        var cluster: [SuiteTreeEntry]?
        var baseID: String?
        var full: BackupSummary?
        if kind == .incremental {
            guard let newestFull = summaries.last(where: { $0.kind == BackupKind.full.rawValue }) else {
                throw ArchiveError("an incremental backup builds on a full one, and the store \(store) holds none: run osmose-backupd full first")
            }
            full = newestFull
            baseID = newestFull.id
        }
        if let dataDirectory {
            guard let session else { throw ArchiveError("a direct copy of \(dataDirectory) needs a database session (pg_backup_start)") }
            // An incremental compares with the parent's list of the cluster; without one
            // (a parent taken by pg_basebackup, or its local tree missing) it copies every file.
            var parent: ClusterParent?
            if kind == .incremental, let previous, let started = BackupSummary.date(previous.started) {
                let entries = (parentTree ?? []).filter { $0.path.hasPrefix("pgdata/") }
                if !entries.isEmpty { parent = ClusterParent(entries: Dictionary(entries.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first }), started: started) }
            }
            let copied = try copyDataDirectory(dataDirectory, id: id, label: "osmose \(id)", parent: parent, session: session, into: writer)
            tree = try SuiteTree.write(scanned, id: id, parent: kind == .incremental ? parentTree?.filter { $0.path.hasPrefix("suite/") } : nil, into: writer)
            try writer.finish()
            guard let start = WALSegment.name(timeline: copied.timeline, lsn: copied.start) else {
                throw ArchiveError("the backup label gives a WAL position that cannot be read (\(copied.start))")
            }
            try waitForArchive(copied.endSegment, timeout: walWait)
            (walStart, walEnd, cluster) = (start, copied.endSegment, copied.tree)
        } else if kind == .full {
            let (startLSN, end, timeline) = try copyBaseBackup(label: "osmose \(id)", into: writer)
            tree = try SuiteTree.write(scanned, id: id, parent: nil, into: writer)
            try writer.finish()
            guard let start = WALSegment.name(timeline: timeline, lsn: startLSN) else {
                throw ArchiveError("pg_basebackup reported a WAL position that cannot be read (\(startLSN))")
            }
            try waitForArchive(end, timeout: walWait)
            (walStart, walEnd) = (start, end)
        } else {
            // Without a direct copy the cluster comes from the newest full and the WAL since.
            guard let full else { throw ArchiveError("an incremental backup needs a full one") }
            tree = try SuiteTree.write(scanned, id: id, parent: parentTree?.filter { $0.path.hasPrefix("suite/") }, into: writer)
            try writer.finish()
            (walStart, walEnd) = (full.walStart, full.walEnd)
        }
        var manifest = BackupManifest(
            id: id, kind: kind.rawValue, started: Self.timestamp(started, compact: false), finished: Self.timestamp(Date(), compact: false),
            walStart: walStart, walEnd: walEnd, parent: previous?.id, parentManifestSHA256: previous?.manifestSHA256,
            recipients: recipients.map(\.fingerprint), members: writer.members)
        manifest.base = baseID
        manifest.tree = tree
        manifest.cluster = cluster
        manifest.archiveSHA256 = writer.fileSHA256
        manifest.members.sort { $0.path < $1.path }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let manifestBytes = Array(try encoder.encode(manifest))
        let encryptedManifest = try Age.encrypt(manifestBytes, to: recipients)
        try writeDurably(encryptedManifest, to: "\(staging)/manifest.json.age")
        let localTree = Array(try JSONEncoder().encode(tree + (cluster ?? [])))
        try writeDurably(localTree, to: "\(staging)/\(Self.localTreeName)", mode: 0o600)
        let summary = BackupSummary(manifest: manifest, manifestSHA256: hexSHA256(manifestBytes), bytes: writer.bytesWritten)
        let summaryBytes = Array(try encoder.encode(summary))
        try writeDurably(summaryBytes, to: "\(staging)/summary.json")
        guard let archiveSHA256 = writer.fileSHA256 else { throw ArchiveError("\(staging)/data.tar.zst.age was written without its digest") }
        let statement = try BackupCatalogue.statement(
            summary: summary, manifestPlaintextSHA256: summary.manifestSHA256,
            files: [
                ("data.tar.zst.age", writer.bytesWritten, archiveSHA256), ("manifest.json.age", Int64(encryptedManifest.count), hexSHA256(encryptedManifest)),
                ("summary.json", Int64(summaryBytes.count), hexSHA256(summaryBytes)), (Self.localTreeName, Int64(localTree.count), hexSHA256(localTree)),
            ])
        try signer.write(statement, to: "\(staging)/\(BackupCatalogue.signatureName)")
        return summary
    }

    /// Whether `bytes`, backup `id`'s local tree, is the one its signature covers: the
    /// store may be on the backup host, which could otherwise make the next
    /// incremental take a changed file for an unchanged one.
    private func localTreeIsSigned(_ bytes: [UInt8], backup id: String) -> Bool {
        guard let note = FileManager.default.contents(atPath: "\(BackupCatalogue(store: store).directory(id))/\(BackupCatalogue.signatureName)"),
            let signed = try? trust.authenticate(String(decoding: note, as: UTF8.self), file: id, kind: .backup, subject: id).statement.file(Self.localTreeName)
        else { return false }
        return signed.bytes == Int64(bytes.count) && signed.sha256 == hexSHA256(bytes)
    }

    /// Runs pg_basebackup (tar to stdout, no WAL, fast checkpoint) and copies each
    /// member of its stream into `writer` under `pgdata/`.
    private func copyBaseBackup(label: String, into writer: EncryptedArchiveWriter) throws -> (start: String, endSegment: String, timeline: UInt32) {
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-basebackup-\(UUID().uuidString)").path
        defer { unlink(errorFile) }
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw ArchiveError("pipe failed: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
        posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
        posix_spawn_file_actions_addopen(&actions, 2, errorFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let arguments = [pgBasebackup, "-d", connection, "-D", "-", "-F", "t", "-X", "none", "-c", "fast", "--no-manifest", "-l", label, "-v"]
        let argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, pgBasebackup, &actions, nil, argv, environ)
        close(pipeFDs[1])
        guard spawned == 0 else {
            close(pipeFDs[0])
            throw ArchiveError("cannot run \(pgBasebackup): \(String(cString: strerror(spawned)))")
        }
        var copyError: (any Error)?
        var label: [UInt8] = []
        do {
            label = try writer.copyTarStream(from: pipeFDs[0], prefix: "pgdata/", capturing: "backup_label")
        } catch let error as ArchiveError {
            copyError = ArchiveError("pg_basebackup's output: \(error.message)")
            kill(pid, SIGTERM)
        } catch {
            copyError = error
            kill(pid, SIGTERM)
        }
        close(pipeFDs[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let log = (try? String(contentsOfFile: errorFile, encoding: .utf8)) ?? ""
        guard status == 0 else {
            throw ArchiveError("pg_basebackup failed: \(log.split(separator: "\n").suffix(3).joined(separator: " / "))")
        }
        if let copyError { throw copyError }
        // PostgreSQL waited until every segment the backup needs was archived (BASE_BACKUP WAIT).
        return try walRange(backupLabel: String(decoding: label, as: UTF8.self))
    }

    private func waitForArchive(_ segment: String, timeout: Duration) throws {
        let archive = WALArchive(store: store)
        let deadline = ContinuousClock.now + timeout
        while !FileManager.default.fileExists(atPath: archive.archivePath(segment)) {
            guard ContinuousClock.now < deadline else {
                throw ArchiveError("WAL segment \(segment), which the base backup needs, did not reach the archive within \(timeout): check archive_command")
            }
            usleep(200_000)
        }
    }
}
