import Archive
public import Age
import Cryptography
import Foundation

/// One problem `verify` found, named precisely.
public struct BackupProblem: Sendable, Codable, Hashable, CustomStringConvertible {
    /// What is concerned: `base/<id>`, `base/<id>/<member>`, `wal/<segment>`, `catalogue`.
    public let subject: String
    /// What is wrong.
    public let message: String
    public var description: String { "\(subject): \(message)" }
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
    /// Everything found wrong.
    public var problems: [BackupProblem] = []
    /// True when nothing is wrong.
    public var passed: Bool { problems.isEmpty }
}

/// Verifies a store without restoring: compares each backup's stored archive with
/// the SHA-256 recorded when it was written and opens it with the identity (or, with
/// `readData`, decrypts and decompresses every member and compares it with the
/// manifest), checks the manifests and their hash chain, decrypts every WAL segment
/// against its digest, and looks for gaps in the WAL.
public struct BackupVerifier: Sendable {
    /// The store.
    public let store: String
    /// The identities that decrypt it.
    public let identities: [any AgeUnwrapping]

    /// A verifier of `store`.
    public init(store: String, identities: [any AgeUnwrapping]) {
        self.store = store
        self.identities = identities
    }

    /// Verifies the newest backup (or all with `all`) and the whole WAL archive;
    /// `readData` reads every member of the backups checked.
    public func verify(all: Bool, readData: Bool = false) -> BackupVerification {
        var report = BackupVerification()
        report.readData = readData
        func problem(_ subject: String, _ message: String) { report.problems.append(BackupProblem(subject: subject, message: message)) }
        let catalogue = BackupCatalogue(store: store)
        let summaries: [BackupSummary]
        do {
            summaries = try catalogue.summaries()
        } catch {
            problem("catalogue", "\(error)")
            return report
        }
        if summaries.isEmpty { problem("catalogue", "the store holds no backup") }
        // The chain: each backup names its predecessor and that one's manifest hash;
        // pruned backups stay in it as tombstones (base/pruned.log).
        let pruned: [PrunedBackup]
        do {
            pruned = try catalogue.pruned()
        } catch {
            problem("catalogue", "\(error)")
            pruned = []
        }
        let links = (summaries.map { ($0.id, $0.parent, $0.parentManifestSHA256, $0.manifestSHA256, false) }
            + pruned.map { ($0.id, $0.parent, $0.parentManifestSHA256, $0.manifestSHA256, true) }).sorted { $0.0 < $1.0 }
        for (index, link) in links.enumerated() where index > 0 {
            let previous = links[index - 1]
            if link.1 != previous.0 || link.2 != previous.3 {
                problem(
                    "\(link.4 ? "pruned" : "base")/\(link.0)",
                    "its parent is recorded as \(link.1 ?? "none"), but the catalogue's previous backup is \(previous.0) (a backup was removed or replaced)")
            }
        }
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
        let results = VerifyResults(count: tasks.count)
        let workers = min(max(1, ProcessInfo.processInfo.activeProcessorCount), max(1, tasks.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let index = results.claim() {
                switch tasks[index] {
                case .backup(let summary): results.store(index, checkBackup(summary, present: present, readData: readData))
                case .segment(let name): results.store(index, checkSegment(name, archive: archive))
                }
            }
        }
        for (task, outcome) in zip(tasks, results.outcomes) {
            report.problems += outcome.problems
            switch task {
            case .backup:
                report.backupsChecked += 1
                report.membersChecked += outcome.members
                report.archivesCompared += outcome.archivesCompared
            case .segment:
                if outcome.problems.isEmpty { report.segmentsChecked += 1 }
            }
        }
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
        // The tree: each file's content is in this archive or in a backup still in the store, with the same hash.
        var manifests: [String: BackupManifest?] = [summary.id: manifest]
        let own = Dictionary(manifest.members.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        for entry in manifest.tree ?? [] where entry.kind == "file" {
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
                member = held.members.first { $0.path == entry.path }
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
        do {
            let reader = try EncryptedArchiveReader(path: archivePath, identities: identities)
            try reader.forEachMember { path, _, content in
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
        return outcome
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

    /// Decrypts one WAL file and compares it with its digest (in memory only: verify never writes WAL in clear).
    func checkSegment(_ name: String, archive: WALArchive) -> VerifyOutcome {
        var outcome = VerifyOutcome()
        do {
            if try !archive.check(name: name, identities: identities) {
                outcome.problems.append(BackupProblem(subject: "wal/\(name)", message: "vanished during the check"))
            }
        } catch {
            outcome.problems.append(BackupProblem(subject: "wal/\(name)", message: "\(error)"))
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
}

/// The verify tasks' shared state: the next task to claim and each one's outcome.
/// `@unchecked Sendable`: `next` and `outcomes` are written under `lock` while the
/// tasks run; `outcomes` is read only after `concurrentPerform` has returned, when
/// every task has ended.
final class VerifyResults: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private let count: Int
    private(set) var outcomes: [VerifyOutcome]

    init(count: Int) {
        self.count = count
        outcomes = Array(repeating: VerifyOutcome(), count: count)
    }

    func claim() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < count else { return nil }
        next += 1
        return next - 1
    }

    func store(_ index: Int, _ outcome: VerifyOutcome) {
        lock.lock()
        outcomes[index] = outcome
        lock.unlock()
    }
}
