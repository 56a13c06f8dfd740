import Age
import Archive
import Cryptography
import Foundation
import Journal
import JournalArchive
import Store
import Testing
import TestSupport

@Suite("Journal months: cold archive, verification, purge, destruction")
struct ArchiveWorkflowTests {
    @Test("A month is archived to every directory, verifies alone and against the online journal, then purged: the journal still verifies and proves")
    func archiveVerifyPurge() async throws {
        try await ArchiveFixture.with("archive_flow") { fixture in
            let january = ArchiveFixture.january
            let archiver = fixture.archiver()
            let before = try await archiver.months(on: fixture.admin)
            #expect(before.map(\.state) == [.online, .online, .current], "\(before.map { "\($0.month) \($0.state)" })")
            #expect(before.first?.firstSequence == 0 && before.first?.lastSequence == 699)

            let planned = try await archiver.write(january, dryRun: true, on: fixture.admin)
            #expect(planned.dryRun && planned.fileName == "journal.archive.example-journal-2025-01.tar.zst.age" && planned.coveringCheckpoint == 3)
            #expect(fixture.directories.allSatisfy { (try? FileManager.default.contentsOfDirectory(atPath: $0))?.isEmpty == true }, "a dry run writes nothing")

            let receipt = try await archiver.write(january, on: fixture.admin)
            #expect(!receipt.alreadyArchived && receipt.firstSequence == 0 && receipt.lastSequence == 699 && receipt.checkpointCount == 3)
            #expect(receipt.verification?.passed == true && receipt.verification?.entriesChecked == 700, "\(receipt.verification?.problems ?? [])")
            let copies = try receipt.copies.map { try FileBlocks.sha256(ofFile: $0).sha256 }
            #expect(copies.count == 2 && copies.allSatisfy { $0 == receipt.archiveSHA256 })
            #expect(try await archiver.months(on: fixture.admin).first?.state == .archived)

            // Alone, with the identity the sysadmin keeps offline; and against the online journal.
            let verifier = JournalArchiveVerifier(keys: [fixture.signer.verifierKey])
            let alone = try verifier.verify(file: receipt.copies[1], identities: [fixture.identity])
            #expect(alone.passed && alone.entriesChecked == 700 && alone.signaturesVerified == 3 && alone.checkpointsChecked == 3, "\(alone.problems)")
            let online = try await verifier.verify(file: receipt.copies[0], identities: [fixture.identity], against: fixture.admin)
            #expect(online.passed && online.comparedWithOnline, "\(online.problems)")
            let stranger = try AgeIdentity.generate()
            let locked = try verifier.verify(file: receipt.copies[0], identities: [stranger])
            #expect(!locked.passed && locked.problems.first?.code == .unreadable)

            // Rerunning the write changes nothing.
            let again = try await archiver.write(january, on: fixture.admin)
            #expect(again.alreadyArchived && again.archiveSHA256 == receipt.archiveSHA256)

            let checkpointBefore = try await fixture.admin.perform { try JournalDatabase.checkpoint(id: 2, on: $0) }
            let purgePlan = try await archiver.purge(january, dryRun: true, on: fixture.admin)
            let storedBefore = try await fixture.storedEntries(0...699)
            #expect(purgePlan.dryRun && purgePlan.removed == nil && storedBefore == 700)
            let purged = try await archiver.purge(january, on: fixture.admin)
            let storedAfter = try await fixture.storedEntries(0...699)
            #expect(purged.removed == 700 && storedAfter == 0)
            #expect(try await fixture.admin.query("SELECT to_regclass('journal.entries_2025_01') IS NULL AS gone").rows[0].bool("gone"))
            #expect(try await archiver.purge(january, on: fixture.admin).alreadyPurged, "a rerun changes nothing")
            #expect(try await archiver.months(on: fixture.admin).first?.state == .purged)

            // The purge's journal event, once sequenced, attests the gap; the journal verifies whole.
            try await fixture.sequenceIntake(at: ArchiveFixture.time(ArchiveFixture.march, day: 20))
            try await fixture.checkpoint(at: ArchiveFixture.time(ArchiveFixture.march, day: 20, hour: 13))
            let report = try await fixture.verifyJournal()
            #expect(report.passed, "\(report.failures)")
            #expect(report.archivedEntriesReplayed == 700 && report.entriesChecked == fixture.state.size - 700)
            #expect(report.archivedRanges.count == 1 && report.archivedRanges.first?.range.copies == fixture.directories)
            if case .journaled(let sequence)? = report.archivedRanges.first?.purge {
                #expect(sequence >= 1850)
            } else {
                Issue.record("the purge is not attested by its journal event: \(String(describing: report.archivedRanges.first?.purge))")
            }
            let incremental = try await fixture.verifyJournal(since: 2)
            #expect(incremental.passed, "an incremental run from a checkpoint inside the purged month: \(incremental.failures)")

            // A consistency proof from a checkpoint before the purge to one after it, and an
            // inclusion proof of a purged entry, both from the tiles that stayed.
            let latest = try await fixture.admin.perform { try JournalDatabase.latestCheckpoint(on: $0)! }
            let body = try await fixture.admin.transaction(isolation: .repeatableRead) { try JournalProofs.consistency(from: 2, to: latest.id, on: $0) }
            let hashes = body.split(separator: "\n\n")[0].split(separator: "\n").dropFirst().map { Array(Data(base64Encoded: String($0))!) }
            #expect(
                MerkleTree.verifyConsistency(
                    oldSize: Int(checkpointBefore.treeSize), newSize: Int(latest.treeSize), oldRoot: checkpointBefore.rootHash, newRoot: latest.rootHash, proof: hashes))
            let proof = try await fixture.admin.transaction(isolation: .repeatableRead) { try JournalProofs.inclusion(of: 123, checkpoint: nil, on: $0) }
            #expect(proof.hasPrefix("c2sp.org/tlog-proof@v1\nindex 123\n"))

            // The archive still verifies against the online journal once purged: it is the recorded one.
            let afterPurge = try await verifier.verify(file: receipt.copies[1], identities: [fixture.identity], against: fixture.admin)
            #expect(afterPurge.passed, "\(afterPurge.problems)")

            // A search over the purged period names the archive instead of returning nothing.
            let search = JournalSearch(occurredFrom: Date(timeIntervalSince1970: Double(january.start) / 1e6), occurredBefore: Date(timeIntervalSince1970: Double(january.end) / 1e6))
            let (hits, archived) = try await fixture.admin.perform { connection in (try search.entries(on: connection), try search.archivedRanges(on: connection)) }
            #expect(hits.isEmpty && archived.map(\.month) == ["2025-01"] && archived.first?.fileName == receipt.fileName)
            let march = JournalSearch(occurredFrom: Date(timeIntervalSince1970: Double(ArchiveFixture.march.start) / 1e6))
            #expect(try await fixture.admin.perform { try march.archivedRanges(on: $0) }.isEmpty)
        }
    }

    @Test("The archive's members, decrypted with age and listed with bsdtar, are what the format says")
    func standardTools() async throws {
        try await ArchiveFixture.with("archive_tools") { fixture in
            let receipt = try await fixture.archiver().write(ArchiveFixture.february, on: fixture.admin)
            let tar = "\(fixture.scratch)/february.tar.zst"
            let decrypted = try await runProgram("/usr/bin/age", ["-d", "-i", fixture.identityFile, "-o", tar, receipt.copies[0]])
            #expect(decrypted.status == 0, "\(decrypted.standardError)")
            let listing = try await runProgram("/usr/bin/bsdtar", ["-tf", tar])
            #expect(listing.status == 0, "\(listing.standardError)")
            let members = listing.standardOutput.split(separator: "\n").map(String.init)
            #expect(Array(members.prefix(4)) == ["journal-2025-02/README", "journal-2025-02/month.json", "journal-2025-02/checkpoints", "journal-2025-02/checkpoint"])
            #expect(members.last == "journal-2025-02/manifest.json")
            // Entries 700…1349: bundles 2 (the month's part) to 5; tiles of the tree of 1350 from tile 2 on.
            #expect(members.filter { $0.contains("/entries/") } == (2...5).map { "journal-2025-02/entries/00\($0)" })
            #expect(members.filter { $0.contains("/tile/") } == ["journal-2025-02/tile/0/002", "journal-2025-02/tile/0/003", "journal-2025-02/tile/0/004", "journal-2025-02/tile/0/005.p/70", "journal-2025-02/tile/1/000.p/5"])
            let extracted = "\(fixture.scratch)/extracted"
            try FileManager.default.createDirectory(atPath: extracted, withIntermediateDirectories: true)
            #expect(try await runProgram("/usr/bin/bsdtar", ["-xf", tar, "-C", extracted]).status == 0)
            let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(extracted)/journal-2025-02/month.json"))) as? [String: Any]
            #expect(summary?["first_sequence"] as? Int == 700 && summary?["last_sequence"] as? Int == 1349)
            let bundle = Array(try Data(contentsOf: URL(fileURLWithPath: "\(extracted)/journal-2025-02/entries/002")))
            let entries = try JournalFormats.entries(inBundle: bundle)
            let firstEntry = try JournalEntry(canonical: entries[0])
            #expect(entries.count == 68 && firstEntry.sequence == 700)
        }
    }
}
