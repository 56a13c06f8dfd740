import Cryptography
import Foundation

/// One stored entry row as `verify` reads it, wherever it lies: the hashed bytes,
/// the stored hashes and the unhashed search columns that must agree with them.
/// ``DatabaseSnapshot`` hands over rows that point into the COPY stream; the
/// tampering harness holds ``EntryRow`` values.
public protocol StoredEntryRow {
    /// The row's seq column.
    var sequence: UInt64 { get }
    /// The row's sequenced_at (partition key), microseconds since the Unix epoch.
    var sequencedAt: Int64 { get }
    /// Search column occurred_at, microseconds since the Unix epoch.
    var occurredAt: Int64 { get }
    /// The canonical bytes (a slice: rows streamed from the database are not copied).
    var canonicalBytes: ArraySlice<UInt8> { get }
    /// The stored leaf hash.
    var storedLeafHash: ArraySlice<UInt8> { get }
    /// The stored chain hash.
    var storedChainHash: ArraySlice<UInt8> { get }
    /// True when actor_user_id, actor_team, action, patient_id, purpose and result
    /// say what `scan` found in the canonical bytes.
    func searchColumnsAgree(with scan: CanonicalScan) -> Bool
}

/// A stored entry row held in memory.
public struct EntryRow: StoredEntryRow, Sendable, Hashable {
    /// The row's seq column.
    public var sequence: UInt64
    /// The row's sequenced_at (partition key), microseconds since the Unix epoch.
    public var sequencedAt: Int64
    /// The canonical bytes.
    public var canonical: [UInt8]
    /// The stored leaf hash.
    public var leafHash: [UInt8]
    /// The stored chain hash.
    public var chainHash: [UInt8]
    /// Search column occurred_at, microseconds since the Unix epoch.
    public var occurredAt: Int64
    /// Search column actor_user_id.
    public var actorUserID: String?
    /// Search column actor_team.
    public var actorTeam: String?
    /// Search column action.
    public var action: String
    /// Search column patient_id.
    public var patientID: String?
    /// Search column purpose.
    public var purpose: String?
    /// Search column result.
    public var result: String

    /// The row a correct journal stores for `entry`.
    public init(entry: JournalEntry, previousChain: [UInt8]) {
        let canonical = entry.canonicalBytes
        let leaf = MerkleTree.leafHash(canonical)
        self.init(
            sequence: entry.sequence, sequencedAt: entry.sequencedAt, canonical: canonical, leafHash: leaf,
            chainHash: JournalDatabase.chainHash(previous: previousChain, leafHash: leaf), occurredAt: entry.occurredAt, actorUserID: entry.actorUserID,
            actorTeam: entry.actorTeam, action: entry.action, patientID: entry.patientID, purpose: entry.purpose, result: entry.result)
    }

    /// Creates a row from its columns.
    public init(
        sequence: UInt64, sequencedAt: Int64, canonical: [UInt8], leafHash: [UInt8], chainHash: [UInt8], occurredAt: Int64, actorUserID: String?,
        actorTeam: String?, action: String, patientID: String?, purpose: String?, result: String
    ) {
        self.sequence = sequence
        self.sequencedAt = sequencedAt
        self.canonical = canonical
        self.leafHash = leafHash
        self.chainHash = chainHash
        self.occurredAt = occurredAt
        self.actorUserID = actorUserID
        self.actorTeam = actorTeam
        self.action = action
        self.patientID = patientID
        self.purpose = purpose
        self.result = result
    }

    public var canonicalBytes: ArraySlice<UInt8> { canonical[...] }
    public var storedLeafHash: ArraySlice<UInt8> { leafHash[...] }
    public var storedChainHash: ArraySlice<UInt8> { chainHash[...] }

    public func searchColumnsAgree(with scan: CanonicalScan) -> Bool {
        let canonical = canonical[...]
        return scan.field(.actorUserID, in: canonical, equals: actorUserID) && scan.field(.actorTeam, in: canonical, equals: actorTeam)
            && scan.field(.action, in: canonical, equals: action) && scan.field(.patientID, in: canonical, equals: patientID)
            && scan.field(.purpose, in: canonical, equals: purpose) && scan.field(.result, in: canonical, equals: result)
    }
}

/// What `verify` reads: the database through a consistent snapshot, or (for the
/// tampering harness and exported copies) the same data held elsewhere.
public protocol JournalSnapshot {
    /// How this snapshot hands over entry rows.
    associatedtype Row: StoredEntryRow
    /// The head: the size and chain hash the journal claims.
    func head() throws -> (size: UInt64, chainHash: [UInt8])
    /// Calls `body` for each checkpoint with id ≥ `firstID`, in id order.
    func forEachCheckpoint(from firstID: Int64, _ body: (CheckpointRecord) throws -> Void) throws
    /// Calls `body` for each entry row with seq ≥ `first`, in seq order.
    func forEachEntry(from first: UInt64, _ body: (Row) throws -> Void) throws
    /// Calls `body` for each stored full tile.
    func forEachTile(_ body: (HashTile) throws -> Void) throws
    /// The tree's edge at `size`, from the stored tiles (for an incremental run).
    func edge(size: UInt64) throws -> TreeEdge
}

/// Something `verify` found wrong.
public struct VerificationFailure: Sendable, Hashable, Codable, CustomStringConvertible {
    /// A stable code, e.g. `journal.verify.leaf_hash`.
    public let code: String
    /// The first entry whose integrity the problem puts in doubt.
    public let sequence: UInt64?
    /// The checkpoint concerned, if any.
    public let checkpoint: Int64?
    /// What is wrong, without patient data.
    public let message: String

    public var description: String {
        var text = code
        if let sequence { text += " at seq \(sequence)" }
        if let checkpoint { text += " (checkpoint #\(checkpoint))" }
        return text + ": " + message
    }
}

/// The outcome of a verification.
public struct VerificationReport: Sendable, Codable {
    /// The first sequence number checked.
    public var firstSequence: UInt64 = 0
    /// How many entries were checked.
    public var entriesChecked: UInt64 = 0
    /// How many checkpoints were checked (signature, root, consistency).
    public var checkpointsChecked = 0
    /// How many stored tiles were compared.
    public var tilesChecked = 0
    /// How many witness notes were compared, over all witness directories.
    public var witnessNotesChecked = 0
    /// The newest checkpoint checked.
    public var latestCheckpoint: Int64?
    /// Everything found wrong, the lowest sequence first.
    public var failures: [VerificationFailure] = []

    /// True when nothing is wrong.
    public var passed: Bool { failures.isEmpty }
    /// The first bad sequence number, if any failure names one.
    public var firstBadSequence: UInt64? { failures.compactMap(\.sequence).min() }
}

/// The security officer's proof that the journal is complete and unaltered: the
/// sequence has no gaps, every entry's bytes are canonical and match its leaf and
/// chain hashes and its search columns, every checkpoint is signed by the log key
/// and states the root the entries give at its size (so consecutive checkpoints are
/// consistent), the stored tiles are the tree's, and every witness copy equals the
/// database's.
public struct JournalVerifier {
    /// True when a computed hash equals stored bytes.
    private static func same(_ hash: [UInt8], _ stored: ArraySlice<UInt8>) -> Bool {
        hash.count == stored.count
            && hash.withUnsafeBytes { hash in stored.withUnsafeBytes { memcmp(hash.baseAddress!, $0.baseAddress!, hash.count) == 0 } }
    }

    /// The log's verifier keys, every one it has signed with (from configuration,
    /// never from the database).
    public let keys: [NoteVerifierKey]
    /// Checkpoints issued less than this long before `now` may still be missing
    /// from a witness copy (the daemon writes the database first).
    public var witnessGrace: Int64 = 5_000_000
    /// The time of the check, microseconds since the Unix epoch.
    public var now: Int64

    /// A verifier for the log with this key.
    public init(key: NoteVerifierKey, now: Int64) {
        self.init(keys: [key], now: now)
    }

    /// A verifier for a log that has rolled its signing key over: a checkpoint
    /// passes when one of `keys` signed it and that key was not retired (by a
    /// journal event before the checkpoint's size) — so a stolen retired key cannot
    /// vouch for later checkpoints.
    public init(keys: [NoteVerifierKey], now: Int64) {
        self.keys = keys
        self.now = now
    }

    /// The object type and reason prefix of the journal event that retires a signing
    /// key (`osmose-keyd` writes it; docs/journal.md, "Signing-key rollover").
    public static let signingKeyObjectType = "journal-signing-key"
    /// See ``signingKeyObjectType``.
    public static let retirementReasonPrefix = "retired"

    private struct CheckedCheckpoint {
        let record: CheckpointRecord
        let chain: [UInt8]?
        let valid: Bool
        /// The size of the previous valid checkpoint: the entries from there on are what this one vouches for.
        let coveredFrom: UInt64
        /// The ids of the log keys whose signatures verified.
        var signedBy: [UInt32] = []
    }

    /// Verifies `snapshot`, from the beginning or from checkpoint `since` (whose
    /// signature and root against the stored tree are checked first), and compares
    /// the witness copies (`witnesses`: directory name → its notes in order).
    public func verify(_ snapshot: some JournalSnapshot, since: Int64? = nil, witnesses: [(name: String, notes: [String], latest: String?)] = [])
        throws -> VerificationReport
    {
        var report = VerificationReport()
        var failures: [VerificationFailure] = []
        func fail(_ code: String, _ sequence: UInt64?, _ checkpoint: Int64?, _ message: String) {
            failures.append(VerificationFailure(code: "journal.verify." + code, sequence: sequence, checkpoint: checkpoint, message: message))
        }

        // Checkpoints: numbering, signatures, stated values, monotonic sizes and times.
        var checkpoints: [CheckedCheckpoint] = []
        var noteIndex: [String: Int64] = [:]
        var dbNotes: [(id: Int64, size: UInt64, issuedAt: Int64)] = []
        var expectedID = since ?? 1
        var previousValid: (size: UInt64, issuedAt: Int64)?
        try snapshot.forEachCheckpoint(from: expectedID) { record in
            if record.id != expectedID {
                fail("checkpoint_missing", previousValid?.size ?? 0, expectedID, "checkpoint #\(expectedID) is missing (the next stored one is #\(record.id))")
                expectedID = record.id
            }
            expectedID += 1
            noteIndex[record.note] = record.id
            dbNotes.append((record.id, record.treeSize, record.issuedAt))
            let firstInDoubt = previousValid?.size ?? 0
            let opened: Checkpoint
            let signedBy: [UInt32]
            do {
                let result = try Checkpoint.open(record.note, logKeys: keys)
                opened = result.checkpoint
                signedBy = result.signedBy.map(\.keyID)
            } catch {
                fail("checkpoint_signature", firstInDoubt, record.id, "the note is not validly signed by a known key of the log: \(error)")
                checkpoints.append(CheckedCheckpoint(record: record, chain: nil, valid: false, coveredFrom: firstInDoubt))
                return
            }
            var chain: [UInt8]?
            var time: String?
            for line in opened.extensions {
                if line.hasPrefix("osmose-chain ") { chain = Data(base64Encoded: String(line.dropFirst(13))).map(Array.init) }
                if line.hasPrefix("osmose-time ") { time = String(line.dropFirst(12)) }
            }
            guard opened.size == record.treeSize, opened.rootHash == record.rootHash,
                time == JournalEntry.rfc3339(microseconds: record.issuedAt), chain?.count == 32
            else {
                fail("checkpoint_columns", firstInDoubt, record.id, "the stored size, root or time differ from what the signed note says")
                checkpoints.append(CheckedCheckpoint(record: record, chain: nil, valid: false, coveredFrom: firstInDoubt))
                return
            }
            if let previousValid, record.treeSize < previousValid.size || record.issuedAt < previousValid.issuedAt {
                fail("checkpoint_rollback", record.treeSize, record.id, "the tree size or time goes back from the previous checkpoint")
            }
            previousValid = (record.treeSize, record.issuedAt)
            checkpoints.append(CheckedCheckpoint(record: record, chain: chain, valid: true, coveredFrom: firstInDoubt, signedBy: signedBy))
        }
        report.checkpointsChecked = checkpoints.count
        report.latestCheckpoint = checkpoints.last?.record.id

        // Entries: rebuild the tree and the chain and compare at every checkpoint.
        var edge = TreeEdge()
        var chain = JournalDatabase.chainSeed
        var next: UInt64 = 0
        var lastSequencedAt = Int64.min
        var expectedTiles: [Int: [UInt64: [UInt8]]] = [:]
        var pending = checkpoints.filter(\.valid)[...]
        if let since {
            guard let anchor = pending.first, anchor.record.id == since else {
                fail("since_unusable", nil, since, "checkpoint #\(since) is missing or invalid: run a full verify")
                report.failures = failures
                return report
            }
            edge = try snapshot.edge(size: anchor.record.treeSize)
            guard edge.root() == anchor.record.rootHash, let anchorChain = anchor.chain else {
                fail("tiles", 0, since, "the stored tree does not give checkpoint #\(since)'s root: run a full verify")
                report.failures = failures
                return report
            }
            chain = anchorChain
            next = anchor.record.treeSize
            report.firstSequence = next
        }
        while let first = pending.first, first.record.treeSize == edge.size {
            checkRoot(first, edge: edge, chain: chain, fail: fail)
            pending.removeFirst()
        }
        var entryFailed = false
        var retirements: [UInt32: UInt64] = [:]
        try snapshot.forEachEntry(from: next) { row in
            guard !entryFailed else { return }
            func entryFail(_ code: String, _ message: String) {
                fail(code, next, nil, message)
                entryFailed = true
            }
            guard row.sequence == next else {
                if row.sequence > next {
                    entryFail("entry_missing", "entry \(next) is missing (the next stored one is \(row.sequence))")
                } else {
                    fail("entry_duplicate", row.sequence, nil, "entry \(row.sequence) is stored more than once")
                    entryFailed = true
                }
                return
            }
            let checked: (scan: CanonicalScan, leaf: [UInt8], chain: [UInt8])? = {
                let (canonical, storedLeaf, storedChain) = (row.canonicalBytes, row.storedLeafHash, row.storedChainHash)
                let entry: CanonicalScan
                do {
                    entry = try CanonicalScan(canonical)
                } catch {
                    entryFail("entry_not_canonical", "the stored bytes are not a canonical entry: \(error)")
                    return nil
                }
                guard entry.sequence == row.sequence else {
                    entryFail("entry_sequence", "the entry's bytes say seq \(entry.sequence)")
                    return nil
                }
                guard entry.sequencedAt == row.sequencedAt, entry.sequencedAt >= lastSequencedAt else {
                    entryFail("entry_time", "sequenced_at differs from the bytes or goes back in time")
                    return nil
                }
                let leaf = MerkleTree.leafHash(canonical)
                guard Self.same(leaf, storedLeaf) else {
                    entryFail("leaf_hash", "the leaf hash does not match the entry's bytes")
                    return nil
                }
                let nextChain = JournalDatabase.chainHash(previous: chain, leafHash: leaf)
                guard Self.same(nextChain, storedChain) else {
                    entryFail("chain_hash", "the chain hash does not follow from the previous entry")
                    return nil
                }
                guard entry.occurredAt == row.occurredAt, row.searchColumnsAgree(with: entry) else {
                    entryFail("search_columns", "the search columns differ from the entry's bytes")
                    return nil
                }
                return (entry, leaf, nextChain)
            }()
            guard let (entry, leaf, nextChain) = checked else { return }
            if entry.field(.objectType, in: row.canonicalBytes, equals: Self.signingKeyObjectTypeBytes),
                entry.field(.action, in: row.canonicalBytes, equals: Self.keyAdminBytes),
                let reason = entry.slice(.reason, in: row.canonicalBytes), reason.starts(with: Self.retirementBytes),
                let objectID = entry.slice(.objectID, in: row.canonicalBytes), objectID.count == 8,
                let keyID = UInt32(String(decoding: objectID, as: UTF8.self), radix: 16)
            {
                retirements[keyID] = retirements[keyID] ?? row.sequence + 1
            }
            chain = nextChain
            lastSequencedAt = entry.sequencedAt
            for tile in edge.append(leafHash: leaf) {
                expectedTiles[tile.level, default: [:]][tile.index] = SHA256.hash(tile.hashes)
            }
            next += 1
            while let first = pending.first, first.record.treeSize == edge.size {
                checkRoot(first, edge: edge, chain: chain, fail: fail)
                pending.removeFirst()
            }
        }
        report.entriesChecked = next - report.firstSequence
        // A checkpoint whose tree holds the retirement of every key that signed it.
        for checkpoint in checkpoints where checkpoint.valid {
            let live = checkpoint.signedBy.filter { id in retirements[id].map { checkpoint.record.treeSize < $0 } ?? true }
            if live.isEmpty {
                let retired = checkpoint.signedBy.map { String(format: "%08x", $0) }.joined(separator: ", ")
                fail(
                    "checkpoint_retired_key", checkpoint.coveredFrom, checkpoint.record.id,
                    "checkpoint #\(checkpoint.record.id) is signed only by key \(retired), retired by the journal before its size \(checkpoint.record.treeSize)")
            }
        }
        if !entryFailed {
            if let beyond = pending.first {
                fail("entries_truncated", next, beyond.record.id, "checkpoint #\(beyond.record.id) covers \(beyond.record.treeSize) entries but the journal ends at \(next)")
            }
            let head = try snapshot.head()
            if head.size != next || head.chainHash != chain {
                fail("head", min(head.size, next), nil, "journal.head says \(head.size) entries, the entries give \(next)")
            }
        }

        // Stored tiles: exactly the full tiles the entries give (below the start of an incremental run, only their presence).
        if !entryFailed {
            let startSize = report.firstSequence
            try snapshot.forEachTile { tile in
                let coverage = UInt64(HashTile.width) << UInt64(8 * tile.level)
                let firstLeaf = tile.index &* coverage
                guard firstLeaf + coverage > startSize else { return }
                report.tilesChecked += 1
                guard let expected = expectedTiles[tile.level]?.removeValue(forKey: tile.index) else {
                    return fail("tiles", max(firstLeaf, next), nil, "hash tile \(tile.level)/\(tile.index) is stored but the entries do not fill it")
                }
                if expected != SHA256.hash(tile.hashes) {
                    fail("tiles", firstLeaf, nil, "hash tile \(tile.level)/\(tile.index) differs from the entries' hashes")
                }
            }
            for (level, tiles) in expectedTiles {
                for index in tiles.keys {
                    fail("tiles", index << UInt64(8 * (level + 1)), nil, "hash tile \(level)/\(index) is missing")
                }
            }
        }

        // Witness copies: each a run of the database's notes, up to the newest (allowing for the grace period).
        for witness in witnesses {
            report.witnessNotesChecked += witness.notes.count
            var previousID: Int64?
            var broken = false
            for note in witness.notes {
                guard let id = noteIndex[note] else {
                    if since != nil, previousID == nil { continue }
                    let size = (try? Checkpoint(text: SignedNote.text(of: note)))?.size
                    let dbSize = dbNotes.last?.size ?? 0
                    fail(
                        "witness_unknown_checkpoint", min(size ?? dbSize, dbSize), nil,
                        "\(witness.name) holds a checkpoint of size \(size.map(String.init) ?? "?") the database lacks (rolled back or forked)")
                    broken = true
                    break
                }
                if let previousID, id != previousID + 1 {
                    fail("witness_gap", nil, previousID + 1, "\(witness.name) skips from checkpoint #\(previousID) to #\(id)")
                    broken = true
                    break
                }
                previousID = id
            }
            if !broken {
                let lastID = previousID ?? 0
                let missing = dbNotes.filter { $0.id > lastID && now - $0.issuedAt > witnessGrace }
                if let first = missing.first, let last = missing.last {
                    fail("witness_behind", nil, first.id, "\(witness.name) lacks checkpoints #\(first.id)…#\(last.id)")
                }
            }
            if let latest = witness.latest, let last = witness.notes.last, latest != last {
                fail("witness_latest", nil, nil, "\(witness.name)/checkpoint is not the last note of its log")
            }
        }
        report.failures = failures.sorted { ($0.sequence ?? .max, $0.checkpoint ?? .max) < ($1.sequence ?? .max, $1.checkpoint ?? .max) }
        return report
    }

    private static let signingKeyObjectTypeBytes = ArraySlice(signingKeyObjectType.utf8)
    private static let keyAdminBytes = ArraySlice(AccessAction.keyAdmin.rawValue.utf8)
    private static let retirementBytes = Array(retirementReasonPrefix.utf8)

    private func checkRoot(_ checkpoint: CheckedCheckpoint, edge: TreeEdge, chain: [UInt8], fail: (String, UInt64?, Int64?, String) -> Void) {
        if edge.root() != checkpoint.record.rootHash {
            fail("checkpoint_root", checkpoint.coveredFrom, checkpoint.record.id, "the entries do not give the root this checkpoint signs")
        } else if checkpoint.chain != chain {
            fail("checkpoint_chain", checkpoint.coveredFrom, checkpoint.record.id, "the chain hash this checkpoint signs differs from the entries'")
        }
    }
}
