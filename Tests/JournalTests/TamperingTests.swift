import Foundation
import Journal
import Testing
import TestSupport

/// A journal held in memory with exactly the content PostgreSQL would hold, so
/// the tampering harness can alter and verify it a thousand times quickly. The
/// verifier is the same code `osmosectl journal verify` runs on the database.
struct MemoryJournal: JournalSnapshot {
    var entries: [EntryRow] = []
    var checkpoints: [CheckpointRecord] = []
    var tiles: [HashTile] = []
    var headSize: UInt64 = 0
    var headChain = JournalDatabase.chainSeed
    var witness: [String] = []

    /// Builds a journal of `source` entries with a checkpoint after every size in `checkpointSizes`.
    static func build(_ source: [JournalEntry], checkpointSizes: Set<Int>, signer: NoteSignerKey) throws -> MemoryJournal {
        var journal = MemoryJournal()
        var edge = TreeEdge()
        var chain = JournalDatabase.chainSeed
        for (index, entry) in source.enumerated() {
            let row = EntryRow(entry: entry, previousChain: chain)
            chain = row.chainHash
            journal.entries.append(row)
            journal.tiles += edge.append(leafHash: row.leafHash)
            if checkpointSizes.contains(index + 1) {
                let issuedAt = 1_795_000_000_000_000 + Int64(index) * 1000
                let checkpoint = Checkpoint(
                    origin: signer.verifierKey.name, size: edge.size, rootHash: edge.root(),
                    extensions: ["osmose-chain " + Data(chain).base64EncodedString(), "osmose-time " + JournalEntry.rfc3339(microseconds: issuedAt)])
                journal.checkpoints.append(
                    CheckpointRecord(
                        id: Int64(journal.checkpoints.count + 1), treeSize: edge.size, rootHash: edge.root(), issuedAt: issuedAt,
                        note: try checkpoint.signed(by: [signer])))
            }
        }
        journal.headSize = edge.size
        journal.headChain = chain
        journal.witness = journal.checkpoints.map(\.note)
        return journal
    }

    func head() throws -> (size: UInt64, chainHash: [UInt8]) { (headSize, headChain) }
    func forEachCheckpoint(from firstID: Int64, _ body: (CheckpointRecord) throws -> Void) throws {
        for record in checkpoints where record.id >= firstID { try body(record) }
    }
    func forEachEntry(from first: UInt64, _ body: (EntryRow) throws -> Void) throws {
        for row in entries where row.sequence >= first { try body(row) }
    }
    func forEachTile(_ body: (HashTile) throws -> Void) throws { for tile in tiles { try body(tile) } }
    func edge(size: UInt64) throws -> TreeEdge {
        let reader = MemoryTreeReader()
        reader.leaves = entries.map(\.leafHash)
        for tile in tiles { reader.tiles[tile.level, default: [:]][tile.index] = tile.hashes }
        return try reader.edge(size: size)
    }

    func verify(_ key: NoteVerifierKey, since: Int64? = nil) throws -> VerificationReport {
        try JournalVerifier(key: key, now: 1_900_000_000_000_000).verify(self, since: since, witnesses: [("witness", witness, witness.last)])
    }
}

@Suite("Tampering harness: verify catches every alteration of a 10,000-entry journal")
struct TamperingTests {
    static let size = 10_000
    static let signer = try! NoteSignerKey.generate(name: "journal.tamper.example")
    static let sourceEntries: [JournalEntry] = (0..<size).map(sourceEntry)

    static func sourceEntry(_ index: Int) -> JournalEntry {
        let base: Int64 = 1_795_000_000_000_000
        let occurred = base + Int64(index) * 997
        let sequenced = base + Int64(index / 50) * 1000
        let address = "10.0.\(index % 256).\(index / 256 % 256)"
        return JournalEntry(
            sequence: UInt64(index), occurredAt: occurred, sequencedAt: sequenced, source: "osmose-care", requestID: "r-\(index)",
            actorUserID: UUID().uuidString.lowercased(), actorRole: "agent", actorTeam: "sau", action: index % 7 == 0 ? "update" : "read",
            objectType: "patient", patientID: UUID().uuidString.lowercased(), purpose: "care", result: index % 11 == 0 ? "denied" : "success",
            clientIP: address, userAgent: "harness")
    }
    static let checkpointSizes = Set(stride(from: 337, through: size, by: 337)).union([size - 5])
    static let pristine = try! MemoryJournal.build(sourceEntries, checkpointSizes: checkpointSizes, signer: signer)

    enum Tampering: CaseIterable {
        case entryByte, leafHashByte, chainHashByte, searchColumn, deleteEntry, insertEntry, swapEntries, truncateTail
        case alterCheckpoint, dropCheckpoint, dropLatestCheckpoint, resignWithOtherKey, rollback, fork
    }

    /// Applies one tampering; returns the altered journal and the sequence number or
    /// checkpoint the report must name.
    static func tamper(_ kind: Tampering, _ journal: MemoryJournal, random: inout SystemRandomNumberGenerator) throws
        -> (journal: MemoryJournal, sequence: UInt64?, checkpoint: Int64?)
    {
        var altered = journal
        let k = Int.random(in: 0..<(size - 2), using: &random)
        switch kind {
        case .entryByte:
            let offset = Int.random(in: 0..<altered.entries[k].canonical.count, using: &random)
            altered.entries[k].canonical[offset] ^= UInt8.random(in: 1...255, using: &random)
            return (altered, UInt64(k), nil)
        case .leafHashByte:
            altered.entries[k].leafHash[Int.random(in: 0..<32, using: &random)] ^= 0x01
            return (altered, UInt64(k), nil)
        case .chainHashByte:
            altered.entries[k].chainHash[Int.random(in: 0..<32, using: &random)] ^= 0x80
            return (altered, UInt64(k), nil)
        case .searchColumn:
            altered.entries[k].patientID = UUID().uuidString.lowercased()
            return (altered, UInt64(k), nil)
        case .deleteEntry:
            altered.entries.remove(at: k)
            return (altered, UInt64(k), nil)
        case .insertEntry:
            var forged = sourceEntries[k]
            forged.sequence = UInt64(k + 1)
            forged.patientID = UUID().uuidString.lowercased()
            altered.entries.insert(EntryRow(entry: forged, previousChain: altered.entries[k].chainHash), at: k + 1)
            // The forged entry chains correctly onto entry k, so it is first contradicted
            // either by the displaced original (a duplicate seq k+1) or, when a checkpoint
            // signs the tree of size k+2, by that checkpoint's root — which puts in doubt
            // everything after the previous checkpoint, the first bad seq verify can prove.
            if Self.checkpointSizes.contains(k + 2) {
                return (altered, UInt64(Self.checkpointSizes.filter { $0 < k + 2 }.max() ?? 0), nil)
            }
            return (altered, UInt64(k + 1), nil)
        case .swapEntries:
            let (first, second) = (altered.entries[k], altered.entries[k + 1])
            altered.entries[k] = second
            altered.entries[k + 1] = first
            altered.entries[k].sequence = UInt64(k)
            altered.entries[k + 1].sequence = UInt64(k + 1)
            return (altered, UInt64(k), nil)
        case .truncateTail:
            let lastCovered = Int(altered.checkpoints.last!.treeSize)
            let keep = Int.random(in: 0..<lastCovered, using: &random)
            altered.entries.removeLast(altered.entries.count - keep)
            if Bool.random(using: &random) {
                altered.headSize = UInt64(keep)
                altered.headChain = keep == 0 ? JournalDatabase.chainSeed : altered.entries[keep - 1].chainHash
            }
            return (altered, UInt64(keep), nil)
        case .alterCheckpoint:
            let index = Int.random(in: 0..<altered.checkpoints.count, using: &random)
            let record = altered.checkpoints[index]
            var note = Array(record.note.utf8)
            let textLength = record.note.range(of: "\n\n")!.lowerBound.utf16Offset(in: record.note)
            note[Int.random(in: 0..<textLength, using: &random)] ^= 0x01
            altered.checkpoints[index] = CheckpointRecord(
                id: record.id, treeSize: record.treeSize, rootHash: record.rootHash, issuedAt: record.issuedAt, note: String(decoding: note, as: UTF8.self))
            return (altered, nil, record.id)
        case .dropCheckpoint:
            let index = Int.random(in: 0..<(altered.checkpoints.count - 1), using: &random)
            return (remove(index, from: altered), nil, altered.checkpoints[index].id)
        case .dropLatestCheckpoint:
            return (remove(altered.checkpoints.count - 1, from: altered), nil, nil)
        case .resignWithOtherKey:
            let index = Int.random(in: 0..<altered.checkpoints.count, using: &random)
            let record = altered.checkpoints[index]
            let impostor = try NoteSignerKey.generate(name: signer.verifierKey.name)
            let text = try SignedNote.text(of: record.note)
            altered.checkpoints[index] = CheckpointRecord(
                id: record.id, treeSize: record.treeSize, rootHash: record.rootHash, issuedAt: record.issuedAt,
                note: try SignedNote.sign(text, with: [impostor]))
            return (altered, nil, record.id)
        case .rollback:
            let keepCheckpoints = Int.random(in: 1..<altered.checkpoints.count, using: &random)
            let size = Int(altered.checkpoints[keepCheckpoints - 1].treeSize)
            var rolled = try MemoryJournal.build(Array(sourceEntries.prefix(size)), checkpointSizes: checkpointSizes, signer: signer)
            rolled.witness = altered.witness
            return (rolled, UInt64(size), nil)
        case .fork:
            var forked = sourceEntries
            forked[k].result = forked[k].result == "success" ? "denied" : "success"
            var rebuilt = try MemoryJournal.build(forked, checkpointSizes: checkpointSizes, signer: signer)
            rebuilt.witness = altered.witness
            return (rebuilt, nil, nil)
        }
    }

    static func remove(_ index: Int, from journal: MemoryJournal) -> MemoryJournal {
        var altered = journal
        altered.checkpoints.remove(at: index)
        return altered
    }

    @Test("An untampered journal passes, in full and incrementally")
    func untampered() async throws {
        // CPU-bound work runs on its own thread, never on the cooperative pool that other suites' services need.
        let report = try await offThePool { try Self.pristine.verify(Self.signer.verifierKey) }
        #expect(report.passed, "\(report.failures)")
        #expect(report.entriesChecked == UInt64(Self.size) && report.tilesChecked == Self.size / 256 && report.witnessNotesChecked == Self.checkpointSizes.count)
        let incremental = try await offThePool { try Self.pristine.verify(Self.signer.verifierKey, since: 20) }
        #expect(incremental.passed && incremental.entriesChecked == UInt64(Self.size - 20 * 337), "\(incremental.failures)")
    }

    @Test("1,008 random tamperings of every kind are all caught, naming the first bad sequence number or checkpoint")
    func randomTamperings() async throws {
        let rounds = 72
        let kinds = Tampering.allCases
        // Two worker threads (the machine's cores), off the cooperative pool.
        let outcomes = try await withThrowingTaskGroup(of: [String].self) { group in
            for worker in 0..<2 {
                group.addTask {
                    try await offThePool {
                        var random = SystemRandomNumberGenerator()
                        var problems: [String] = []
                        for kind in kinds.enumerated().filter({ $0.offset % 2 == worker }).map(\.element) {
                            for _ in 0..<rounds {
                                let (journal, sequence, checkpoint) = try Self.tamper(kind, Self.pristine, random: &random)
                                let report = try journal.verify(Self.signer.verifierKey)
                                if report.passed {
                                    problems.append("\(kind): not caught")
                                    continue
                                }
                                if let sequence, report.firstBadSequence != sequence {
                                    problems.append("\(kind): expected seq \(sequence), report names \(report.firstBadSequence.map(String.init) ?? "none"): \(report.failures.first!)")
                                }
                                if let checkpoint, !report.failures.contains(where: { $0.checkpoint == checkpoint }) {
                                    problems.append("\(kind): checkpoint #\(checkpoint) not named: \(report.failures)")
                                }
                            }
                        }
                        return problems
                    }
                }
            }
            return try await group.reduce(into: [String]()) { $0 += $1 }
        }
        #expect(kinds.count * rounds >= 1000)
        #expect(outcomes.isEmpty, "\(outcomes.prefix(10))")
        #expect(try await offThePool { try Self.pristine.verify(Self.signer.verifierKey).passed }, "the untampered original still passes")
    }
}
