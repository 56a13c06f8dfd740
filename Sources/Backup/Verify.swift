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
    /// Backups whose every member was decrypted, decompressed and hashed.
    public var backupsChecked = 0
    /// Members checked.
    public var membersChecked = 0
    /// WAL segments decrypted and compared with their digest.
    public var segmentsChecked = 0
    /// Everything found wrong.
    public var problems: [BackupProblem] = []
    /// True when nothing is wrong.
    public var passed: Bool { problems.isEmpty }
}

/// Verifies a store without restoring: decrypts and decompresses every member of
/// each backup and compares it with the manifest, checks the manifests' hash chain,
/// decrypts every WAL segment against its digest, and looks for gaps in the WAL.
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

    /// Verifies the newest backup (or all with `all`) and the whole WAL archive.
    public func verify(all: Bool) -> BackupVerification {
        var report = BackupVerification()
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
        // The chain: each summary names its predecessor and that one's manifest hash.
        for (index, summary) in summaries.enumerated() where index > 0 {
            let previous = summaries[index - 1]
            if summary.parent != previous.id || summary.parentManifestSHA256 != previous.manifestSHA256 {
                problem("base/\(summary.id)", "its parent is recorded as \(summary.parent ?? "none"), but the catalogue's previous backup is \(previous.id) (a backup was removed or replaced)")
            }
        }
        for summary in all ? summaries : Array(summaries.suffix(1)) {
            let subject = "base/\(summary.id)"
            let manifest: BackupManifest
            do {
                manifest = try catalogue.manifest(summary.id, identities: identities)
            } catch {
                problem(subject, "manifest: \(error)")
                continue
            }
            if manifest.parentManifestSHA256 != summary.parentManifestSHA256 || manifest.walStart != summary.walStart || manifest.walEnd != summary.walEnd {
                problem(subject, "the summary differs from the encrypted manifest")
            }
            var expected = Dictionary(uniqueKeysWithValues: manifest.members.map { ($0.path, $0) })
            do {
                let reader = try EncryptedArchiveReader(path: "\(catalogue.directory(summary.id))/data.tar.zst.age", identities: identities)
                try reader.forEachMember { path, _, next in
                    var hasher = SHA256Hasher()
                    var size: Int64 = 0
                    while let block = try next() {
                        hasher.update(block)
                        size += Int64(block.count)
                    }
                    let digest = hasher.finalize().map { String(format: "%02x", $0) }.joined()
                    report.membersChecked += 1
                    guard let member = expected.removeValue(forKey: path) else { return problem("\(subject)/\(path)", "in the archive but not in the manifest") }
                    if member.size != size || member.sha256 != digest { problem("\(subject)/\(path)", "differs from the manifest (size or SHA-256)") }
                }
            } catch {
                problem("\(subject)/data.tar.zst.age", "\(error)")
            }
            for path in expected.keys.sorted() { problem("\(subject)/\(path)", "in the manifest but missing from the archive") }
            report.backupsChecked += 1
        }
        // WAL: every segment decrypts to its digest; no gap from the oldest base on.
        let archive = WALArchive(store: store)
        let names = (try? archive.names()) ?? []
        for name in names {
            // Decrypted in memory only: verify never writes WAL in clear.
            do {
                if try archive.read(name: name, identities: identities) == nil { problem("wal/\(name)", "vanished during the check") }
                report.segmentsChecked += 1
            } catch {
                problem("wal/\(name)", "\(error)")
            }
        }
        let present = Set(names)
        for name in ((try? archive.pushedNames()) ?? []) where !present.contains(name) {
            problem("wal/\(name)", "archived (in the push log) but missing from the store")
        }
        if let oldest = summaries.first {
            var segment = oldest.walStart
            let newest = names.filter { $0.count == 24 && $0.prefix(8) == oldest.walStart.prefix(8) }.max() ?? oldest.walStart
            while segment <= newest {
                if !present.contains(segment) { problem("wal/\(segment)", "missing: the WAL archive has a gap here") }
                guard let next = WALSegment.next(segment) else { break }
                segment = next
            }
        }
        return report
    }
}
