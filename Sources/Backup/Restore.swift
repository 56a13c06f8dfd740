import Archive
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
    /// The full backup the cluster came from.
    public let backup: String
    /// Members written.
    public let members: Int
    /// The WAL segments available from the base's start, first and last.
    public let walFrom: String
    public let walTo: String
    /// The server's configuration files the backup did not hold, in the order
    /// ``BackupRestore/configurationFiles`` names them: a Debian cluster keeps them in
    /// /etc/postgresql/<version>/<cluster>, outside the data directory a backup copies.
    /// PostgreSQL does not start without postgresql.conf or pg_hba.conf; without
    /// pg_ident.conf it starts, and logins through a user name map fail.
    public let configurationMissing: [String]

    /// What to print after the restore into `target`: how to start PostgreSQL on it,
    /// and, when the backup lacked configuration files, a note naming them. Without
    /// postgresql.conf or pg_hba.conf the steps register the directory as a Debian
    /// cluster of its own (`pg_createcluster -d` integrates an existing data directory
    /// that has them: it moves them to /etc/postgresql/<version>/<name>, sets
    /// `data_directory` and gives it a free port).
    public func nextSteps(target: String) -> [String] {
        var lines: [String] = []
        if !configurationMissing.isEmpty {
            lines.append(
                "note: the backup holds no \(configurationMissing.joined(separator: ", ")): the cluster kept its configuration outside its data "
                    + "directory (Debian: /etc/postgresql/<version>/<cluster>). Never copy that postgresql.conf whole: its data_directory would "
                    + "start the server on the old data directory.")
        }
        if configurationMissing.contains(where: { $0 != "pg_ident.conf" }) {
            lines.append(
                "next: PostgreSQL will not start without postgresql.conf and pg_hba.conf. Make them (postgresql.conf may be empty, pg_hba.conf "
                    + "such as 'local all all peer', pg_ident.conf empty), chown -R postgres:postgres \(target), then register the directory as a "
                    + "Debian cluster of its own: pg_createcluster <version> restored -d \(target) && pg_ctlcluster <version> restored start; "
                    + "carry the production settings over by hand")
        } else {
            if !configurationMissing.isEmpty {
                lines.append("note: PostgreSQL starts without pg_ident.conf; logins through a user name map fail until it is put back")
            }
            lines.append("next: chown -R postgres:postgres \(target) && pg_ctl -D \(target) start (as postgres)")
        }
        return lines
    }
}

/// What a restore will use, once everything it needs was checked: made by
/// ``BackupRestore/prepare(_:acceptRollback:)``, carried out by
/// ``BackupRestore/restore(_:into:restoreCommand:)``.
public struct RestorePlan: Sendable {
    /// Where recovery stops.
    public let target: RecoveryTarget
    /// The backup chosen for the target (its tree is the suite's files then).
    public let chosen: BackupSummary
    /// The backup whose list of the cluster is restored: `chosen` itself when it is a
    /// full backup or an incremental that stores the cluster (direct copies), else its
    /// base (the full backup before it).
    public let base: BackupSummary
    /// The backups whose archives hold the cluster's files (`base` alone for a full
    /// backup; for an incremental of the cluster, every holder its list names).
    public let clusterHolders: [String]
    /// The manifest of `base`, decrypted, its hash checked against the signed summary.
    public let manifest: BackupManifest
    /// The archived WAL from `base`'s start, first and last segment.
    public let walFrom: String
    public let walTo: String
    /// Files of the store accepted without a signature (`--accept-unsigned`).
    public let unsignedAccepted: [String]
    /// What the comparison with the signed heads found, or why it could not be made.
    public let headNotes: [String]
    /// Rollbacks the caller accepted (`acceptRollback`).
    public let rollbacksAccepted: [BackupIntegrityError]
}

/// Restores a base backup and prepares PostgreSQL's own recovery to the target.
/// Nothing is written before the store is checked: every backup's signature and
/// the chain, the store against its signed heads, the WAL to replay (each file's
/// signature, and the stored file against it).
public struct BackupRestore: Sendable {
    /// The store.
    public let store: String
    /// The identities that decrypt it.
    public let identities: [any AgeUnwrapping]
    /// The keys whose signatures are accepted.
    public let trust: BackupTrust
    /// The directories holding the store's signed head (the journal's witness directories).
    public let headDirectories: [String]

    /// A restorer of `store`.
    public init(store: String, identities: [any AgeUnwrapping], trust: BackupTrust, headDirectories: [String] = []) {
        self.store = store
        self.identities = identities
        self.trust = trust
        self.headDirectories = headDirectories
    }

    /// The backup for `target` among `summaries`: the newest (full or incremental)
    /// that finished before it. Its tree is the suite's files at that point; the
    /// cluster comes from ``base(for:in:)``.
    public func choose(_ target: RecoveryTarget, among summaries: [BackupSummary]) throws -> BackupSummary {
        switch target {
        case .latest:
            guard let last = summaries.last else { throw ArchiveError("the store \(store) holds no backup") }
            return last
        case .time(let moment):
            guard let chosen = summaries.last(where: { (BackupSummary.date($0.finished) ?? .distantFuture) < moment }) else {
                throw ArchiveError("no backup in \(store) finished before \(ISO8601DateFormatter().string(from: moment)): that moment cannot be restored")
            }
            return chosen
        }
    }

    /// The full backup among `summaries` whose base the cluster is restored from for `chosen`.
    public func base(for chosen: BackupSummary, in summaries: [BackupSummary]) throws -> BackupSummary {
        guard chosen.kind == BackupKind.incremental.rawValue else { return chosen }
        guard let id = chosen.base, let full = summaries.first(where: { $0.id == id && $0.kind == BackupKind.full.rawValue }) else {
            throw ArchiveError("the incremental backup \(chosen.id) builds on the full backup \(chosen.base ?? "?"), which is not in the store: restore refused")
        }
        return full
    }

    /// Checks the store and chooses what restores `target`, writing nothing: every
    /// backup's and tombstone's signature and the chain (a store with anything forged
    /// is refused whole: remove the files named, or restore from a copy), the store
    /// against its signed heads, and every WAL file from the base's start on (its
    /// signature, and the stored file's SHA-256 and size against it, on every core).
    /// - Parameter acceptRollback: restore from a store older than its signed head
    ///   (an outdated copy, the only one left); the caller journals it.
    /// - Throws: ``BackupIntegrityError`` naming the first file that cannot be
    ///   trusted; ``ArchiveError`` when nothing restores the target.
    public func prepare(_ target: RecoveryTarget, acceptRollback: Bool = false) throws -> RestorePlan {
        let audit = BackupCatalogue(store: store).audit(trust: trust)
        try audit.requireIntact()
        let heads = StoreHead.check(store: store, audit: audit, trust: trust, directories: headDirectories)
        if let refused = heads.failures.first(where: { !acceptRollback || $0.code != .rolledBack }) { throw refused }
        let summaries = audit.trusted
        let chosen = try choose(target, among: summaries)
        var base = try base(for: chosen, in: summaries)
        var manifest = try BackupCatalogue(store: store).manifest(base.id, identities: identities)
        var holders = [base.id]
        if chosen.kind == BackupKind.incremental.rawValue {
            let chosenManifest = try BackupCatalogue(store: store).manifest(chosen.id, identities: identities)
            if let cluster = chosenManifest.cluster {
                // An incremental of the cluster: rebuilt from its list, each file from the
                // backup holding it; the WAL from its own start.
                let present = Set(summaries.map(\.id))
                holders = Set(cluster.compactMap(\.backup)).sorted()
                if let missing = holders.first(where: { !present.contains($0) }) {
                    throw ArchiveError("the cluster of the incremental backup \(chosen.id) needs files held by backup \(missing), which is not in the store: restore refused")
                }
                (base, manifest) = (chosen, chosenManifest)
            }
        }
        let run = try walRun(from: manifest.walStart, through: manifest.walEnd)
        let archive = WALArchive(store: store)
        let timeline = run.first.prefix(8)
        let replayed = try archive.names().filter { $0.count == 24 && $0.prefix(8) == timeline && $0 >= run.first && $0 <= run.last }
        let rules = WALSignatureRules(
            boundaries: BackupCatalogue(store: store).retirementBoundaries(audit, trust: trust), signed: archive.signedNames())
        let wal = archive.audit(replayed, trust: trust, rules: rules)
        if let failure = wal.failures.first {
            let more = wal.failures.count > 1 ? " (and \(wal.failures.count - 1) more WAL files: osmosectl backup verify lists them)" : ""
            throw BackupIntegrityError(failure.code, failure.subject, failure.message + more)
        }
        return RestorePlan(
            target: target, chosen: chosen, base: base, clusterHolders: holders, manifest: manifest, walFrom: run.first, walTo: run.last,
            unsignedAccepted: audit.unsignedAccepted + wal.unsignedAccepted, headNotes: heads.notes,
            rollbacksAccepted: heads.failures.filter { $0.code == .rolledBack })
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

    /// The configuration files PostgreSQL reads from a data directory as it starts,
    /// unless told where they are (`config_file`, `hba_file`, `ident_file`).
    public static let configurationFiles = ["postgresql.conf", "pg_hba.conf", "pg_ident.conf"]

    /// Those of ``configurationFiles`` that `dataDirectory` lacks.
    public static func missingConfiguration(in dataDirectory: String) -> [String] {
        configurationFiles.filter { !FileManager.default.fileExists(atPath: "\(dataDirectory)/\($0)") }
    }

    /// Restores into `dataDirectory` (absent or empty) the cluster of the backup `plan`
    /// chose: for a direct copy (full or incremental), every file its list names, each
    /// from the backup holding it; for a `pg_basebackup` full, its archive. Every file
    /// is checked against the manifest as it is written; then it configures
    /// recovery with `restoreCommand` (e.g. `osmose-backupd wal-fetch --config … %f %p`).
    /// On any mismatch the directory is emptied and nothing is left that could start.
    public func restore(_ plan: RestorePlan, into dataDirectory: String, restoreCommand: String) throws -> RestoreReport {
        let summary = plan.base
        let manifest = plan.manifest
        try Self.prepareEmpty(dataDirectory)
        do {
            // A direct copy of the data directory (full or incremental) lists the cluster:
            // rebuilt from the list, each file read from where its frame starts.
            let written =
                manifest.cluster != nil
                ? try extractCluster(summary.id, manifest: manifest, into: dataDirectory)
                : try extract(summary.id, manifest: manifest, into: dataDirectory)
            try writeRecoverySettings(dataDirectory, target: plan.target, restoreCommand: restoreCommand)
            return RestoreReport(
                backup: summary.id, members: written, walFrom: plan.walFrom, walTo: plan.walTo,
                configurationMissing: Self.missingConfiguration(in: dataDirectory))
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
        var directories = [dataDirectory]
        try withWriter { writer in
            try extractEntries(from: id, expected: expected, into: dataDirectory, writer: writer, seen: &seen, directories: &directories)
        }
        let missing = expected.keys.filter { $0.hasPrefix("pgdata/") && !seen.contains($0) }.sorted()
        guard missing.isEmpty else { throw ArchiveError("\(missing.count) members of the manifest are missing from the archive, first \(missing[0]); restore refused") }
        // Files were synced by the writer; their directory entries now.
        for directory in directories { try syncDirectory(of: directory + "/.") }
        return seen.count
    }

    /// Rebuilds the cluster a direct copy lists (a full's own files, or an
    /// incremental's chain): its directories, then each file from the backup holding
    /// it, checked against the size and SHA-256 the list records (the list is in the
    /// manifest, whose hash is in the signed summary).
    ///
    /// The files are read in runs (``ClusterRestoreRuns``), each starting at the zstd
    /// frame of its first file in its holder's archive (the offsets are in the
    /// holder's manifest, whose hash is in its signed summary) and stopping after its
    /// last: a holder's archive is no longer decompressed whole for the few files it
    /// still holds (a full whose largest tables later incrementals replaced), and the
    /// runs are read at the same time, one per core, the largest first. A file has
    /// one holder and one run, so no two readers write the same file. A failure in
    /// one run does not stop the others; the first is thrown once all have ended,
    /// and ``restore(_:into:restoreCommand:)`` then empties the directory.
    private func extractCluster(_ id: String, manifest: BackupManifest, into dataDirectory: String) throws -> Int {
        let cluster = manifest.cluster ?? []
        var directories = [dataDirectory]
        for entry in cluster where entry.kind == "directory" {
            let destination = try clusterDestination(entry.path, in: dataDirectory)
            try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
            chmod(destination, mode_t(entry.mode))
            directories.append(destination)
        }
        let files = cluster.filter { $0.kind == "file" }
        let catalogue = BackupCatalogue(store: store)
        var planned: [ClusterRestoreRuns.Run] = []
        for (holder, entries) in Dictionary(grouping: files, by: { $0.backup ?? "" }) {
            let wanted = Dictionary(
                entries.compactMap { entry in
                    entry.size.flatMap { size in entry.sha256.map { (entry.path, ArchiveMember(path: entry.path, size: size, sha256: $0)) } }
                },
                uniquingKeysWith: { first, _ in first })
            let members = holder == id ? manifest.members : try catalogue.manifest(holder, identities: identities).members
            planned += try ClusterRestoreRuns.plan(holder: holder, members: members, wanted: wanted)
        }
        let runs = planned.sorted { ($0.bytes, $0.holder, $0.frame) > ($1.bytes, $1.holder, $1.frame) }
        let results = ClaimedResults<Result<Set<String>, any Error>>(count: runs.count, initial: .success([]))
        // One set of syncing threads for every run: a run hands its files over and goes on
        // to the next without waiting for their fsyncs, which all end before the return.
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let syncer = BackgroundSyncer(threads: cores)
        DispatchQueue.concurrentPerform(iterations: min(cores, max(1, runs.count))) { _ in
            while let index = results.claim() {
                let run = runs[index]
                results.store(
                    index,
                    Result {
                        var seen = Set<String>()
                        try withWriter(syncing: syncer) { writer in
                            try extractRun(run, into: dataDirectory, writer: writer, seen: &seen)
                        }
                        return seen
                    })
            }
        }
        let synced = Result { try syncer.finish() }
        var seen = Set<String>()
        for outcome in results.outcomes { seen.formUnion(try outcome.get()) }
        try synced.get()
        if let missing = files.map(\.path).filter({ !seen.contains($0) }).min() {
            let holder = files.first { $0.path == missing }?.backup ?? "?"
            throw ArchiveError("\(missing) is missing from backup \(holder), which the cluster list of \(id) says holds it: restore refused")
        }
        for directory in directories { try syncDirectory(of: directory + "/.") }
        return seen.count
    }

    /// Reads `run`'s holder from the run's frame, writing each of its files, and stops after the last.
    private func extractRun(_ run: ClusterRestoreRuns.Run, into dataDirectory: String, writer: RestoreWriter, seen: inout Set<String>) throws {
        let path = "\(BackupCatalogue(store: store).directory(run.holder))/data.tar.zst.age"
        var left = run.members.count
        try naming(run.holder, path) {
            let reader = try EncryptedArchiveReader(path: path, identities: identities, startingAt: run.frame)
            try reader.readEntries { entry, content in
                guard case .file = entry.kind, let member = run.members[entry.path] else { return true }
                guard !seen.contains(entry.path) else { throw NamingBackup("\(entry.path) appears twice in backup \(run.holder): restore refused") }
                try writeMember(member, mode: entry.mode, from: run.holder, content: content, into: dataDirectory, writer: writer)
                seen.insert(entry.path)
                left -= 1
                return left > 0
            }
        }
        if left > 0, let first = run.members.keys.filter({ !seen.contains($0) }).min() {
            throw ArchiveError(
                "backup \(run.holder), \(path): read from frame \(run.frame), \(left) files were not found after it (first \(first)): its manifest's frame offsets do not match the archive; restore refused")
        }
    }

    /// Runs `body`, naming the backup and archive in any error that does not already
    /// name the backup (a restore reads several archives at once).
    private func naming(_ id: String, _ path: String, _ body: () throws -> Void) throws {
        do {
            try body()
        } catch let named as NamingBackup {
            throw named.error
        } catch {
            throw ArchiveError("backup \(id), \(path): \(error); restore refused")
        }
    }

    /// An error whose message already names the backup it concerns: ``naming(_:_:_:)``
    /// passes it on as the ``ArchiveError`` it carries. Thrown only inside `naming`'s body.
    private struct NamingBackup: Error {
        let error: ArchiveError
        init(_ message: String) { error = ArchiveError(message) }
    }

    /// Writes one file of the cluster and checks it against the list's size and SHA-256.
    /// Called only inside ``naming(_:_:_:)``: its error names the backup.
    private func writeMember(
        _ member: ArchiveMember, mode: UInt32, from holder: String, content: ArchiveBlockReader, into dataDirectory: String, writer: RestoreWriter
    ) throws {
        try writer.begin(try clusterDestination(member.path, in: dataDirectory), mode: mode_t(mode))
        var size: Int64 = 0
        try content { block in
            size += Int64(block.byteCount)
            try writer.append(block)
        }
        let digest = try writer.end()
        guard size == member.size, digest == member.sha256 else {
            throw NamingBackup("\(member.path) differs from the manifest (size or SHA-256): the backup \(holder) is damaged; restore refused")
        }
    }

    private func clusterDestination(_ path: String, in dataDirectory: String) throws -> String {
        guard path.hasPrefix("pgdata/"), !path.split(separator: "/").contains(".."), !path.contains("//") else {
            throw ArchiveError("the cluster list names \(path), which is not under pgdata/")
        }
        return "\(dataDirectory)/\(path.dropFirst(7))"
    }

    /// Runs `body` with a writer that hashes and writes each file on a thread of its
    /// own while this thread decrypts and decompresses, and syncs on others; returns
    /// once every file is synced.
    private func withWriter(_ body: (RestoreWriter) throws -> Void) throws {
        let syncer = BackgroundSyncer(threads: max(1, ProcessInfo.processInfo.activeProcessorCount))
        do {
            try withWriter(syncing: syncer, body)
            try syncer.finish()
        } catch {
            try? syncer.finish()
            throw error
        }
    }

    /// As ``withWriter(_:)``, handing each file over to `syncer` (shared, finished by the caller).
    private func withWriter(syncing syncer: BackgroundSyncer, _ body: (RestoreWriter) throws -> Void) throws {
        let writer = RestoreWriter(syncer: syncer)
        do {
            try body(writer)
            try writer.finish()
        } catch {
            writer.abandon()
            try? writer.finish()
            throw error
        }
    }

    /// Writes the `pgdata/` entries of backup `id`'s archive (a `pg_basebackup` full,
    /// which has no cluster list) into `dataDirectory`, each file checked against
    /// `expected`; a file `expected` does not name is refused.
    private func extractEntries(
        from id: String, expected: [String: ArchiveMember], into dataDirectory: String, writer: RestoreWriter,
        seen: inout Set<String>, directories: inout [String]
    ) throws {
        let path = "\(BackupCatalogue(store: store).directory(id))/data.tar.zst.age"
        try naming(id, path) {
            try EncryptedArchiveReader(path: path, identities: identities).forEachEntry { entry, content in
                guard entry.path.hasPrefix("pgdata/") else { return }
                let relative = String(entry.path.dropFirst(7))
                guard !relative.split(separator: "/").contains(".."), !relative.hasPrefix("/") else {
                    throw ArchiveError("member \(entry.path) escapes the data directory")
                }
                let destination = relative.isEmpty ? dataDirectory : "\(dataDirectory)/\(relative)"
                switch entry.kind {
                case .directory:
                    try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: true)
                    chmod(destination, mode_t(entry.mode))
                    directories.append(destination)
                case .symlink(let target):
                    try FileManager.default.createSymbolicLink(atPath: destination, withDestinationPath: target)
                case .file:
                    guard let member = expected[entry.path] else { throw ArchiveError("\(entry.path) is in the archive but not in the manifest") }
                    guard !seen.contains(entry.path) else { throw NamingBackup("\(entry.path) appears twice in backup \(id): restore refused") }
                    try writeMember(member, mode: entry.mode, from: id, content: content, into: dataDirectory, writer: writer)
                    seen.insert(entry.path)
                }
            }
        }
    }

    /// Restores the suite's files (configuration, policies, witness copies, …) as
    /// they were at the plan's target into `directory` (absent or empty): the tree
    /// listed by the chosen backup, each file taken from the backup that holds its
    /// content and checked against its SHA-256 (the manifests' hashes are in the
    /// signed summaries). Files deleted before that backup do not come back. On any
    /// mismatch or missing content the directory is emptied.
    /// - Returns: the backup whose tree was restored, and the number of files written.
    public func restoreFiles(_ plan: RestorePlan, into directory: String) throws -> (backup: String, files: Int) {
        let chosen = plan.chosen
        let catalogue = BackupCatalogue(store: store)
        let manifest = try catalogue.manifest(chosen.id, identities: identities)
        guard let tree = manifest.tree else {
            throw ArchiveError("backup \(chosen.id) predates file-tree lists: take its suite/ directory with age -d … | bsdtar -x (docs/backup.md)")
        }
        try Self.prepareEmpty(directory)
        func destination(_ path: String) throws -> String {
            guard path.hasPrefix("suite/"), !path.split(separator: "/").contains(".."), !path.contains("//") else {
                throw ArchiveError("the tree of \(chosen.id) lists \(path), which is not under suite/")
            }
            return "\(directory)/\(path.dropFirst(6))"
        }
        do {
            for entry in tree where entry.kind == "directory" {
                try FileManager.default.createDirectory(atPath: try destination(entry.path), withIntermediateDirectories: true)
            }
            let present = Set(catalogue.audit(trust: trust).trusted.map(\.id))
            let files = tree.filter { $0.kind == "file" }
            var written = 0
            for (holder, entries) in Dictionary(grouping: files, by: { $0.backup ?? "" }).sorted(by: { $0.key < $1.key }) {
                guard present.contains(holder) else {
                    throw ArchiveError("\(entries[0].path) is held by backup \(holder.isEmpty ? "(none recorded)" : holder), which is not in the store: restore refused")
                }
                var wanted = Dictionary(entries.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
                let reader = try EncryptedArchiveReader(path: "\(catalogue.directory(holder))/data.tar.zst.age", identities: identities)
                try reader.forEachEntry { entry, content in
                    guard case .file = entry.kind, let want = wanted.removeValue(forKey: entry.path), let size = want.size, let sha256 = want.sha256 else {
                        return
                    }
                    let path = try destination(want.path)
                    try Self.writeChecked(path, mode: mode_t(want.mode), expected: ArchiveMember(path: want.path, size: size, sha256: sha256), backup: holder, content: content)
                    var times = [
                        timespec(tv_sec: Int(want.modifiedNanoseconds / 1_000_000_000), tv_nsec: Int(want.modifiedNanoseconds % 1_000_000_000)),
                        timespec(tv_sec: Int(want.modifiedNanoseconds / 1_000_000_000), tv_nsec: Int(want.modifiedNanoseconds % 1_000_000_000)),
                    ]
                    utimensat(AT_FDCWD, path, &times, 0)
                    written += 1
                }
                if let missing = wanted.keys.min() {
                    throw ArchiveError("\(missing) is missing from backup \(holder), which the tree of \(chosen.id) says holds it: restore refused")
                }
            }
            for entry in tree where entry.kind == "symlink" {
                try FileManager.default.createSymbolicLink(atPath: try destination(entry.path), withDestinationPath: entry.target ?? "")
            }
            // Directory modes last (a read-only directory would refuse its files), deepest first.
            for entry in tree.reversed() where entry.kind == "directory" { chmod(try destination(entry.path), mode_t(entry.mode)) }
            return (chosen.id, written)
        } catch {
            for child in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
                try? FileManager.default.removeItem(atPath: "\(directory)/\(child)")
            }
            throw error
        }
    }

    /// Makes `directory` exist, empty, mode 0700; refuses one that holds anything.
    static func prepareEmpty(_ directory: String) throws {
        if FileManager.default.fileExists(atPath: directory) {
            guard try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty else {
                throw ArchiveError("\(directory) is not empty: restore into a new directory")
            }
        } else {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        chmod(directory, 0o700)
    }

    /// Writes a member's content to a new file `destination`, refusing it (and the
    /// restore) when its size or SHA-256 differs from `expected`; synced before returning.
    static func writeChecked(_ destination: String, mode: mode_t, expected: ArchiveMember, backup id: String, content: ArchiveBlockReader) throws {
        let descriptor = open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw ArchiveError("cannot create \(destination): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var hasher = SHA256Hasher()
        var size: Int64 = 0
        try content { block in
            hasher.update(block)
            size += Int64(block.byteCount)
            // Memory: `block` is valid only during this closure (it may point into the
            // archive reader's buffer); it is written out before the closure returns, and
            // no pointer to it is kept.
            try block.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let count = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if count < 0 && errno == EINTR { continue }
                    guard count > 0 else { throw ArchiveError("writing \(destination) failed: \(String(cString: strerror(errno)))") }
                    offset += count
                }
            }
        }
        let digest = hexDigest(hasher.finalize())
        guard size == expected.size, digest == expected.sha256 else {
            throw ArchiveError("\(expected.path) differs from the manifest (size or SHA-256): the backup \(id) is damaged; restore refused")
        }
        guard fsync(descriptor) == 0 else { throw ArchiveError("syncing \(destination) failed") }
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
