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
            // `consistency` ties the covering checkpoint to the latest (here the same: an empty proof).
            let consistency = String(decoding: try read(out + "/consistency"), as: UTF8.self)
            #expect(consistency == "old 320\n\n" + summary.latest.note && summary.latest.id == 2)
            #expect(try FileManager.default.contentsOfDirectory(atPath: out).sorted() == ["checkpoint", "checkpoints", "consistency", "entries", "proofs"])
            #expect(try FileManager.default.attributesOfItem(atPath: out + "/proofs")[.posixPermissions] as? Int == 0o600)
            #expect(try await exportEvents(fixture) == ["250-310 journal.export.bundle security-officer audit alice@host"])
        }
    }

    @Test("A scattered export proves each entry against the checkpoint covering the last one, ties it to the latest, and journals the exact set")
    func scattered() async throws {
        try await Self.journal("exportscattered") { fixture in
            let out = try directory()
            defer { try? FileManager.default.removeItem(atPath: out) }
            var export = JournalExport(.sequences([299, 3, 255, 256, 3, 120]), exportedBy: Self.officer)
            export.patientID = UUID(uuidString: "7f3c1e2a-9b8d-4c6e-a5f4-0123456789ab")
            let summary = try await export.writeBundle(into: out, on: fixture.admin)
            #expect(summary.entries == 5 && summary.covering.id == 1 && summary.latest.id == 2 && summary.checkpoints == 1)
            let sequences: [UInt64] = [3, 120, 255, 256, 299]
            let stored = try await fixture.admin.perform { connection in try sequences.map { try JournalDatabase.entry($0, on: connection) } }
            #expect(try JournalFormats.entries(inBundle: try read(out + "/entries")) == stored.map(\.canonical))
            let proofs = String(decoding: try read(out + "/proofs"), as: UTF8.self).components(separatedBy: "--\n")
            #expect(proofs.count == 5)
            for (proof, entry) in zip(proofs, stored) {
                let parsed = try parse(proof)
                #expect(parsed.index == entry.entry.sequence && parsed.note == summary.covering.note)
                #expect(
                    MerkleTree.verifyInclusion(
                        leafHash: MerkleTree.leafHash(entry.canonical), index: Int(parsed.index), size: 300, proof: parsed.hashes, root: summary.covering.rootHash))
            }
            let body = String(decoding: try read(out + "/consistency"), as: UTF8.self)
            let lines = body.components(separatedBy: "\n\n")[0].split(separator: "\n").map(String.init)
            #expect(lines[0] == "old 300" && body.hasSuffix(summary.latest.note))
            let hashes = try lines.dropFirst().map { Array(try #require(Data(base64Encoded: $0))) }
            #expect(
                MerkleTree.verifyConsistency(oldSize: 300, newSize: 320, oldRoot: summary.covering.rootHash, newRoot: summary.latest.rootHash, proof: hashes))
            let events = try await fixture.admin.query(
                "SELECT object_id, patient_id::text AS patient FROM journal.intake WHERE action = 'export' AND source = 'osmosectl'"
            ).rows
            #expect(events.count == 1)
            #expect(try events[0].string("object_id").hasPrefix("5 entries in 3-299 #") && events[0].string("patient") == "7f3c1e2a-9b8d-4c6e-a5f4-0123456789ab")
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
            await #expect(throws: JournalError(.invalidArgument, "")) {
                try await JournalExport(.sequences([]), exportedBy: Self.officer).writeBundle(into: out, on: fixture.admin)
            }
            // An entry missing from the tables (as after a purge) is named, and the files written so far are removed.
            try await fixture.admin.execute("SET session_replication_role = replica")
            try await fixture.admin.execute("DELETE FROM journal.entries WHERE seq = 150")
            do {
                _ = try await JournalExport(.sequences([10, 150, 200]), exportedBy: Self.officer).writeBundle(into: out, on: fixture.admin)
                Issue.record("an export with a missing entry succeeded")
            } catch let error as JournalError {
                #expect(error.code == .notFound && error.message.contains("entry 150"), "\(error)")
            }
            await #expect(throws: JournalError(.notFound, "")) {
                try await JournalExport(range: 100...200, exportedBy: Self.officer).writeFHIR(
                    to: out + "/fhir.json", origin: "journal.test.example", now: 0, on: fixture.admin)
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: out).isEmpty)
            #expect(try await exportEvents(fixture).isEmpty)
        }
    }

    @Test(
        "Exports of scattered and contiguous entries, across tile boundaries and partial tiles, are accepted by the independent C2SP verifier, in round trips bounded by the tiles touched"
    )
    func interoperableAndBounded() async throws {
        var generator = TestSeed.generator(test: "JournalExportTests.interoperableAndBounded")
        try await JournalFixture.with("exportinterop") { fixture in
            var state = try await fixture.journald.perform { try JournalDatabase.loadState(on: $0) }
            for size: UInt64 in [300, 65_537, 70_000] {
                try await fixture.submit(Int(size - state.size), offset: Int(state.size))
                state = try await fixture.drain(state, batch: 10_000)
                state = try await fixture.checkpoint(state).state
            }
            try await fixture.submit(5, offset: 70_000)
            _ = try await fixture.drain(state)
            var scattered = Set<UInt64>([255, 256, 65_535, 65_536, 69_999])
            while scattered.count < 1_000 { scattered.insert(UInt64.random(in: 0..<70_000, using: &generator)) }
            let cases: [(String, EntrySelection, Int64)] = [
                ("one level-0 tile and a partial one stored full since", .range(0...299), 1),
                ("across level-0 tiles, tied to a later checkpoint", .range(250...310), 2),
                ("across the level-1 boundary", .range(65_000...65_536), 2),
                ("in the partial tiles of the last checkpoint", .range(69_800...69_999), 3),
                ("scattered over the whole journal", .sequences(scattered), 3),
            ]
            let verifier = repositoryRoot.appendingPathComponent("scripts/interop/verify-c2sp.py").path
            for (name, selection, covering) in cases {
                let out = try directory()
                defer { try? FileManager.default.removeItem(atPath: out) }
                let before = await fixture.admin.roundTrips
                let summary = try await JournalExport(selection, exportedBy: Self.officer).writeBundle(into: out, on: fixture.admin)
                let trips = await fixture.admin.roundTrips - before
                let tiles = Set(selection.sequences.map { $0 >> 8 }).count
                #expect(summary.entries == selection.count && summary.covering.id == covering && summary.latest.id == 3, "\(name)")
                // One round trip a chunk of level-0 tiles (64 full tiles of a range, up to 256 tiles of scattered
                // entries), plus a fixed few (the transaction, the checkpoints, the trees' right edges, the
                // consistency proof, the journaled event): never one an entry, nor one a tile.
                let chunks = selection.isContiguous ? (tiles + 63) / 64 : max((tiles + 255) / 256, (selection.count + 16_383) / 16_384)
                #expect(trips <= chunks + 12, "\(name): \(trips) round trips for \(selection.count) entries in \(tiles) level-0 tiles (\(chunks) chunks)")
                let interop = try await runProgram(
                    "/usr/bin/env",
                    [
                        "python3", verifier, "--vkey", fixture.signer.verifierKey.encoded, "--export", out, "--consistency", out + "/consistency",
                        "--old-checkpoint", out + "/checkpoint",
                    ])
                #expect(interop.status == 0, "\(name): \(interop.standardOutput)\(interop.standardError)")
                #expect(interop.standardOutput.contains("ok export: \(selection.count) entries"), "\(name): \(interop.standardOutput)")
                #expect(interop.standardOutput.contains("ok consistency"), "\(name): \(interop.standardOutput)")
            }
        }
    }

    @Test("A FHIR export holds one AuditEvent per entry and is journaled")
    func fhir() async throws {
        try await Self.journal("exportfhir") { fixture in
            let out = try directory()
            defer { try? FileManager.default.removeItem(atPath: out) }
            let count = try await JournalExport(range: 0...9, exportedBy: Self.officer).writeFHIR(
                to: out + "/audit.json", origin: "journal.test.example", now: 0, on: fixture.admin)
            #expect(count == 10)
            let bundle = try #require(try JSONSerialization.jsonObject(with: Data(try read(out + "/audit.json"))) as? [String: Any])
            let entries = try #require(bundle["entry"] as? [[String: Any]])
            #expect(bundle["resourceType"] as? String == "Bundle" && bundle["total"] as? Int == 10 && entries.count == 10)
            #expect(entries.map { ($0["resource"] as? [String: Any])?["id"] as? String } == (0...9).map { "\($0)" })
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
