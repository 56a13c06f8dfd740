import Archive
import Cryptography
import Foundation
import Journal

/// The store's catalogue after every signature was checked: what `list`, `verify`,
/// `restore` and `drill` trust, and everything they refuse.
public struct CatalogueAudit: Sendable {
    /// Every backup with a summary, in id (time) order, trusted or not.
    public internal(set) var summaries: [BackupSummary] = []
    /// The checked signature of each backup whose signature holds, by id.
    public internal(set) var signatures: [String: BackupTrust.Authenticated] = [:]
    /// The tombstones of pruned backups, in id order.
    public internal(set) var pruned: [PrunedBackup] = []
    /// Files accepted without a signature (`--accept-unsigned`), relative to the store.
    public internal(set) var unsignedAccepted: [String] = []
    /// Everything that cannot be trusted, each naming its file.
    public internal(set) var failures: [BackupIntegrityError] = []
    /// Backups that are signed as they should be, or accepted unsigned.
    public internal(set) var usable: Set<String> = []

    /// The usable backups, in id order.
    public var trusted: [BackupSummary] { summaries.filter { usable.contains($0.id) } }

    /// Throws the first failure (with how many there are), if any.
    /// - Throws: ``BackupIntegrityError``.
    public func requireIntact() throws {
        guard let first = failures.first else { return }
        let more = failures.count > 1 ? " (and \(failures.count - 1) more problems: osmosectl backup verify --all lists them)" : ""
        throw BackupIntegrityError(first.code, first.subject, first.message + more)
    }
}

extension BackupCatalogue {
    /// Checks every backup's signature (`base/<id>/backup.sig`) and the files it
    /// covers that can be checked without a key (the summary, the encrypted
    /// manifest), every tombstone's signature, unsigned files against `trust`'s
    /// `acceptUnsigned` (only those older than everything signed), and the chain of
    /// parent links through the tombstones.
    public func audit(trust: BackupTrust) -> CatalogueAudit {
        var audit = CatalogueAudit()
        let base = "\(store)/base"
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: base)) ?? []).sorted()
        var unsigned: [String] = []
        for id in names where !id.hasSuffix(".partial") && !id.hasSuffix(".pruning") {
            let path = "\(base)/\(id)/summary.json"
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            let summary: BackupSummary
            do {
                summary = try JSONDecoder().decode(BackupSummary.self, from: data)
            } catch {
                audit.failures.append(BackupIntegrityError(.mismatch, "base/\(id)/summary.json", "is not a backup summary: \(error)"))
                continue
            }
            audit.summaries.append(summary)
            guard summary.id == id else {
                audit.failures.append(BackupIntegrityError(.mismatch, "base/\(id)/summary.json", "describes backup \(summary.id), not the directory's \(id)"))
                continue
            }
            guard let note = FileManager.default.contents(atPath: "\(base)/\(id)/\(Self.signatureName)") else {
                unsigned.append(id)
                continue
            }
            do {
                let authenticated = try trust.authenticate(
                    String(decoding: note, as: UTF8.self), file: "base/\(id)/\(Self.signatureName)", kind: .backup, subject: id)
                try Self.checkSigned(authenticated.statement, file: "summary.json", bytes: Array(data), id: id)
                let manifest = FileManager.default.contents(atPath: "\(base)/\(id)/manifest.json.age").map(Array.init) ?? []
                try Self.checkSigned(authenticated.statement, file: "manifest.json.age", bytes: manifest, id: id)
                guard authenticated.statement.value("manifest-sha256") == summary.manifestSHA256 else {
                    throw BackupIntegrityError(.mismatch, "base/\(id)/summary.json", "its manifest hash differs from the one signed")
                }
                audit.signatures[id] = authenticated
                audit.usable.insert(id)
            } catch let error as BackupIntegrityError {
                audit.failures.append(error)
            } catch {
                audit.failures.append(BackupIntegrityError(.badSignature, "base/\(id)/\(Self.signatureName)", "\(error)"))
            }
        }
        do {
            audit.pruned = try pruned()
        } catch {
            audit.failures.append(BackupIntegrityError(.mismatch, "base/pruned.log", "\(error)"))
        }
        var unsignedTombstones: [String] = []
        for tombstone in audit.pruned {
            let file = "base/pruned.log (\(tombstone.id))"
            guard let note = tombstone.signature else {
                unsignedTombstones.append(tombstone.id)
                continue
            }
            do {
                let authenticated = try trust.authenticate(note, file: file, kind: .pruned, subject: tombstone.id)
                guard tombstone.matches(authenticated.statement) else {
                    throw BackupIntegrityError(.mismatch, file, "its links differ from the ones its signature states: edited")
                }
            } catch let error as BackupIntegrityError {
                audit.failures.append(error)
            } catch {
                audit.failures.append(BackupIntegrityError(.badSignature, file, "\(error)"))
            }
        }
        // Unsigned: a store from before signing, accepted only on request, and only for
        // backups older than the oldest signed one (nothing added since signing began; a
        // tombstone is positioned by its backup: one signed since was pruned with a signature).
        let oldestSigned = audit.signatures.keys.min()
        func unsignedRule(_ id: String, file: String, what: String) -> Bool {
            guard trust.acceptUnsigned else {
                audit.failures.append(
                    BackupIntegrityError(
                        .unsigned, file, "missing: \(what) is unsigned (written before signing, or its signature was removed); refused without --accept-unsigned"))
                return false
            }
            if let oldestSigned, id > oldestSigned {
                audit.failures.append(
                    BackupIntegrityError(
                        .unsigned, file, "missing: \(what) is unsigned although the older backup \(oldestSigned) is signed: added since; refused even with --accept-unsigned"))
                return false
            }
            return true
        }
        for id in unsigned where unsignedRule(id, file: "base/\(id)/\(Self.signatureName)", what: "backup \(id)") {
            audit.unsignedAccepted.append("base/\(id)")
            audit.usable.insert(id)
        }
        for id in unsignedTombstones where unsignedRule(id, file: "base/pruned.log (\(id))", what: "the tombstone of \(id)") {
            audit.unsignedAccepted.append("base/pruned.log (\(id))")
        }
        // The chain: each backup names its predecessor and that one's manifest hash;
        // pruned backups stay in it as tombstones.
        let links = (audit.summaries.map { ($0.id, $0.parent, $0.parentManifestSHA256, $0.manifestSHA256, "base/\($0.id)/summary.json") }
            + audit.pruned.map { ($0.id, $0.parent, $0.parentManifestSHA256, $0.manifestSHA256, "base/pruned.log (\($0.id))") }).sorted { $0.0 < $1.0 }
        for (index, link) in links.enumerated() where index > 0 {
            let previous = links[index - 1]
            if link.1 != previous.0 || link.2 != previous.3 {
                audit.failures.append(
                    BackupIntegrityError(
                        .chain, link.4,
                        "its parent is recorded as \(link.1 ?? "none"), but the catalogue's previous backup is \(previous.0) (a backup was removed, added or replaced)"))
            }
        }
        return audit
    }

    /// Refuses `bytes` (the content of `file` in backup `id`) unless `statement` signs them.
    static func checkSigned(_ statement: BackupStatement, file: String, bytes: [UInt8], id: String) throws {
        guard let signed = statement.file(file) else {
            throw BackupIntegrityError(.mismatch, "base/\(id)/\(signatureName)", "does not cover \(file)")
        }
        guard signed.bytes == Int64(bytes.count), signed.sha256 == hexSHA256(bytes) else {
            throw BackupIntegrityError(
                .mismatch, "base/\(id)/\(file)", "differs from what base/\(id)/\(signatureName) signs (SHA-256 or size): edited or replaced after the backup")
        }
    }

    /// For each retired key, the first WAL segment it may no longer sign alone: where
    /// the oldest backup taken after its retirement, and signed by a live key, starts.
    func retirementBoundaries(_ audit: CatalogueAudit, trust: BackupTrust) -> [NoteVerifierKey: String] {
        var boundaries: [NoteVerifierKey: String] = [:]
        for key in trust.keys {
            guard let retiredAt = key.retiredAt else { continue }
            let after = audit.summaries.filter { summary in
                guard let signature = audit.signatures[summary.id], !signature.onlyRetired, let date = BackupSummary.idDate(summary.id) else { return false }
                return date >= retiredAt
            }
            if let first = after.min(by: { $0.walStart < $1.walStart }) { boundaries[key.verifier] = first.walStart }
        }
        return boundaries
    }
}

/// What the WAL files' signatures say, across the archive: the rules that need a
/// view of the whole store (`verify`, `restore`), beyond each file's own signature.
struct WALSignatureRules {
    /// The first segment each retired key may no longer sign alone.
    let boundaries: [NoteVerifierKey: String]
    /// The oldest signed WAL file: unsigned ones after it are not accepted.
    let oldestSigned: String?

    /// The rules for an archive whose signed files are `signed`.
    init(boundaries: [NoteVerifierKey: String], signed: [String]) {
        self.boundaries = boundaries
        oldestSigned = signed.map { String($0.prefix(24)) }.min()
    }

    /// The problem with WAL file `name`, given its checked signature (nil: unsigned, accepted by trust).
    func problem(_ name: String, signature: BackupTrust.Authenticated?) -> BackupIntegrityError? {
        guard let signature else {
            if let oldestSigned, String(name.prefix(24)) > oldestSigned {
                return BackupIntegrityError(
                    .unsigned, "wal/\(name).sig",
                    "missing: wal/\(name).tar.zst.age is unsigned although the older wal/\(oldestSigned) is signed: added since; refused even with --accept-unsigned")
            }
            return nil
        }
        guard signature.onlyRetired else { return nil }
        let allowed = signature.signedBy.contains { key in boundaries[key.verifier].map { String(name.prefix(24)) < $0 } ?? true }
        guard !allowed else { return nil }
        let keys = signature.signedBy.map { "\($0.verifier.name)+\(String(format: "%08x", $0.verifier.keyID))" }.joined(separator: ", ")
        return BackupIntegrityError(
            .retiredKey, "wal/\(name).sig",
            "signed only by retired key \(keys), for a segment from after its retirement (a backup signed by a live key starts before it): refused")
    }
}

extension WALArchive {
    /// The names of the WAL files that have a signature file.
    func signedNames() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".sig") }.map { String($0.dropLast(4)) }
    }

    /// Checks the signatures of `names` and, without decrypting, that each stored
    /// file is the one signed (SHA-256 and size), on every core: what a restore
    /// checks of the WAL it will replay before writing anything.
    /// - Returns: the problems, in name order, and the files accepted unsigned.
    func audit(_ names: [String], trust: BackupTrust, rules: WALSignatureRules) -> (failures: [BackupIntegrityError], unsignedAccepted: [String]) {
        let results = ClaimedResults(count: names.count, initial: AuditOutcome())
        let workers = min(max(1, ProcessInfo.processInfo.activeProcessorCount), max(1, names.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while let index = results.claim() {
                let name = names[index]
                do {
                    let signature = try authenticate(name, trust: trust)
                    if let problem = rules.problem(name, signature: signature) { throw problem }
                    if let signature {
                        guard let signed = signature.statement.file("\(name).tar.zst.age") else {
                            throw BackupIntegrityError(.mismatch, "wal/\(name).sig", "does not cover wal/\(name).tar.zst.age")
                        }
                        let stored = try FileBlocks.sha256(ofFile: archivePath(name))
                        guard stored.sha256 == signed.sha256, stored.size == signed.bytes else {
                            throw BackupIntegrityError(
                                .mismatch, "wal/\(name).tar.zst.age", "differs from what wal/\(name).sig signs (SHA-256 or size): replaced or damaged")
                        }
                        results.store(index, AuditOutcome(failure: nil, unsigned: false))
                    } else {
                        results.store(index, AuditOutcome(failure: nil, unsigned: true))
                    }
                } catch let error as BackupIntegrityError {
                    results.store(index, AuditOutcome(failure: error, unsigned: false))
                } catch {
                    results.store(index, AuditOutcome(failure: BackupIntegrityError(.mismatch, "wal/\(name).tar.zst.age", "cannot be read: \(error)"), unsigned: false))
                }
            }
        }
        let failures = results.outcomes.compactMap(\.failure)
        let unsigned = zip(names, results.outcomes).filter(\.1.unsigned).map { "wal/\($0.0)" }
        return (failures, unsigned)
    }
}

/// What the WAL audit found of one file.
struct AuditOutcome {
    var failure: BackupIntegrityError?
    var unsigned = false
}
