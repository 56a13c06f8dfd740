import Foundation
import Journal
import Store
import Testing
import TestSupport

/// Proofs in bulk over a journal of 70,000 entries in PostgreSQL — past a full
/// level-1 tile, so that every kind of tile is met: full tiles stored, partial tiles
/// derived from leaf hashes and from the full tiles below them, and partial tiles
/// of a past size that the grown tree has since stored full. Every proof is checked
/// with the RFC 9162 verification functions against roots computed in memory from the
/// stored leaf hashes, not with the code that built it.
@Suite("Bulk proofs over the stored tree")
struct JournalProverTests {
    static let size = 70_000

    /// Runs `body` with a journal of `size` entries (no checkpoint), its leaf hashes, dropped on every path.
    static func journal<Result>(_ purpose: String, _ body: (JournalFixture, [[UInt8]]) async throws -> Result) async throws -> Result {
        try await JournalFixture.with(purpose) { fixture in
            let state = try await fixture.journald.perform { try JournalDatabase.loadState(on: $0) }
            try await fixture.submit(size)
            _ = try await fixture.drain(state, batch: 10_000)
            let leaves = try await fixture.admin.query("SELECT leaf_hash FROM journal.entries ORDER BY seq").rows.map { try $0.bytes("leaf_hash") }
            #expect(leaves.count == size)
            return try await body(fixture, leaves)
        }
    }

    /// A checkpoint record of `size` leaves: the prover only needs the size.
    static func checkpoint(size: Int, root: [UInt8]) -> CheckpointRecord {
        CheckpointRecord(id: Int64(size), treeSize: UInt64(size), rootHash: root, issuedAt: 0, note: "")
    }

    /// Sizes on either side of tile boundaries at levels 0 and 1.
    static let sizes = [1, 2, 3, 255, 256, 257, 300, 511, 512, 4_097, 65_535, 65_536, 65_537, 65_792, 66_000, 70_000]

    @Test("Inclusion proofs of scattered entries verify at sizes around every tile boundary, and each tile is read at most once")
    func scatteredAcrossSizes() async throws {
        var generator = TestSeed.generator(test: "JournalProverTests.scatteredAcrossSizes")
        try await Self.journal("proverscattered") { fixture, leaves in
            for size in Self.sizes {
                let root = MerkleTree.root(leaves[0..<size])
                var chosen = Set([0, 1, 254, 255, 256, 257, 511, 512, 65_535, 65_536, 65_537, size - 2, size - 1].filter { $0 >= 0 && $0 < size })
                for _ in 0..<40 { chosen.insert(Int.random(in: 0..<size, using: &generator)) }
                // One entry in every level-0 tile, so that every tile under the size is needed.
                for sequence in stride(from: 0, to: size, by: 128) { chosen.insert(sequence + Int.random(in: 0..<min(128, size - sequence), using: &generator)) }
                let selection = EntrySelection.sequences(chosen.map(UInt64.init))
                let record = Self.checkpoint(size: size, root: root)
                let (proofs, tilesRead) = try await fixture.admin.transaction(isolation: .repeatableRead) { connection in
                    let prover = JournalProver(checkpoint: record, on: connection)
                    var proofs: [InclusionProof] = []
                    try prover.inclusionProofs(selection) { proofs.append($0) }
                    return (proofs, prover.tilesRead)
                }
                #expect(proofs.map(\.index) == selection.sequences, "size \(size): one proof per entry, in order")
                for proof in proofs {
                    #expect(proof.treeSize == UInt64(size))
                    #expect(proof.verify(leafHash: leaves[Int(proof.index)], root: root), "size \(size), entry \(proof.index)")
                }
                // A proof built from other hashes fails: the verification above can fail.
                if let proof = proofs.first, size > 1 {
                    #expect(!proof.verify(leafHash: leaves[(Int(proof.index) + 1) % size], root: root))
                }
                // Each needed tile once: the full tiles under the size, and the edge tiles the
                // grown tree has stored full since (read for their first hashes).
                let edgeStored = [(size & 0xFF, (size >> 8) + 1 <= Self.size >> 8), ((size >> 8) & 0xFF, (size >> 16) + 1 <= Self.size >> 16)]
                    .filter { $0.0 > 0 && $0.1 }.count
                let needed = size / 256 + size / 65_536 + edgeStored
                #expect(tilesRead == needed, "size \(size): \(tilesRead) tiles read, \(needed) needed")
            }
        }
    }

    @Test("Proofs of a contiguous range across level-0 and level-1 tile boundaries equal RFC 9162's, entries are checked against the tree")
    func contiguousWithEntries() async throws {
        try await Self.journal("provercontiguous") { fixture, leaves in
            // The last two span several chunks (16,384 entries each), starting inside a tile.
            for (size, range) in [
                (70_000, UInt64(65_000)...66_100), (65_537, UInt64(65_280)...65_536), (300, UInt64(0)...299), (66_000, UInt64(0)...65_999),
                (70_000, UInt64(100)...40_099), (65_600, UInt64(30_001)...65_599),
            ] {
                let root = MerkleTree.root(leaves[0..<size])
                let record = Self.checkpoint(size: size, root: root)
                let (checked, sample) = try await fixture.admin.transaction(isolation: .repeatableRead) { connection in
                    let prover = JournalProver(checkpoint: record, on: connection)
                    var checked = 0
                    var sample: [(UInt64, [[UInt8]])] = []
                    try prover.provenEntries(.range(range)) { entry in
                        // Checked here, on the prover's thread, against the leaf hash of the bytes handed out.
                        guard entry.proof.verify(leafHash: MerkleTree.leafHash(entry.canonical), root: root), entry.sequence == range.lowerBound + UInt64(checked) else {
                            return
                        }
                        checked += 1
                        if entry.sequence % 997 == 0 || entry.sequence == range.upperBound { sample.append((entry.sequence, entry.proof.hashes)) }
                    }
                    return (checked, sample)
                }
                #expect(checked == range.count, "size \(size): every entry of \(range) proven, in order")
                for (sequence, hashes) in sample {
                    #expect(hashes == MerkleTree.inclusionProof(index: Int(sequence), leaves[0..<size]), "size \(size), entry \(sequence)")
                }
            }
        }
    }

    @Test("Dense scattered entries (several chunks, many entries a tile) are proven in order, each once")
    func denseScattered() async throws {
        var generator = TestSeed.generator(test: "JournalProverTests.denseScattered")
        try await Self.journal("proverdense") { fixture, leaves in
            var chosen = Set<UInt64>()
            while chosen.count < 30_000 { chosen.insert(UInt64.random(in: 0..<UInt64(Self.size), using: &generator)) }
            let selection = EntrySelection.sequences(chosen)
            let root = MerkleTree.root(leaves[...])
            let record = Self.checkpoint(size: Self.size, root: root)
            let (proven, failures) = try await fixture.admin.transaction(isolation: .repeatableRead) { connection in
                var proven: [UInt64] = []
                var failures: [UInt64] = []
                try JournalProver(checkpoint: record, on: connection).provenEntries(selection) { entry in
                    proven.append(entry.sequence)
                    if !entry.proof.verify(leafHash: MerkleTree.leafHash(entry.canonical), root: root) { failures.append(entry.sequence) }
                }
                return (proven, failures)
            }
            #expect(proven == selection.sequences)
            #expect(failures.isEmpty, "entries whose proof does not verify: \(failures.prefix(10))")
        }
    }

    @Test("A consistency chain verifies link by link, sizes around tile boundaries; equal sizes give an empty proof")
    func consistencyChain() async throws {
        try await Self.journal("proverchain") { fixture, leaves in
            let sizes = [1, 255, 256, 300, 300, 65_535, 65_537, 66_000, 70_000]
            let records = sizes.map { Self.checkpoint(size: $0, root: MerkleTree.root(leaves[0..<$0])) }
            let links = try await fixture.admin.transaction(isolation: .repeatableRead) { connection in
                var links: [ConsistencyLink] = []
                try JournalProver.consistencyChain(records, on: connection) { links.append($0) }
                return links
            }
            #expect(links.count == sizes.count - 1)
            for link in links {
                #expect(link.proof.verify(oldRoot: link.old.rootHash, newRoot: link.new.rootHash), "\(link.old.treeSize) → \(link.new.treeSize)")
                #expect(link.proof.hashes == (link.old.treeSize == link.new.treeSize ? [] : MerkleTree.consistencyProof(oldSize: Int(link.old.treeSize), leaves[0..<Int(link.new.treeSize)])))
            }
            await #expect(throws: JournalError(.invalidArgument, "")) {
                try await fixture.admin.transaction(isolation: .repeatableRead) { connection in
                    try JournalProver.consistencyChain([records[3], records[1]], on: connection) { _ in }
                }
            }
        }
    }

    @Test("Entries whose bytes contradict the tree, or that are missing, are refused naming the entry")
    func tamperedAndMissing() async throws {
        try await JournalFixture.with("provertamper") { fixture in
            var state = try await fixture.journald.perform { try JournalDatabase.loadState(on: $0) }
            try await fixture.submit(600)
            state = try await fixture.drain(state)
            let covering = try await fixture.checkpoint(state).checkpoint
            try await fixture.admin.execute("SET session_replication_role = replica")
            try await fixture.admin.execute("UPDATE journal.entries SET canonical = overlay(canonical placing '\\x41'::bytea from 40 for 1) WHERE seq = 300")
            await #expect(throws: JournalError(.inconsistentState, "")) {
                try await fixture.admin.transaction(isolation: .repeatableRead) { connection in
                    try JournalProver(checkpoint: covering, on: connection).provenEntries(.range(200...400)) { _ in }
                }
            }
            // Proofs alone need only the tiles: the tampered entry is still proven (its stored leaf hash is intact).
            let proofs = try await fixture.admin.transaction(isolation: .repeatableRead) { connection in
                var count = 0
                try JournalProver(checkpoint: covering, on: connection).inclusionProofs(.range(200...400)) { _ in count += 1 }
                return count
            }
            #expect(proofs == 201)
            try await fixture.admin.execute("DELETE FROM journal.entries WHERE seq = 450")
            do {
                try await fixture.admin.transaction(isolation: .repeatableRead) { connection in
                    try JournalProver(checkpoint: covering, on: connection).provenEntries(.sequences([10, 450, 500])) { _ in }
                }
                Issue.record("a missing entry was not noticed")
            } catch let error as JournalError {
                #expect(error.code == .notFound && error.message.contains("entry 450"), "\(error)")
            }
            await #expect(throws: JournalError(.invalidArgument, "")) {
                try await fixture.admin.transaction(isolation: .repeatableRead) { connection in
                    try JournalProver(checkpoint: covering, on: connection).inclusionProofs(.sequences([599, 600])) { _ in }
                }
            }
        }
    }
}
