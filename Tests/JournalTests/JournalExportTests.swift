import Foundation
import Journal
import Store
import Testing
import TestSupport

/// Exports, tile publication and proofs, read back and checked with the RFC 9162
/// verification functions rather than with the code that wrote them.
@Suite("Journal exports, tiles and proofs in PostgreSQL")
struct JournalExportTests {
    static let officer = SystemActor.operator("alice@host via osmosectl test", role: .securityOfficer)

    /// Runs `body` with a journal of 300 entries under checkpoint #1, then 20 more under checkpoint #2, then 5 not yet covered; dropped on every path.
    static func journal<Result>(_ purpose: String, _ body: (JournalFixture) async throws -> Result) async throws -> Result {
        try await JournalFixture.with(purpose) { fixture in
            var state = try await fixture.journald.perform { try JournalDatabase.loadState(on: $0) }
            for (offset, count) in [(0, 300), (300, 20)] {
                try await fixture.submit(count, offset: offset)
                state = try await fixture.drain(state)
                state = try await fixture.checkpoint(state).state
            }
            try await fixture.submit(5, offset: 320)
            _ = try await fixture.drain(state)
            return try await body(fixture)
        }
    }

    func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("osmose-export-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func read(_ path: String) throws -> [UInt8] {
        Array(try #require(FileManager.default.contents(atPath: path), "\(path) was not written"))
    }

    /// The proof's index, hashes and checkpoint note, parsed from its text.
    func parse(_ proof: String) throws -> (index: UInt64, hashes: [[UInt8]], note: String) {
        let parts = proof.components(separatedBy: "\n\n")
        let header = parts[0].split(separator: "\n").map(String.init)
        #expect(header[0] == "c2sp.org/tlog-proof@v1")
        let index = try #require(UInt64(header[1].dropFirst("index ".count)))
        let hashes = try header.dropFirst(2).map { Array(try #require(Data(base64Encoded: $0))) }
        return (index, hashes, parts.dropFirst().joined(separator: "\n\n"))
    }

    /// The export events in the intake (not sequenced yet).
    func exportEvents(_ fixture: JournalFixture) async throws -> [String] {
        try await fixture.admin.query(
            """
            SELECT object_id || ' ' || reason || ' ' || actor_role || ' ' || purpose || ' ' || actor_username AS what
            FROM journal.intake WHERE action = 'export' AND source = 'osmosectl' ORDER BY id
            """
        ).rows.map { try $0.string("what") }
    }

    @Test("A bundle export writes the entries, the covering checkpoint, the checkpoints since the one before, and a proof per entry that verifies; it is journaled")
    func bundle() async throws {
        try await Self.journal("exportbundle") { fixture in
            let out = try directory()
            defer { try? FileManager.default.removeItem(atPath: out) }
            let summary = try await JournalExport(range: 250...310, exportedBy: Self.officer).writeBundle(into: out, on: fixture.admin)
            #expect(summary.entries == 61 && summary.checkpoints == 2 && summary.covering.id == 2 && summary.covering.treeSize == 320)

            let stored = try await fixture.admin.perform { try JournalDatabase.entries(250..<311, on: $0) }
            #expect(try JournalFormats.entries(inBundle: try read(out + "/entries")) == stored.map(\.canonical))
            #expect(String(decoding: try read(out + "/checkpoint"), as: UTF8.self) == summary.covering.note)
            let notes = try await fixture.admin.perform { try JournalDatabase.checkpoints(ids: 1...2, on: $0) }.map(\.note)
            #expect(String(decoding: try read(out + "/checkpoints"), as: UTF8.self) == notes.map { $0 + "\n" }.joined())
            let proofs = String(decoding: try read(out + "/proofs"), as: UTF8.self).components(separatedBy: "--\n")
            #expect(proofs.count == 61)
            for (proof, entry) in zip(proofs, stored) {
                let parsed = try parse(proof)
                #expect(parsed.index == entry.entry.sequence && parsed.note == summary.covering.note)
                #expect(
                    MerkleTree.verifyInclusion(
                        leafHash: MerkleTree.leafHash(entry.canonical), index: Int(parsed.index), size: 320, proof: parsed.hashes, root: summary.covering.rootHash),
                    "entry \(parsed.index)")
            }
            #expect(try await exportEvents(fixture) == ["250-310 journal.export.bundle security-officer audit alice@host"])
        }
    }

    @Test("An export of missing or not yet covered entries is refused and journals nothing")
    func refused() async throws {
        try await Self.journal("exportrefused") { fixture in
            let out = try directory()
            defer { try? FileManager.default.removeItem(atPath: out) }
            await #expect(throws: JournalError(.notFound, "")) {
                try await JournalExport(range: 300...400, exportedBy: Self.officer).writeBundle(into: out, on: fixture.admin)
            }
            await #expect(throws: JournalError(.notFound, "")) {
                try await JournalExport(range: 300...322, exportedBy: Self.officer).writeBundle(into: out, on: fixture.admin)
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty)
            #expect(try await exportEvents(fixture).isEmpty)
        }
    }

    @Test("A FHIR export holds one AuditEvent per entry and is journaled")
    func fhir() async throws {
        try await Self.journal("exportfhir") { fixture in
            let data = try await JournalExport(range: 0...9, exportedBy: Self.officer).fhirBundle(origin: "journal.test.example", now: 0, on: fixture.admin)
            let bundle = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            #expect(bundle["resourceType"] as? String == "Bundle" && (bundle["entry"] as? [Any])?.count == 10)
            #expect(try await exportEvents(fixture) == ["0-9 journal.export.fhir security-officer audit alice@host"])
        }
    }

    @Test("Published tiles hold the stored tree of the checkpoint: full and partial hash tiles, entry bundles, the note")
    func tiles() async throws {
        try await Self.journal("tiles") { fixture in
            let out = try directory()
            defer { try? FileManager.default.removeItem(atPath: out) }
            let publication = try await fixture.admin.transaction(isolation: .repeatableRead) { connection in
                try TilePublisher(directory: out).publish(checkpoint: 1, on: connection)
            }
            // Level 0: one full tile and a partial one of 44; level 1: a partial one of 1; two entry bundles; the checkpoint.
            #expect(publication.checkpoint.id == 1 && publication.checkpoint.treeSize == 300 && publication.files == 6)
            let stored = try await fixture.admin.perform { try JournalDatabase.entries(0..<300, on: $0) }
            let leaves = stored.map(\.leafHash)
            let full = try read(out + "/" + JournalFormats.tilePath(level: 0, index: 0))
            #expect(full == leaves[0..<256].flatMap { $0 })
            #expect(try read(out + "/" + JournalFormats.tilePath(level: 0, index: 1, partialWidth: 44)) == leaves[256...].flatMap { $0 })
            #expect(try read(out + "/" + JournalFormats.tilePath(level: 1, index: 0, partialWidth: 1)) == MerkleTree.root(leaves[0..<256]))
            #expect(try JournalFormats.entries(inBundle: try read(out + "/" + JournalFormats.tilePath(level: nil, index: 0))) == stored[0..<256].map(\.canonical))
            #expect(
                try JournalFormats.entries(inBundle: try read(out + "/" + JournalFormats.tilePath(level: nil, index: 1, partialWidth: 44)))
                    == stored[256...].map(\.canonical))
            #expect(String(decoding: try read(out + "/checkpoint"), as: UTF8.self) == publication.checkpoint.note)
            #expect(MerkleTree.root(leaves[...]) == publication.checkpoint.rootHash)
        }
    }

    @Test("Inclusion and consistency proofs verify against the checkpoints' roots; out-of-range requests are refused")
    func proofs() async throws {
        try await Self.journal("proofs") { fixture in
            let (first, second) = try await fixture.admin.perform { (try JournalDatabase.checkpoint(id: 1, on: $0), try JournalDatabase.checkpoint(id: 2, on: $0)) }
            let entry = try await fixture.admin.perform { try JournalDatabase.entry(123, on: $0) }
            for (id, checkpoint) in [(nil, second), (1, first)] as [(Int64?, CheckpointRecord)] {
                let parsed = try parse(try await fixture.admin.perform { try JournalProofs.inclusion(of: 123, checkpoint: id, on: $0) })
                #expect(parsed.index == 123 && parsed.note == checkpoint.note)
                #expect(
                    MerkleTree.verifyInclusion(
                        leafHash: entry.leafHash, index: 123, size: Int(checkpoint.treeSize), proof: parsed.hashes, root: checkpoint.rootHash))
            }
            await #expect(throws: JournalError(.invalidArgument, "")) {
                try await fixture.admin.perform { try JournalProofs.inclusion(of: 300, checkpoint: 1, on: $0) }
            }
            await #expect(throws: JournalError(.notFound, "")) { try await fixture.admin.perform { try JournalDatabase.entry(400, on: $0) } }

            let body = try await fixture.admin.perform { try JournalProofs.consistency(from: 1, to: 2, on: $0) }
            let lines = body.components(separatedBy: "\n\n")[0].split(separator: "\n").map(String.init)
            #expect(lines[0] == "old 300")
            let proof = try lines.dropFirst().map { Array(try #require(Data(base64Encoded: $0))) }
            #expect(MerkleTree.verifyConsistency(oldSize: 300, newSize: 320, oldRoot: first.rootHash, newRoot: second.rootHash, proof: proof))
            #expect(body.hasSuffix(second.note))
            await #expect(throws: JournalError(.invalidArgument, "")) { try await fixture.admin.perform { try JournalProofs.consistency(from: 2, to: 1, on: $0) } }
        }
    }
}
