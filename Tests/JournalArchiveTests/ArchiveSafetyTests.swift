import Age
import Archive
import Foundation
import Journal
import JournalArchive
import Store
import Testing
import TestSupport

@Suite("Journal months: no purge without a verified archive, no removal by any other way")
struct ArchiveSafetyTests {
    @Test("The retention role archives and purges through the functions only: it cannot drop, detach or delete, and others cannot call them")
    func roles() async throws {
        try await ArchiveFixture.with("archive_roles") { fixture in
            let retention = try await Connection.connect("\(fixture.database.connectionString) user=osmose_retention", logger: testLogger)
            let auditor = try await Connection.connect("\(fixture.database.connectionString) user=osmose_auditor", logger: testLogger)
            defer {
                Task {
                    await retention.close()
                    await auditor.close()
                }
            }
            for statement in [
                "DROP TABLE journal.entries_2025_01", "ALTER TABLE journal.entries DETACH PARTITION journal.entries_2025_01",
                "DELETE FROM journal.entries WHERE seq < 10", "TRUNCATE journal.entries_2025_01",
                "UPDATE ops.journal_archives SET purged_at = now()",
            ] {
                await #expect(throws: StoreError.self, "the retention role may not: \(statement)") { try await retention.execute(statement) }
            }
            let purgeWithoutArchive = await #expect(throws: StoreError.self) {
                try await retention.query("SELECT journal.purge_month('2025-01-01', $1)", [String(repeating: "0", count: 64)])
            }
            #expect(purgeWithoutArchive?.serverMessage?.contains("has no recorded archive") == true, "\(String(describing: purgeWithoutArchive?.serverMessage))")
            let auditorPurge = await #expect(throws: StoreError.self) {
                try await auditor.query("SELECT journal.purge_month('2025-01-01', $1)", [String(repeating: "0", count: 64)])
            }
            #expect(auditorPurge?.sqlState == "42501")

            // The whole workflow, as osmose-retentiond's role.
            let archiver = fixture.archiver()
            let written = try await archiver.write(ArchiveFixture.january, on: retention)
            let wrongDigest = await #expect(throws: StoreError.self) {
                try await retention.query("SELECT journal.purge_month('2025-01-01', $1)", [String(repeating: "a", count: 64)])
            }
            #expect(wrongDigest?.serverMessage?.contains("is not the verified archive recorded") == true)
            let mismatched = await #expect(throws: StoreError.self) {
                try await retention.query(
                    """
                    SELECT journal.record_month_archive('2025-02-01', 701, 1349, now(), now(), 4, 2, $1, $1, 'x.tar.zst.age', $2, 1, $2,
                        ARRAY['f'], ARRAY['/cold'], 'tests', now(), '')
                    """, [[UInt8](repeating: 0, count: 32), String(repeating: "b", count: 64)])
            }
            #expect(mismatched?.serverMessage?.contains("holds entries 700 to 1349, the archive says 701 to 1349") == true, "\(String(describing: mismatched?.serverMessage))")
            let purged = try await archiver.purge(ArchiveFixture.january, on: retention)
            #expect(purged.removed == 700 && written.archiveSHA256 == purged.archiveSHA256)
            #expect(try await fixture.storedEntries(0...699) == 0)
        }
    }

    @Test("An archive that does not verify as it is read back (a verifier key that is not the log's) is removed as it is written: no file, no record, every entry kept")
    func readBackRefusal() async throws {
        try await ArchiveFixture.with("archive_readback") { fixture in
            let stranger = try NoteSignerKey.generate(name: "journal.archive.example")
            let archiver = JournalArchiver(
                directories: fixture.directories, recipients: [fixture.identity.recipient], verifierKeys: [stranger.verifierKey],
                actor: .operator("tests@host via tests", role: .sysadmin), logger: testLogger)
            let refused = await #expect(throws: JournalArchiveError.self) { try await archiver.write(ArchiveFixture.january, on: fixture.admin) }
            #expect(refused?.code == .verification && refused?.message.contains("it was removed and nothing was recorded") == true, "\(String(describing: refused))")
            for directory in fixture.directories {
                #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty, "nothing left in \(directory)")
            }
            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM ops.journal_archives").rows[0].int("n") == 0)
            #expect(try await fixture.storedEntries(0...699) == 700)
            // With the log's key, the same month is written and verified.
            let written = try await fixture.archiver().write(ArchiveFixture.january, on: fixture.admin)
            #expect(written.verification?.passed == true && written.verification?.fileSHA256 == written.archiveSHA256)
            #expect(written.verification?.fileBytes == written.archiveBytes)
        }
    }

    @Test("A write that fails in the middle (a hash tile missing from the journal) says so with its own code, not as a failed read-back, and leaves no file")
    func writeFailureKeepsItsCause() async throws {
        try await ArchiveFixture.with("archive_midwrite") { fixture in
            let owner = try await Connection.connect(fixture.database.connectionString, logger: testLogger)
            defer { Task { await owner.close() } }
            try await owner.execute("SET session_replication_role = replica")
            let tile = try await owner.query("SELECT hashes FROM journal.tiles WHERE level = 0 AND tile_index = 1").rows[0].bytes("hashes")
            try await owner.execute("DELETE FROM journal.tiles WHERE level = 0 AND tile_index = 1")
            let failed = await #expect(throws: JournalArchiveError.self) { try await fixture.archiver().write(ArchiveFixture.january, on: fixture.admin) }
            #expect(failed?.code == .inconsistent && failed?.message.contains("hash tile 0/1 is missing") == true, "\(String(describing: failed))")
            for directory in fixture.directories {
                #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty, "nothing left in \(directory)")
            }
            #expect(try await fixture.admin.query("SELECT count(*) AS n FROM ops.journal_archives").rows[0].int("n") == 0)
            try await owner.query("INSERT INTO journal.tiles (level, tile_index, hashes) VALUES (0, 1, $1)", [tile])
            #expect(try await fixture.archiver().write(ArchiveFixture.january, on: fixture.admin).verification?.passed == true)
        }
    }

    @Test("A purge is refused while a copy is missing or damaged, or while the tiles over the month are not all stored; nothing is removed")
    func purgeRefusals() async throws {
        try await ArchiveFixture.with("archive_refusals") { fixture in
            let archiver = fixture.archiver()
            let receipt = try await archiver.write(ArchiveFixture.february, on: fixture.admin)
            try FileManager.default.removeItem(atPath: receipt.copies[1])
            let missing = await #expect(throws: JournalArchiveError.self) { try await archiver.purge(ArchiveFixture.february, on: fixture.admin) }
            #expect(missing?.code == .notArchived && missing?.message.contains("\(receipt.copies[1]) is missing") == true, "\(String(describing: missing))")
            var damaged = Array(try Data(contentsOf: URL(fileURLWithPath: receipt.copies[0])))
            damaged[damaged.count / 2] ^= 0x40
            try Data(damaged).write(to: URL(fileURLWithPath: receipt.copies[0]))
            try FileManager.default.copyItem(atPath: receipt.copies[0], toPath: receipt.copies[1])
            let different = await #expect(throws: JournalArchiveError.self) { try await archiver.purge(ArchiveFixture.february, dryRun: true, on: fixture.admin) }
            #expect(different?.message.contains("is not the archive recorded") == true, "\(String(describing: different))")
            #expect(try await fixture.storedEntries(700...1349) == 650)
            // Writing again replaces the damaged copies; then the purge goes through.
            let rewritten = try await archiver.write(ArchiveFixture.february, on: fixture.admin)
            #expect(!rewritten.alreadyArchived && rewritten.archiveSHA256 != receipt.archiveSHA256)
            #expect(try await archiver.purge(ArchiveFixture.february, on: fixture.admin).removed == 650)

            // March ends at entry 1849, in tile 7 (1792…2047): once April has begun but not filled that tile, March can be
            // archived but not purged.
            try await fixture.append(10, at: ArchiveFixture.time(try JournalMonth(year: 2025, month: 4), day: 1))
            try await fixture.checkpoint(at: ArchiveFixture.time(try JournalMonth(year: 2025, month: 4), day: 1, hour: 13))
            _ = try await archiver.write(ArchiveFixture.march, on: fixture.admin)
            let early = await #expect(throws: JournalArchiveError.self) { try await archiver.purge(ArchiveFixture.march, on: fixture.admin) }
            #expect(early?.code == .notReady && early?.message.contains("must grow past the tile holding entry 1849") == true, "\(String(describing: early))")
            #expect(try await fixture.storedEntries(1350...1849) == 500)
        }
    }

    @Test("An archive past its term is destroyed after a dry run, journaled with its digest; not before its term, not while the month is online")
    func destruction() async throws {
        try await ArchiveFixture.with("archive_destroy") { fixture in
            let archiver = fixture.archiver()
            let receipt = try await archiver.write(ArchiveFixture.january, on: fixture.admin)
            _ = try await archiver.write(ArchiveFixture.february, on: fixture.admin)
            let online = await #expect(throws: JournalArchiveError.self) {
                try await archiver.destroy(ArchiveFixture.february, archiveYears: 1, now: ArchiveFixture.time(try JournalMonth(year: 2030, month: 1), day: 1), on: fixture.admin)
            }
            #expect(online?.code == .notDue)
            _ = try await archiver.purge(ArchiveFixture.january, on: fixture.admin)
            // Kept 6 years after January 2025: until 2031-02-01.
            let early = await #expect(throws: JournalArchiveError.self) {
                try await archiver.destroy(ArchiveFixture.january, archiveYears: 6, now: ArchiveFixture.time(try JournalMonth(year: 2031, month: 1), day: 31, hour: 23), on: fixture.admin)
            }
            #expect(early?.code == .notDue && early?.message.contains("kept until 2031-02-01") == true, "\(String(describing: early))")
            let due = ArchiveFixture.time(try JournalMonth(year: 2031, month: 2), day: 1, hour: 0)
            let plan = try await archiver.destroy(ArchiveFixture.january, archiveYears: 6, now: due, dryRun: true, on: fixture.admin)
            #expect(plan.dryRun && plan.copies == receipt.copies && receipt.copies.allSatisfy { FileManager.default.fileExists(atPath: $0) })
            let destroyed = try await archiver.destroy(ArchiveFixture.january, archiveYears: 6, now: due, on: fixture.admin)
            #expect(!destroyed.alreadyDestroyed && receipt.copies.allSatisfy { !FileManager.default.fileExists(atPath: $0) })
            #expect(try await archiver.destroy(ArchiveFixture.january, archiveYears: 6, now: due, on: fixture.admin).alreadyDestroyed)
            #expect(try await archiver.months(on: fixture.admin).first?.state == .destroyed)
            let events = try await fixture.admin.query(
                "SELECT reason FROM journal.intake WHERE action = 'retention-admin' AND object_id = '2025-01' ORDER BY id").rows.map { try $0.string("reason") }
            #expect(events.count == 3 && events[2] == "archive destroyed: \(receipt.fileName) sha256 \(receipt.archiveSHA256!), term ended 2031-02-01", "\(events)")
            try await fixture.sequenceIntake(at: ArchiveFixture.time(ArchiveFixture.march, day: 25))
            let report = try await fixture.verifyJournal()
            #expect(report.passed && report.archivedRanges.first?.range.destroyedAt != nil, "\(report.failures)")
        }
    }
}

@Suite("Journal months: what verify knows of a purged month's entries")
struct ArchivedRetirementTests {
    @Test("A signing key retired by an entry of a purged month stays retired: later checkpoints signed only by it still fail")
    func retirementSurvivesThePurge() async throws {
        // The fixture's own key, retired in January by the journal entry osmose-keyd writes for it (entry 300).
        let signer = try NoteSignerKey.generate(name: "journal.archive.example")
        let keyID = String(format: "%08x", signer.verifierKey.keyID)
        let retirement = AccessEvent.system(
            by: .operator("tests@host via tests", role: .sysadmin), action: .keyAdmin, objectType: JournalVerifier.signingKeyObjectType,
            objectID: keyID, reason: "retired after a rollover (tests)")
        try await ArchiveFixture.with("archive_retired", januaryEvents: [retirement], signer: signer) { fixture in
            let before = try await fixture.verifyJournal()
            let retired = before.failures.filter { $0.code == .checkpointRetiredKey }.compactMap(\.checkpoint)
            #expect(retired.first == 2, "every checkpoint after the retirement is signed only by the retired key: \(before.failures)")
            let archiver = fixture.archiver()
            let written = try await archiver.write(ArchiveFixture.january, on: fixture.admin)
            #expect(written.verification?.signingKeyRetirements == [keyID: 300])
            _ = try await archiver.purge(ArchiveFixture.january, on: fixture.admin)
            let after = try await fixture.verifyJournal()
            #expect(after.failures.filter { $0.code == .checkpointRetiredKey }.compactMap(\.checkpoint) == retired, "\(after.failures)")
        }
    }
}

@Suite("Journal months: tampering with an archive or with a purged range is caught")
struct ArchiveTamperingTests {
    /// Every member of `archive`, in order, as bytes.
    static func members(of archive: String, _ identity: AgeIdentity) throws -> [(String, [UInt8])] {
        var members: [(String, [UInt8])] = []
        try EncryptedArchiveReader(path: archive, identities: [identity]).forEachMember { name, _, content in
            var bytes: [UInt8] = []
            try content { span in span.withUnsafeBytes { bytes.append(contentsOf: $0) } }
            members.append((name, bytes))
        }
        return members
    }

    /// A new archive of `members`; with `manifest`, manifest.json is recomputed to match them.
    static func forge(_ members: [(String, [UInt8])], to path: String, _ identity: AgeIdentity, recomputeManifest: Bool) throws {
        let writer = try EncryptedArchiveWriter(path: path, recipients: [identity.recipient])
        for (name, bytes) in members {
            if recomputeManifest, name.hasSuffix("/manifest.json") {
                var manifest = try JSONSerialization.jsonObject(with: Data(bytes)) as! [String: Any]
                manifest["members"] = writer.members.map { ["path": $0.path, "size": $0.size, "sha256": $0.sha256] }
                try writer.addBytes(Array(try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])), as: name)
            } else {
                try writer.addBytes(bytes, as: name)
            }
        }
        try writer.finish()
    }

    @Test("An altered entry with a recomputed manifest fails against the signed tiles; an altered member fails its digest; a dropped member fails the layout")
    func forgedArchives() async throws {
        try await ArchiveFixture.with("archive_forged") { fixture in
            let receipt = try await fixture.archiver().write(ArchiveFixture.january, on: fixture.admin)
            let members = try Self.members(of: receipt.copies[0], fixture.identity)
            let verifier = JournalArchiveVerifier(keys: [fixture.signer.verifierKey])
            let bundle = try #require(members.firstIndex { $0.0.hasSuffix("/entries/001") })

            var altered = members
            altered[bundle].1[2 + 40] ^= 0x01
            try Self.forge(altered, to: "\(fixture.scratch)/altered.age", fixture.identity, recomputeManifest: true)
            let entry = try verifier.verify(file: "\(fixture.scratch)/altered.age", identities: [fixture.identity])
            #expect(!entry.passed && entry.problems.first.map { [.entry, .tiles, .root].contains($0.code) } == true, "\(entry.problems)")
            #expect(entry.problems.first?.sequence == 256, "\(entry.problems)")

            var readme = members
            readme[0].1 += Array("a line added after writing\n".utf8)
            try Self.forge(readme, to: "\(fixture.scratch)/digest.age", fixture.identity, recomputeManifest: false)
            let digest = try verifier.verify(file: "\(fixture.scratch)/digest.age", identities: [fixture.identity])
            #expect(digest.problems.map(\.code) == [.manifest] && digest.problems.first?.message.contains("README") == true, "\(digest.problems)")

            var dropped = members
            dropped.remove(at: bundle)
            try Self.forge(dropped, to: "\(fixture.scratch)/dropped.age", fixture.identity, recomputeManifest: true)
            let layout = try verifier.verify(file: "\(fixture.scratch)/dropped.age", identities: [fixture.identity])
            #expect(!layout.passed && layout.problems.first?.code == .layout, "\(layout.problems)")

            // The first checkpoint signed by a key of the same name that is not the log's; then, re-signed by the
            // log's key, the same checkpoint stating another root.
            let checkpoints = try #require(members.firstIndex { $0.0.hasSuffix("/checkpoints") })
            let parts = String(decoding: members[checkpoints].1, as: UTF8.self).components(separatedBy: "\n\n")
            let rest = "\n" + parts[2...].joined(separator: "\n\n")
            let stranger = try NoteSignerKey.generate(name: "journal.archive.example")
            var resigned = members
            resigned[checkpoints].1 = Array((try SignedNote.sign(parts[0] + "\n", with: [stranger]) + rest).utf8)
            try Self.forge(resigned, to: "\(fixture.scratch)/resigned.age", fixture.identity, recomputeManifest: true)
            let signature = try verifier.verify(file: "\(fixture.scratch)/resigned.age", identities: [fixture.identity])
            #expect(signature.problems.map(\.code) == [.checkpointSignature], "\(signature.problems)")
            let covering = try JournalArchiveVerifier(keys: [fixture.signer.verifierKey], signatures: .covering)
                .verify(file: "\(fixture.scratch)/resigned.age", identities: [fixture.identity])
            #expect(covering.passed, "with the covering checkpoint's signature only, the others are matched with the tree, not their signatures")

            var lines = parts[0].split(separator: "\n").map(String.init)
            lines[2] = Data([UInt8](repeating: 7, count: 32)).base64EncodedString()
            var rerooted = members
            rerooted[checkpoints].1 = Array((try SignedNote.sign(lines.joined(separator: "\n") + "\n", with: [fixture.signer]) + rest).utf8)
            try Self.forge(rerooted, to: "\(fixture.scratch)/rerooted.age", fixture.identity, recomputeManifest: true)
            for mode in [JournalArchiveVerifier.Signatures.all, .covering] {
                let root = try JournalArchiveVerifier(keys: [fixture.signer.verifierKey], signatures: mode)
                    .verify(file: "\(fixture.scratch)/rerooted.age", identities: [fixture.identity])
                #expect(root.problems.map(\.code) == [.root] && root.problems.first?.sequence == 299, "\(mode): \(root.problems)")
            }
        }
    }

    @Test("After a purge, a changed tile in the purged range, entries still stored, or a purge nobody journaled are caught by journal verify")
    func purgedRanges() async throws {
        try await ArchiveFixture.with("archive_tamper_purged") { fixture in
            let archiver = fixture.archiver()
            _ = try await archiver.write(ArchiveFixture.january, on: fixture.admin)
            _ = try await archiver.purge(ArchiveFixture.january, on: fixture.admin)
            try await fixture.sequenceIntake(at: ArchiveFixture.time(ArchiveFixture.march, day: 22))
            #expect(try await fixture.verifyJournal().passed)

            let owner = try await Connection.connect(fixture.database.connectionString, logger: testLogger)
            defer { Task { await owner.close() } }
            try await owner.execute("SET session_replication_role = replica")
            let tile = try await owner.query("SELECT hashes FROM journal.tiles WHERE level = 0 AND tile_index = 1").rows[0].bytes("hashes")
            try await owner.execute("UPDATE journal.tiles SET hashes = overlay(hashes placing '\\x00'::bytea from 100 for 1) WHERE level = 0 AND tile_index = 1")
            let changed = try await fixture.verifyJournal()
            #expect(!changed.passed && changed.firstBadSequence.map { $0 <= 600 } == true, "\(changed.failures)")
            try await owner.query("UPDATE journal.tiles SET hashes = $1 WHERE level = 0 AND tile_index = 1", [tile])
            #expect(try await fixture.verifyJournal().passed)

            // February recorded as purged with a month in which the journal went on, but never journaled, its entries still there.
            try await owner.execute(
                """
                INSERT INTO ops.journal_archives SELECT '2025-02-01', 700, 1349, 650, occurred_from, occurred_to, 4, 1350, 2, chain_before, chain_after,
                    'forged.tar.zst.age', archive_sha256, archive_bytes, manifest_sha256, recipients, copies, signing_key_retirements, written_by, written_at, verified_at,
                    '2025-03-01 00:00:00+00', 650, NULL FROM ops.journal_archives WHERE month = '2025-01-01'
                """)
            let stored = try await fixture.verifyJournal()
            #expect(stored.failures.first?.code == .archivedEntry && stored.failures.first?.sequence == 700, "\(stored.failures)")
            try await owner.execute("ALTER TABLE journal.entries DETACH PARTITION journal.entries_2025_02")
            try await owner.execute("DROP TABLE journal.entries_2025_02")
            let unjournaled = try await fixture.verifyJournal()
            #expect(unjournaled.failures.map(\.code) == [.archiveUnjournaled] && unjournaled.failures.first?.sequence == 700, "\(unjournaled.failures)")
            #expect(unjournaled.archivedRanges.map(\.purge).last == .missing)
        }
    }
}
