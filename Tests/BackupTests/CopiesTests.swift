import Age
import Backup
import Cryptography
import Foundation
import Journal
import Testing
import TestSupport

@Suite("Backup copy locations")
struct CopiesTests {
    @Test("A copy mirrors the store, each file read back identical; a damaged copy is rewritten; an unusable location reported; a complete copy gets its signed state")
    func mirror() async throws {
        try await SignedStore.with("copy") { fixture in
            let copy = "\(fixture.root)/copy"
            try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
            try fixture.pushSegments(2)
            try fixture.fullBackup()
            let copies = BackupCopies(store: fixture.store, trust: fixture.trust, signer: fixture.signer)
            let first = copies.mirror(to: copy)
            // 2 WAL archives, their signatures, the push log; the backup's archive, manifest, summary and signature.
            #expect(first.failures.isEmpty && first.copied.count == 9, "\(first)")
            let stored = "wal/\(SignedStore.segmentName(1)).tar.zst.age"
            #expect(FileManager.default.contents(atPath: "\(copy)/\(stored)") == FileManager.default.contents(atPath: "\(fixture.store)/\(stored)"))
            #expect(!FileManager.default.fileExists(atPath: "\(copy)/base/\(try fixture.catalogue.summaries()[0].id)/tree.local.json"), "the local tree stays on this host")
            let again = copies.mirror(to: copy)
            #expect(again.copied.isEmpty && again.unchanged == 9)

            // The copy's signed state: a verifier using the copy as its store checks it holds what it held.
            let state = try String(contentsOfFile: "\(copy)/\(StoreHead.copyStateFileName)", encoding: .utf8)
            let statement = try fixture.trust.authenticate(state, file: "copy-state.sig", kind: .copyState, subject: "copy").statement
            #expect(statement.value("newest-wal") == SignedStore.segmentName(2) && statement.value("location") == copy)
            #expect(BackupVerifier(store: copy, identities: [fixture.identity], trust: fixture.trust).verify(all: true).passed)

            var damaged = Array(FileManager.default.contents(atPath: "\(copy)/\(stored)")!)
            damaged[100] ^= 1
            try Data(damaged).write(to: URL(fileURLWithPath: "\(copy)/\(stored)"))
            #expect(copies.mirror(to: copy).copied == [stored])

            _ = FileManager.default.createFile(atPath: "\(fixture.root)/not-a-directory", contents: Data())
            let broken = copies.mirror(to: "\(fixture.root)/not-a-directory")
            #expect(!broken.failures.isEmpty && broken.copied.isEmpty)
        }
    }

    @Test("Only what the suite signed travels: a forged file is not copied over the copy's, an unsigned one never replaces a signed one, and emptying the store does not empty the copies")
    func forgeriesDoNotTravel() async throws {
        try await SignedStore.with("copyforged") { fixture in
            let copy = "\(fixture.root)/copy"
            try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
            try fixture.pushSegments(3)
            let full = try fixture.fullBackup()
            let copies = BackupCopies(store: fixture.store, trust: fixture.trust, signer: fixture.signer)
            #expect(copies.mirror(to: copy).failures.isEmpty)
            let segment = SignedStore.segmentName(2)
            let original = FileManager.default.contents(atPath: "\(copy)/wal/\(segment).tar.zst.age")

            try fixture.forgeSegment(segment, content: fixture.generator.bytes(count: 1000))
            let forged = copies.mirror(to: copy)
            #expect(forged.failures.contains { $0.hasPrefix("wal/\(segment).tar.zst.age") }, "\(forged.failures)")
            #expect(FileManager.default.contents(atPath: "\(copy)/wal/\(segment).tar.zst.age") == original, "the copy keeps the genuine file")
            #expect(!FileManager.default.fileExists(atPath: "\(copy)/\(StoreHead.copyStateFileName)") || forged.failures.isEmpty == false)

            unlink("\(fixture.store)/wal/\(segment).sig")
            let unsigned = copies.mirror(to: copy)
            #expect(unsigned.failures.contains { $0.hasPrefix("wal/\(segment).tar.zst.age") && $0.contains("unsigned") }, "\(unsigned.failures)")
            #expect(FileManager.default.contents(atPath: "\(copy)/wal/\(segment).tar.zst.age") == original)

            // The backup host removes a backup and WAL (no signed tombstone): the copy keeps them.
            try FileManager.default.removeItem(atPath: fixture.catalogue.directory(full.id))
            unlink("\(fixture.store)/wal/\(SignedStore.segmentName(3)).tar.zst.age")
            let emptied = copies.mirror(to: copy)
            #expect(emptied.removed.isEmpty && emptied.kept.contains("base/\(full.id)/data.tar.zst.age"), "\(emptied)")
            #expect(FileManager.default.fileExists(atPath: "\(copy)/base/\(full.id)/data.tar.zst.age"))
        }
    }
}
