import Age
import Archive
import Backup
import Cryptography
import Foundation
import Journal
import Testing
import TestSupport

/// What an attacker on the backup host can do with the store's public keys, and
/// how verify, restore and wal-fetch refuse it, naming the file.
@Suite("Signed backup store")
struct SignedStoreTests {
    /// A store with a full backup, WAL around it, two incrementals.
    func populate(_ fixture: SignedStore) throws {
        try fixture.pushSegments(3)
        try fixture.fullBackup()
        try fixture.pushSegments(2)
        try fixture.incremental()
        try fixture.pushSegments(1)
        try fixture.incremental()
        try fixture.pushSegments(1)
    }

    @Test("Every file the store holds is signed: verify (with --read-data), the catalogue, restore's checks and wal-fetch accept what the suite wrote")
    func signedStoreVerifies() async throws {
        try await SignedStore.with("signed") { fixture in
            try populate(fixture)
            let names = try fixture.wal.names()
            for name in names {
                #expect(FileManager.default.fileExists(atPath: "\(fixture.store)/wal/\(name).sig"), "\(name) is signed")
                #expect(!FileManager.default.fileExists(atPath: "\(fixture.store)/wal/\(name).sha256"), "the digest is in the signature now")
            }
            for summary in try fixture.catalogue.summaries() {
                let note = try fixture.text("base/\(summary.id)/backup.sig")
                let statement = try fixture.trust.authenticate(note, file: "x", kind: .backup, subject: summary.id).statement
                #expect(statement.file("data.tar.zst.age")?.sha256 == summary.archiveSHA256)
                #expect(statement.value("parent") == summary.parent)
            }
            let report = BackupVerifier(store: fixture.store, identities: [fixture.identity], trust: fixture.trust).verify(all: true, readData: true)
            #expect(report.passed, "\(report.problems)")
            #expect(report.backupsChecked == 3 && report.segmentsChecked == names.count && report.signaturesChecked == 3 + names.count)
            #expect(report.unsignedAccepted.isEmpty)
            let audit = fixture.catalogue.audit(trust: fixture.trust)
            #expect(audit.failures.isEmpty && audit.trusted.count == 3)
            let plan = try BackupRestore(store: fixture.store, identities: [fixture.identity], trust: fixture.trust).prepare(.latest)
            #expect(plan.unsignedAccepted.isEmpty && plan.walTo == names.last)
            for name in names {
                #expect(try fixture.wal.fetch(name: name, to: "\(fixture.root)/fetched", identities: [fixture.identity], trust: fixture.trust))
                #expect(FileManager.default.contents(atPath: "\(fixture.root)/fetched") == FileManager.default.contents(atPath: "\(fixture.root)/segments/\(name)"))
                unlink("\(fixture.root)/fetched")
            }
        }
    }

    /// One way the backup host can forge, and the file that gives it away.
    enum Forgery: String, CaseIterable, Sendable {
        /// A WAL segment replaced by one of the attacker's choosing, encrypted to the store's recipient, its push-log line rewritten.
        case walReplaced
        /// The same, its signature removed and an old-style digest file written for it.
        case walReplacedUnsigned
        /// A WAL segment replaced and signed with a second key the configuration does not list.
        case walSecondKey
        /// A new backup appended at the head, with a correct hash chain, signed by a second key.
        case backupAppended
        /// The same, unsigned.
        case backupAppendedUnsigned
        /// A summary edited (its WAL range).
        case summaryEdited
        /// A backup removed, and a tombstone forged in its place so that the chain still holds.
        case tombstoneForged
    }

    @Test("Each forgery is refused by verify, by restore before anything is written, and (for WAL) by wal-fetch, the file named", arguments: Forgery.allCases)
    func forgeriesAreRefused(_ forgery: Forgery) async throws {
        try await SignedStore.with("forged") { fixture in
            try populate(fixture)
            let attacker = try BackupSigner(keys: [try NoteSignerKey.generate(name: "test.osmose.example/backup")])
            let summaries = try fixture.catalogue.summaries()
            let segment = SignedStore.segmentName(5)  // replayed by every restore: after the full backup's start
            let forged = fixture.generator.bytes(count: 65_536)
            let expected: String
            switch forgery {
            case .walReplaced, .walReplacedUnsigned:
                try fixture.forgeSegment(segment, content: forged)
                let log = try fixture.text("wal/pushed.log").split(separator: "\n").map { line in
                    line.hasPrefix(segment) ? "\(segment) \(hexDigest(SHA256.hash(forged)))" : String(line)
                }
                try fixture.write("wal/pushed.log", log.joined(separator: "\n") + "\n")
                if forgery == .walReplaced {
                    expected = "wal/\(segment).tar.zst.age"
                } else {
                    unlink("\(fixture.store)/wal/\(segment).sig")
                    try fixture.write("wal/\(segment).sha256", hexDigest(SHA256.hash(forged)) + "\n")
                    expected = "wal/\(segment).sig"
                }
            case .walSecondKey:
                try fixture.forgeSegment(segment, content: forged)
                let file = try FileBlocks.sha256(ofFile: "\(fixture.store)/wal/\(segment).tar.zst.age")
                let statement = try BackupStatement(
                    kind: .wal, subject: segment,
                    fields: [
                        ("sha256", hexDigest(SHA256.hash(forged))), ("file", "\(file.sha256) \(file.size) \(segment).tar.zst.age"),
                        ("signed", SignatureTime.format(Date())),
                    ])
                try fixture.write("wal/\(segment).sig", try attacker.sign(statement))
                expected = "wal/\(segment).sig"
            case .backupAppended, .backupAppendedUnsigned:
                // The attacker knows the public verifier key: the new backup chains to the newest genuine one.
                let appended = try fixture.fullBackup(signer: attacker, trust: fixture.trust)
                #expect(appended.parent == summaries.last?.id && appended.parentManifestSHA256 == summaries.last?.manifestSHA256, "a correct hash chain")
                if forgery == .backupAppendedUnsigned { unlink("\(fixture.catalogue.directory(appended.id))/backup.sig") }
                expected = "base/\(appended.id)/backup.sig"
            case .summaryEdited:
                let id = summaries[1].id
                var summary = summaries[1]
                summary.finished = "2000-01-01T00:00:00.000Z"
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
                try encoder.encode(summary).write(to: URL(fileURLWithPath: "\(fixture.catalogue.directory(id))/summary.json"))
                expected = "base/\(id)/summary.json"
            case .tombstoneForged:
                let removed = summaries[1]
                try FileManager.default.removeItem(atPath: fixture.catalogue.directory(removed.id))
                var tombstone = PrunedBackup(summary: removed, prunedAt: SignatureTime.format(Date()))
                tombstone.signature = try attacker.sign(try tombstone.statement())
                let line = String(decoding: try JSONEncoder().encode(tombstone), as: UTF8.self)
                try fixture.write("base/pruned.log", line + "\n")
                expected = "base/pruned.log (\(removed.id))"
            }

            let report = BackupVerifier(store: fixture.store, identities: [fixture.identity], trust: fixture.trust).verify(all: true)
            #expect(!report.passed && report.problems.names(expected), "\(forgery): \(report.problems)")
            let restore = BackupRestore(store: fixture.store, identities: [fixture.identity], trust: fixture.trust)
            do {
                _ = try restore.prepare(.latest)
                Issue.record("\(forgery): restore accepted the store")
            } catch let error as BackupIntegrityError {
                #expect(error.subject == expected, "\(forgery): \(error)")
            }
            // Even --accept-unsigned does not take what was added after signing began, or what is signed wrongly.
            let lenient = BackupTrust(keys: fixture.trust.keys, acceptUnsigned: true)
            #expect(throws: BackupIntegrityError.self) { try BackupRestore(store: fixture.store, identities: [fixture.identity], trust: lenient).prepare(.latest) }
            let target = "\(fixture.root)/fetched"
            if [.walReplaced, .walReplacedUnsigned, .walSecondKey].contains(forgery) {
                do {
                    _ = try fixture.wal.fetch(name: segment, to: target, identities: [fixture.identity], trust: fixture.trust)
                    Issue.record("\(forgery): wal-fetch wrote the segment")
                } catch let error as BackupIntegrityError {
                    #expect(error.subject == expected, "\(forgery): \(error)")
                }
                #expect(!FileManager.default.fileExists(atPath: target), "nothing written")
                #expect(
                    try fixture.wal.fetch(name: SignedStore.segmentName(4), to: target, identities: [fixture.identity], trust: fixture.trust),
                    "the other segments still come back")
            }
        }
    }

    @Test("Rollover: backups and WAL signed by the old key, by both, then by the new one verify with both keys configured; a retired key's later signature is refused")
    func rollover() async throws {
        try await SignedStore.with("rollover") { fixture in
            let old = fixture.key
            let new = try NoteSignerKey.generate(name: "test.osmose.example/backup")
            let both = BackupTrust(keys: [.init(verifier: old.verifierKey), .init(verifier: new.verifierKey)])
            try fixture.pushSegments(2)
            try fixture.fullBackup()
            try fixture.pushSegments(1)
            let coSigning = try BackupSigner(keys: [old, new])
            try fixture.pushSegments(1, signer: coSigning)
            try fixture.incremental(signer: coSigning, trust: both)
            try await Task.sleep(for: .milliseconds(20))
            let retiredAt = Date()
            try await Task.sleep(for: .milliseconds(20))
            let newOnly = try BackupSigner(keys: [new])
            try fixture.pushSegments(1, signer: newOnly)
            let full = try fixture.fullBackup(signer: newOnly, trust: both)
            try fixture.pushSegments(1, signer: newOnly)
            try fixture.incremental(signer: newOnly, trust: both)

            func verified(_ trust: BackupTrust) -> BackupVerification {
                BackupVerifier(store: fixture.store, identities: [fixture.identity], trust: trust).verify(all: true)
            }
            let withBoth = verified(both)
            #expect(withBoth.passed && withBoth.backupsChecked == 4, "\(withBoth.problems)")
            let oldOnly = verified(fixture.trust)
            #expect(oldOnly.problems.names("base/\(full.id)/backup.sig"), "a verifier that was not given the new key refuses what only it signed")
            let retired = BackupTrust(keys: [.init(verifier: old.verifierKey, retiredAt: retiredAt), .init(verifier: new.verifierKey)])
            let afterRetirement = verified(retired)
            #expect(afterRetirement.passed, "what the old key signed alone predates its retirement: \(afterRetirement.problems)")
            _ = try BackupRestore(store: fixture.store, identities: [fixture.identity], trust: retired).prepare(.latest)

            // A thief with the retired key: a backup appended now, and a WAL segment, signed by it alone.
            let thief = try BackupSigner(keys: [old])
            let stolenSegment = try fixture.pushSegments(1, signer: thief)[0]
            do {
                _ = try fixture.wal.fetch(name: stolenSegment, to: "\(fixture.root)/fetched", identities: [fixture.identity], trust: retired)
                Issue.record("wal-fetch accepted a segment signed by a retired key after its retirement")
            } catch let error as BackupIntegrityError {
                #expect(error.code == .retiredKey && error.subject == "wal/\(stolenSegment).sig", "\(error)")
            }
            let stolen = try fixture.fullBackup(signer: thief, trust: both)
            let refused = verified(retired)
            #expect(refused.problems.names("base/\(stolen.id)/backup.sig") && refused.problems.names("wal/\(stolenSegment).sig"), "\(refused.problems)")
            #expect(throws: BackupIntegrityError.self) { try BackupRestore(store: fixture.store, identities: [fixture.identity], trust: retired).prepare(.latest) }
            // Backdated: the thief's signature claims a moment before the retirement, for a segment after
            // the first backup the new key signed alone: verify and restore still refuse it.
            try FileManager.default.removeItem(atPath: fixture.catalogue.directory(stolen.id))
            let file = try FileBlocks.sha256(ofFile: "\(fixture.store)/wal/\(stolenSegment).tar.zst.age")
            let backdated = try BackupStatement(
                kind: .wal, subject: stolenSegment,
                fields: [
                    ("sha256", hexDigest(SHA256.hash(Array(try Data(contentsOf: URL(fileURLWithPath: "\(fixture.root)/segments/\(stolenSegment)")))))),
                    ("file", "\(file.sha256) \(file.size) \(stolenSegment).tar.zst.age"), ("signed", SignatureTime.format(retiredAt.addingTimeInterval(-3600))),
                ])
            try fixture.write("wal/\(stolenSegment).sig", try thief.sign(backdated))
            let backdatedReport = verified(retired)
            #expect(backdatedReport.problems.names("wal/\(stolenSegment).sig"), "\(backdatedReport.problems)")
            do {
                _ = try BackupRestore(store: fixture.store, identities: [fixture.identity], trust: retired).prepare(.latest)
                Issue.record("restore accepted a backdated signature by a retired key")
            } catch let error as BackupIntegrityError {
                #expect(error.code == .retiredKey && error.subject == "wal/\(stolenSegment).sig", "\(error)")
            }
        }
    }

    @Test("A store from before signing is reported unsigned, and used only with accept-unsigned, for what precedes the first signed file")
    func unsignedStore() async throws {
        try await SignedStore.with("unsigned") { fixture in
            try populate(fixture)
            // The store as the previous version wrote it: no signatures, a digest file per WAL segment.
            for name in try fixture.wal.names() {
                let content = try Data(contentsOf: URL(fileURLWithPath: "\(fixture.root)/segments/\(name)"))
                try fixture.write("wal/\(name).sha256", hexDigest(SHA256.hash(Array(content))) + "\n")
                unlink("\(fixture.store)/wal/\(name).sig")
            }
            for summary in try fixture.catalogue.summaries() { unlink("\(fixture.catalogue.directory(summary.id))/backup.sig") }
            let strict = BackupVerifier(store: fixture.store, identities: [fixture.identity], trust: fixture.trust).verify(all: true)
            #expect(strict.problems.count == 3 + (try fixture.wal.names().count), "every file is reported: \(strict.problems)")
            #expect(strict.problems.allSatisfy { $0.message.contains("unsigned") })
            let lenient = BackupTrust(keys: fixture.trust.keys, acceptUnsigned: true)
            let accepted = BackupVerifier(store: fixture.store, identities: [fixture.identity], trust: lenient).verify(all: true)
            #expect(accepted.passed && accepted.unsignedAccepted.count == strict.problems.count, "\(accepted.problems)")
            let plan = try BackupRestore(store: fixture.store, identities: [fixture.identity], trust: lenient).prepare(.latest)
            #expect(!plan.unsignedAccepted.isEmpty)
            #expect(try fixture.wal.fetch(name: SignedStore.segmentName(5), to: "\(fixture.root)/old", identities: [fixture.identity], trust: lenient))
            #expect(throws: BackupIntegrityError.self) {
                try fixture.wal.fetch(name: SignedStore.segmentName(5), to: "\(fixture.root)/refused", identities: [fixture.identity], trust: fixture.trust)
            }

            // Signing begins: a new backup and WAL are signed; an unsigned backup added after them is refused, accept-unsigned or not.
            try fixture.pushSegments(1)
            try fixture.incremental()
            #expect(BackupVerifier(store: fixture.store, identities: [fixture.identity], trust: lenient).verify(all: true).passed)
            let added = try fixture.incremental()
            unlink("\(fixture.catalogue.directory(added.id))/backup.sig")
            let report = BackupVerifier(store: fixture.store, identities: [fixture.identity], trust: lenient).verify(all: true)
            #expect(report.problems.names("base/\(added.id)/backup.sig"), "\(report.problems)")
        }
    }

    @Test("A store rolled back to an older state (every file authentic) is caught against the signed head beside the witness copies")
    func rollbackAgainstHead() async throws {
        try await SignedStore.with("rollback") { fixture in
            let witness = "\(fixture.root)/witness"
            try fixture.pushSegments(3)
            try fixture.fullBackup()
            try fixture.pushSegments(1)
            #expect(StoreHead.writeHead(store: fixture.store, signer: fixture.signer, trust: fixture.trust, into: [witness]).isEmpty)
            let snapshot = "\(fixture.root)/older"
            try FileManager.default.copyItem(atPath: fixture.store, toPath: snapshot)
            try fixture.pushSegments(2)
            let newest = try fixture.incremental()
            #expect(StoreHead.writeHead(store: fixture.store, signer: fixture.signer, trust: fixture.trust, into: [witness]).isEmpty)
            let current = BackupVerifier(store: fixture.store, identities: [fixture.identity], trust: fixture.trust, headDirectories: [witness]).verify(all: true)
            #expect(current.passed && current.headNotes.contains { $0.contains("holds at least") }, "\(current.problems) \(current.headNotes)")

            // The backup host puts back the older store: every signature holds.
            try FileManager.default.removeItem(atPath: fixture.store)
            try FileManager.default.moveItem(atPath: snapshot, toPath: fixture.store)
            let head = "\(witness)/\(StoreHead.headFileName)"
            let rolledBack = BackupVerifier(store: fixture.store, identities: [fixture.identity], trust: fixture.trust, headDirectories: [witness]).verify(all: true)
            #expect(rolledBack.problems.names(head) && rolledBack.problems.contains { $0.message.contains(newest.id) }, "\(rolledBack.problems)")
            let restore = BackupRestore(store: fixture.store, identities: [fixture.identity], trust: fixture.trust, headDirectories: [witness])
            do {
                _ = try restore.prepare(.latest)
                Issue.record("restore accepted a rolled-back store")
            } catch let error as BackupIntegrityError {
                #expect(error.code == .rolledBack && error.subject == head, "\(error)")
            }
            let accepted = try restore.prepare(.latest, acceptRollback: true)
            #expect(accepted.rollbacksAccepted.count == 1)
            // A head signed by another key proves nothing.
            let other = try BackupSigner(keys: [try NoteSignerKey.generate(name: "test.osmose.example/backup")])
            _ = StoreHead.writeHead(store: fixture.store, signer: other, trust: BackupTrust(keys: []), into: [witness])
            #expect(throws: BackupIntegrityError.self) { try restore.prepare(.latest, acceptRollback: true) }
        }
    }
}
