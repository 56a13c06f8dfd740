import Archive
public import Age
import Cryptography
import Foundation

/// One problem `verify` found, named precisely.
public struct BackupProblem: Sendable, Codable, Hashable, CustomStringConvertible {
    /// What is concerned: a file of the store (`base/<id>/backup.sig`,
    /// `wal/<segment>.tar.zst.age`), `base/<id>`, `base/<id>/<member>`, `catalogue`,
    /// or a head file's path.
    public let subject: String
    /// What is wrong.
    public let message: String
    public var description: String { "\(subject): \(message)" }

    /// A problem with `subject`.
    public init(subject: String, message: String) {
        self.subject = subject
        self.message = message
    }

    /// The problem an integrity error names.
    public init(_ error: BackupIntegrityError) { self.init(subject: error.subject, message: error.message) }
}

/// What `verify` checked.
public struct BackupVerification: Sendable, Codable {
    /// Backups checked.
    public var backupsChecked = 0
    /// Whether their members were read (`--read-data`), rather than their stored
    /// archives compared with the SHA-256 recorded when they were written.
    public var readData = false
    /// Members decrypted, decompressed and hashed.
    public var membersChecked = 0
    /// Stored archives compared with their recorded SHA-256 (not decrypted past their first block).
    public var archivesCompared = 0
    /// WAL segments decrypted and compared with their digest.
    public var segmentsChecked = 0
    /// Signatures checked (backups, tombstones, WAL files, heads).
    public var signaturesChecked = 0
    /// Files accepted without a signature (`--accept-unsigned`).
    public var unsignedAccepted: [String] = []
    /// What the comparison with the signed heads found, or why it could not be made.
    public var headNotes: [String] = []
    /// Everything found wrong.
    public var problems: [BackupProblem] = []
    /// True when nothing is wrong.
    public var passed: Bool { problems.isEmpty }
}

/// Verifies a store without restoring. First what the backup host could forge:
/// every backup's and tombstone's signature (by a key the configuration trusts) and
/// the files it covers, the catalogue's chain, each WAL file's signature, and the
/// store against the signed heads beside the journal's witness copies (a rollback).
/// Then the content: compares each backup's stored archive with the SHA-256 recorded
/// when it was written and opens it with the identity (or, with `readData`, decrypts
/// and decompresses every member and compares it with the manifest), checks the
/// manifests and trees, decrypts every WAL segment against its signed SHA-256, and
/// looks for gaps in the WAL.
public struct BackupVerifier: Sendable {
    /// The store.
    public let store: String
    /// The identities that decrypt it.
    public let identities: [any AgeUnwrapping]
    /// The keys whose signatures are accepted.
    public let trust: BackupTrust
    /// The directories holding the store's signed head (the journal's witness directories).
    public let headDirectories: [String]

    /// A verifier of `store`.
    public init(store: String, identities: [any AgeUnwrapping], trust: BackupTrust, headDirectories: [String] = []) {
        self.store = store
        self.identities = identities
        self.trust = trust
        self.headDirectories = headDirectories
    }

    /// Verifies the newest backup (or all with `all`) and the whole WAL archive;
    /// `readData` reads every member of the backups checked.
    public func verify(all: Bool, readData: Bool = false) -> BackupVerification {
        var report = BackupVerification()
        report.readData = readData
        func problem(_ subject: String, _ message: String) { report.problems.append(BackupProblem(subject: subject, message: message)) }
        let catalogue = BackupCatalogue(store: store)
        let audit = catalogue.audit(trust: trust)
        report.problems += audit.failures.map(BackupProblem.init)
        report.unsignedAccepted += audit.unsignedAccepted
        report.signaturesChecked += audit.signatures.count + audit.pruned.filter { $0.signature != nil }.count
        let summaries = audit.trusted
        if audit.summaries.isEmpty { problem("catalogue", "the store holds no backup") }
        let present = Dictionary(summaries.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        // Without --all: the newest backup and those it needs (its base, the holders of its files).
        var selected = all ? summaries : Array(summaries.suffix(1))
        if !all, let newest = summaries.last { selected = newest.needs.compactMap { present[$0] }.sorted { $0.id < $1.id } + selected }
        // Each backup archive and each WAL file is an independent check: they run on
        // every core, backups first (the longest), and are reported in this order.
        let archive = WALArchive(store: store)
        // The push log before the listing: wal-push logs a file only once it is in place
        // (and prune forgets it before removing it), so what the log names now must be
        // in a listing taken after — while PostgreSQL keeps archiving during the check.
        let pushed = (try? archive.pushedNames()) ?? []
        let names = (try? archive.names()) ?? []
        let tasks: [VerifyTask] = selected.map { .backup($0) } + names.map { .segment($0) }
        let results = ClaimedResults(count: tasks.count, initial: VerifyOutcome())
        let workers = min(max(1, ProcessInfo.processInfo.activeProcessorCount), max(1, tasks.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let index = results.claim() {
                switch tasks[index] {
                case .backup(let summary): results.store(index, checkBackup(summary, present: present, readData: readData))
                case .segment(let name): results.store(index, checkSegment(name, archive: archive))
                }
            }
        }
        var signed: [String] = []
        for (task, outcome) in zip(tasks, results.outcomes) {
            if case .segment(let name) = task, outcome.signature != nil { signed.append(name) }
        }
        let rules = WALSignatureRules(boundaries: catalogue.retirementBoundaries(audit, trust: trust), signed: signed)
        for (task, outcome) in zip(tasks, results.outcomes) {
            report.problems += outcome.problems
            switch task {
            case .backup:
                report.backupsChecked += 1
                report.membersChecked += outcome.members
                report.archivesCompared += outcome.archivesCompared
            case .segment(let name):
                guard outcome.problems.isEmpty else { continue }
                if let refused = rules.problem(name, signature: outcome.signature) {
                    report.problems.append(BackupProblem(refused))
                    continue
                }
                report.segmentsChecked += 1
                if outcome.signature != nil {
                    report.signaturesChecked += 1
                } else {
                    report.unsignedAccepted.append("wal/\(name)")
                }
            }
        }
        let heads = StoreHead.check(store: store, audit: audit, trust: trust, directories: headDirectories)
        report.problems += heads.failures.map(BackupProblem.init)
        report.headNotes = heads.notes
        let archived = Set(names)
        for name in pushed where !archived.contains(name) {
            problem("wal/\(name)", "archived (in the push log) but missing from the store")
        }
        if let oldest = summaries.first {
            var segment = oldest.walStart
            let newest = names.filter { $0.count == 24 && $0.prefix(8) == oldest.walStart.prefix(8) }.max() ?? oldest.walStart
            while segment <= newest {
                if !archived.contains(segment) { problem("wal/\(segment)", "missing: the WAL archive has a gap here") }
                guard let next = WALSegment.next(segment) else { break }
                segment = next
            }
        }
        return report
    }

    /// Checks one backup: its manifest against its summary, its tree and its base;
    /// then its archive, compared with the SHA-256 recorded when it was written, or
    /// (`readData`, or a backup from before that digest was recorded) read member by
    /// member against the manifest.
    func checkBackup(_ summary: BackupSummary, present: [String: BackupSummary], readData: Bool) -> VerifyOutcome {
        var outcome = VerifyOutcome()
        func problem(_ subject: String, _ message: String) { outcome.problems.append(BackupProblem(subject: subject, message: message)) }
        let catalogue = BackupCatalogue(store: store)
        let subject = "base/\(summary.id)"
        let manifest: BackupManifest
        do {
            manifest = try catalogue.manifest(summary.id, identities: identities)
        } catch {
            problem(subject, "manifest: \(error)")
            return outcome
        }
        if manifest.parentManifestSHA256 != summary.parentManifestSHA256 || manifest.walStart != summary.walStart || manifest.walEnd != summary.walEnd
            || manifest.base != summary.base || manifest.references != (summary.references ?? []) || manifest.kind != summary.kind
            || manifest.archiveSHA256 != summary.archiveSHA256
        {
            problem(subject, "the summary differs from the encrypted manifest")
        }
        if manifest.kind == BackupKind.incremental.rawValue {
            if let base = manifest.base, present[base]?.kind != BackupKind.full.rawValue {
                problem(subject, "it builds on the full backup \(base), which is not in the store: the cluster cannot be restored from it")
            } else if manifest.base == nil {
                problem(subject, "an incremental backup without a base")
            }
        }
        // The trees (the suite's, and the cluster's in direct copies): each file's content
        // is in this archive or in a backup still in the store, with the same hash.
        var manifests: [String: BackupManifest?] = [summary.id: manifest]
        let own = Dictionary(manifest.members.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        var heldMembers: [String: [String: ArchiveMember]] = [:]
        for entry in (manifest.tree ?? []) + (manifest.cluster ?? []) where entry.kind == "file" {
            let holder = entry.backup ?? ""
            let member: ArchiveMember?
            if holder == summary.id {
                member = own[entry.path]
            } else if present[holder] == nil {
                problem("\(subject)/\(entry.path)", "its content is in backup \(holder.isEmpty ? "(none recorded)" : holder), which is not in the store")
                continue
            } else {
                if manifests[holder] == nil { manifests[holder] = .some(try? catalogue.manifest(holder, identities: identities)) }
                guard let held = manifests[holder] ?? nil else {
                    problem("\(subject)/\(entry.path)", "its content is in backup \(holder), whose manifest cannot be read")
                    continue
                }
                if heldMembers[holder] == nil { heldMembers[holder] = Dictionary(held.members.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first }) }
                member = heldMembers[holder]?[entry.path]
            }
            if member?.sha256 != entry.sha256 || member?.size != entry.size {
                problem("\(subject)/\(entry.path)", "the tree's hash differs from what backup \(holder) holds")
            }
        }
        let archivePath = "\(catalogue.directory(summary.id))/data.tar.zst.age"
        if !readData, let recorded = manifest.archiveSHA256 {
            // The stored bytes are the ones written (whose members were hashed into the
            // manifest as they went in): the same file decrypts to the same members.
            do {
                let stored = try Self.storedDigest(archivePath, identities: identities)
                outcome.archivesCompared += 1
                if stored.size != summary.bytes || stored.sha256 != recorded {
                    problem(
                        "\(subject)/data.tar.zst.age",
                        "differs from the file written (\(stored.size) bytes, \(summary.bytes) recorded; SHA-256 \(stored.sha256 == recorded ? "equal" : "different")): the store is damaged")
                }
            } catch {
                problem("\(subject)/data.tar.zst.age", "\(error)")
            }
            return outcome
        }
        var expected = Dictionary(uniqueKeysWithValues: manifest.members.map { ($0.path, $0) })
        var order: [String] = []
        let problemsBefore = outcome.problems.count
        do {
            let reader = try EncryptedArchiveReader(path: archivePath, identities: identities)
            try reader.forEachMember { path, _, content in
                order.append(path)
                var hasher = SHA256Hasher()
                var size: Int64 = 0
                try content { block in
                    hasher.update(block)
                    size += Int64(block.byteCount)
                }
                let digest = hexDigest(hasher.finalize())
                outcome.members += 1
                guard let member = expected.removeValue(forKey: path) else { return problem("\(subject)/\(path)", "in the archive but not in the manifest") }
                if member.size != size || member.sha256 != digest { problem("\(subject)/\(path)", "differs from the manifest (size or SHA-256)") }
            }
        } catch {
            problem("\(subject)/data.tar.zst.age", "\(error)")
        }
        for path in expected.keys.sorted() { problem("\(subject)/\(path)", "in the manifest but missing from the archive") }
        // The frames, once the archive holds what the manifest lists (otherwise the
        // problem is that, and its frames would only repeat it).
        if outcome.problems.count == problemsBefore {
            for failure in Self.checkFrames(manifest.members, archiveOrder: order, archivePath: archivePath, identities: identities) {
                problem("\(subject)/data.tar.zst.age", failure)
            }
        }
        return outcome
    }

    /// Where a restore starts reading (``ArchiveMember/frame``). Along `archiveOrder`
    /// (the files as a whole read met them) the recorded frames never go back, and
    /// reading from each frame must meet first the file that, in that order, is the
    /// first the manifest places in it: then every file is met reading from its frame.
    /// A wrong offset would otherwise pass every other check and fail only at restore.
    /// Cheap: one age chunk and the first zstd block per frame.
    /// - Returns: what is wrong, one message per problem.
    static func checkFrames(_ members: [ArchiveMember], archiveOrder: [String], archivePath: String, identities: [any AgeUnwrapping]) -> [String] {
        let frames = Dictionary(members.compactMap { member in member.frame.map { (member.path, $0) } }, uniquingKeysWith: { first, _ in first })
        guard !frames.isEmpty else { return [] }  // written before frames were recorded: read from the start
        var failures: [String] = []
        var firsts: [(frame: Int64, path: String)] = []
        var previous: Int64 = -1
        for path in archiveOrder {
            guard let frame = frames[path] else { continue }
            if frame < previous { failures.append("the manifest places \(path) in frame \(frame), before the frame of the file ahead of it (\(previous))") }
            if frame != previous { firsts.append((frame, path)) }
            previous = max(previous, frame)
        }
        for (frame, expected) in firsts {
            do {
                var first: String?
                try EncryptedArchiveReader(path: archivePath, identities: identities, startingAt: frame).readEntries { entry, _ in
                    guard case .file = entry.kind else { return true }
                    first = entry.path
                    return false
                }
                if first != expected {
                    failures.append("reading from the manifest's frame \(frame) meets \(first ?? "no file") first, not \(expected): a restore from it would fail")
                }
            } catch {
                failures.append("the manifest's frame \(frame) (of \(expected)) cannot be read from: \(error)")
            }
        }
        return failures
    }

    /// SHA-256 and size of the stored file at `path`, read once; its first block goes
    /// through the age decryptor, so an identity that cannot open it (or a damaged
    /// header) is reported as such.
    static func storedDigest(_ path: String, identities: [any AgeUnwrapping]) throws -> (sha256: String, size: Int64) {
        var decryptor: AgeDecryptor? = AgeDecryptor(identities: identities)
        let stored = try FileBlocks.sha256(ofFile: path) { block in
            guard decryptor != nil else { return }
            _ = try decryptor!.update(block)
            decryptor = nil
        }
        return (stored.sha256, stored.size)
    }

    /// Checks one WAL file's signature, decrypts it and compares it with its signed
    /// SHA-256 (in memory only: verify never writes WAL in clear).
    func checkSegment(_ name: String, archive: WALArchive) -> VerifyOutcome {
        var outcome = VerifyOutcome()
        do {
            if let checked = try archive.check(name: name, identities: identities, trust: trust) {
                outcome.signature = checked.signature
            } else {
                outcome.problems.append(BackupProblem(subject: "wal/\(name)", message: "vanished during the check"))
            }
        } catch let error as BackupIntegrityError {
            outcome.problems.append(BackupProblem(error))
        } catch {
            outcome.problems.append(BackupProblem(subject: "wal/\(name).tar.zst.age", message: "\(error)"))
        }
        return outcome
    }
}

enum VerifyTask: Sendable {
    case backup(BackupSummary)
    case segment(String)
}

struct VerifyOutcome: Sendable {
    var problems: [BackupProblem] = []
    var members = 0
    var archivesCompared = 0
    /// A WAL file's checked signature.
    var signature: BackupTrust.Authenticated?
}

