import Cryptography
public import ErrorConventions
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
    /// True for an entry of a purged month: its bytes are in the month's cold archive,
    /// and only its leaf hash, read from the stored level-0 hash tile, is handed over
    /// (``storedLeafHash``; empty when that tile is missing).
    var isArchived: Bool { get }
}

extension StoredEntryRow {
    /// Rows are stored entries unless a snapshot says otherwise.
    public var isArchived: Bool { false }
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
    /// The ranges of entries purged after their month was archived, in sequence order.
    /// ``forEachEntry(from:_:)`` hands over an archived row (``StoredEntryRow/isArchived``)
    /// for each of their sequence numbers.
    func archivedRanges() throws -> [ArchivedRange]
}

extension JournalSnapshot {
    /// No month purged.
    public func archivedRanges() throws -> [ArchivedRange] { [] }
}

/// Something `verify` found wrong.
public struct VerificationFailure: Sendable, Hashable, Codable, CustomStringConvertible {
    /// What kind of problem it is. The raw values are stable: they appear in
    /// `osmosectl journal verify`'s output (text and JSON) and in the security
    /// officer's runbook.
    public enum Code: String, ErrorCode, Codable, CaseIterable {
        /// A checkpoint id is missing from the numbering.
        case checkpointMissing = "journal.verify.checkpoint_missing"
        /// A checkpoint's note is not validly signed by a known key of the log.
        case checkpointSignature = "journal.verify.checkpoint_signature"
        /// A checkpoint's stored size, root or time differ from its signed note.
        case checkpointColumns = "journal.verify.checkpoint_columns"
        /// A checkpoint's tree size or time goes back from the previous one.
        case checkpointRollback = "journal.verify.checkpoint_rollback"
        /// The entries do not give the root a checkpoint signs.
        case checkpointRoot = "journal.verify.checkpoint_root"
        /// The entries do not give the chain hash a checkpoint signs.
        case checkpointChain = "journal.verify.checkpoint_chain"
        /// A checkpoint is signed only by keys the journal retired before its size.
        case checkpointRetiredKey = "journal.verify.checkpoint_retired_key"
        /// The checkpoint an incremental run starts from is missing or invalid.
        case sinceUnusable = "journal.verify.since_unusable"
        /// An entry is missing from the sequence.
        case entryMissing = "journal.verify.entry_missing"
        /// An entry is stored more than once.
        case entryDuplicate = "journal.verify.entry_duplicate"
        /// An entry's stored bytes are not a canonical entry.
        case entryNotCanonical = "journal.verify.entry_not_canonical"
        /// An entry's bytes name another sequence number than its row.
        case entrySequence = "journal.verify.entry_sequence"
        /// An entry's sequenced_at differs from its row's or goes back in time.
        case entryTime = "journal.verify.entry_time"
        /// An entry's leaf hash does not match its bytes.
        case leafHash = "journal.verify.leaf_hash"
        /// An entry's chain hash does not follow from the previous entry.
        case chainHash = "journal.verify.chain_hash"
        /// An entry's search columns differ from its bytes.
        case searchColumns = "journal.verify.search_columns"
        /// A checkpoint covers more entries than the journal holds.
        case entriesTruncated = "journal.verify.entries_truncated"
        /// `journal.head` disagrees with the entries.
        case head = "journal.verify.head"
        /// The stored hash tiles differ from the entries' (or the tree at `--since` from its checkpoint).
        case tiles = "journal.verify.tiles"
        /// A witness holds a checkpoint the database lacks (rolled back or forked).
        case witnessUnknownCheckpoint = "journal.verify.witness_unknown_checkpoint"
        /// A witness skips checkpoints.
        case witnessGap = "journal.verify.witness_gap"
        /// A witness lacks the newest checkpoints (beyond the grace period).
        case witnessBehind = "journal.verify.witness_behind"
        /// A witness's `checkpoint` file is not the last note of its log.
        case witnessLatest = "journal.verify.witness_latest"
        /// An entry of a purged month is still stored, or its level-0 hash tile is missing.
        case archivedEntry = "journal.verify.archived_entry"
        /// A month is recorded as purged, but the journal holds no event of that purge.
        case archiveUnjournaled = "journal.verify.archive_unjournaled"
    }

    /// What kind of problem it is.
    public let code: Code
    /// The first entry whose integrity the problem puts in doubt.
    public let sequence: UInt64?
    /// The checkpoint concerned, if any.
    public let checkpoint: Int64?
    /// What is wrong, without patient data.
    public let message: String

    public var description: String {
        var text = code.rawValue
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
    /// The ranges purged after archiving, each with where its archive lies and the
    /// journal event of its purge. Their entries were not read (their leaf hashes, from
    /// the stored tiles, were), so `entriesChecked` counts only stored entries.
    public var archivedRanges: [ArchivedRangeCheck] = []
    /// How many archived entries' leaf hashes were replayed from the stored tiles.
    public var archivedEntriesReplayed: UInt64 = 0

    /// True when nothing is wrong.
    public var passed: Bool { failures.isEmpty }
    /// The first bad sequence number, if any failure names one.
    public var firstBadSequence: UInt64? { failures.compactMap(\.sequence).min() }
}

/// A purged range as `verify` found it: where its archive lies, and the journal
/// event of its purge.
public struct ArchivedRangeCheck: Sendable, Hashable, Codable {
    /// Where the journal event of the purge was found.
    public enum Purge: Sendable, Hashable, Codable {
        /// Among the entries, at this sequence number.
        case journaled(sequence: UInt64)
        /// Not among the stored entries, but sequenced during this later purged month (its archive holds it).
        case inArchivedMonth(String)
        /// Not sequenced yet: the journal has not moved past the purge.
        case pending
        /// Not looked for (an incremental run, or the replay stopped before).
        case notChecked
        /// Nowhere: ``VerificationFailure/Code/archiveUnjournaled``.
        case missing
    }

    /// The range, as recorded.
    public let range: ArchivedRange
    /// Where its purge is journaled.
    public let purge: Purge
}

/// The security officer's proof that the journal is complete and unaltered: the
/// sequence has no gaps, every entry's bytes are canonical and match its leaf and
/// chain hashes and its search columns, every checkpoint is signed by the log key
/// and states the root the entries give at its size (so consecutive checkpoints are
/// consistent), the stored tiles are the tree's, and every witness copy equals the
/// database's.
public struct JournalVerifier {
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

    /// Verifies `snapshot`, from the beginning or from checkpoint `since` (whose
    /// signature and root against the stored tree are checked first), and compares
    /// the witness copies (`witnesses`: directory name → its notes in order).
    ///
    /// The stages, each with its own inputs and outputs: the checkpoints
    /// (`CheckpointStage`); where the entries are replayed from (`ReplayStart`); the
    /// entries, rebuilding the tree and the chain and comparing them at every
    /// checkpoint's size (`EntryReplay`); the retirements of each checkpoint's
    /// signers; the end of the journal against its head; the stored tiles
    /// (`TileStage`); the witness copies (`WitnessStage`).
    /// - Throws: what reading the snapshot throws; problems found are in the report.
    public func verify(_ snapshot: some JournalSnapshot, since: Int64? = nil, witnesses: [(name: String, notes: [String], latest: String?)] = [])
        throws -> VerificationReport
    {
        var report = VerificationReport()
        var failures = FailureLog()
        let checkpoints = try CheckpointStage.check(snapshot, from: since ?? 1, keys: keys, failures: &failures)
        report.checkpointsChecked = checkpoints.checked.count
        report.latestCheckpoint = checkpoints.checked.last?.record.id
        guard let start = try ReplayStart.find(in: snapshot, since: since, checkpoints: checkpoints.checked, failures: &failures) else {
            report.failures = failures.found
            return report
        }
        report.firstSequence = start.next
        let archived = try snapshot.archivedRanges()
        var replay = EntryReplay(from: start, checkpoints: checkpoints.checked.filter(\.valid), archived: archived, failures: &failures)
        try snapshot.forEachEntry(from: start.next) { row in replay.check(row, failures: &failures) }
        report.entriesChecked = replay.next - start.next - replay.archivedReplayed
        report.archivedEntriesReplayed = replay.archivedReplayed
        checkpoints.checkSigners(retiredAt: replay.retirements, failures: &failures)
        report.archivedRanges = replay.checkPurgesJournaled(incremental: since != nil, grace: witnessGrace, failures: &failures)
        if !replay.failed {
            replay.checkEnd(head: try snapshot.head(), failures: &failures)
            report.tilesChecked = try TileStage.check(snapshot, expected: replay.expectedTiles, from: start.next, end: replay.next, failures: &failures)
        }
        report.witnessNotesChecked = WitnessStage(
            checkpoints: checkpoints, incremental: since != nil, now: now, grace: witnessGrace
        ).check(witnesses, failures: &failures)
        report.failures = failures.sorted
        return report
    }
}

/// The problems found so far, in the order found.
struct FailureLog {
    private(set) var found: [VerificationFailure] = []

    mutating func add(_ code: VerificationFailure.Code, _ sequence: UInt64?, _ checkpoint: Int64?, _ message: String) {
        found.append(VerificationFailure(code: code, sequence: sequence, checkpoint: checkpoint, message: message))
    }

    /// The lowest sequence number first, then the lowest checkpoint.
    var sorted: [VerificationFailure] {
        found.sorted { ($0.sequence ?? .max, $0.checkpoint ?? .max) < ($1.sequence ?? .max, $1.checkpoint ?? .max) }
    }
}

/// Stage 1: the checkpoints' numbering, signatures, stated values, and monotonic
/// sizes and times.
struct CheckpointStage {
    /// A checkpoint as checked.
    struct Checked {
        let record: CheckpointRecord
        /// The chain hash it signs (`osmose-chain`), when valid.
        let chain: [UInt8]?
        /// True when its signature and stated values hold.
        let valid: Bool
        /// The size of the previous valid checkpoint: the entries from there on are what this one vouches for.
        let coveredFrom: UInt64
        /// The ids of the log keys whose signatures verified.
        var signedBy: [UInt32] = []
    }

    /// Every checkpoint read, in id order.
    private(set) var checked: [Checked] = []
    /// Each stored note's checkpoint id.
    private(set) var idsByNote: [String: Int64] = [:]
    /// Each stored checkpoint's id, size and time, in id order.
    private(set) var stored: [(id: Int64, size: UInt64, issuedAt: Int64)] = []

    /// Checks the checkpoints from id `firstID` on.
    static func check(_ snapshot: some JournalSnapshot, from firstID: Int64, keys: [NoteVerifierKey], failures: inout FailureLog) throws -> CheckpointStage {
        var stage = CheckpointStage()
        var expectedID = firstID
        var previousValid: (size: UInt64, issuedAt: Int64)?
        try snapshot.forEachCheckpoint(from: firstID) { record in
            if record.id != expectedID {
                failures.add(.checkpointMissing, previousValid?.size ?? 0, expectedID, "checkpoint #\(expectedID) is missing (the next stored one is #\(record.id))")
                expectedID = record.id
            }
            expectedID += 1
            stage.idsByNote[record.note] = record.id
            stage.stored.append((record.id, record.treeSize, record.issuedAt))
            let checked = check(record, coveredFrom: previousValid?.size ?? 0, keys: keys, failures: &failures)
            if checked.valid {
                if let previousValid, record.treeSize < previousValid.size || record.issuedAt < previousValid.issuedAt {
                    failures.add(.checkpointRollback, record.treeSize, record.id, "the tree size or time goes back from the previous checkpoint")
                }
                previousValid = (record.treeSize, record.issuedAt)
            }
            stage.checked.append(checked)
        }
        return stage
    }

    /// One checkpoint's signature and stated values.
    private static func check(_ record: CheckpointRecord, coveredFrom: UInt64, keys: [NoteVerifierKey], failures: inout FailureLog) -> Checked {
        let opened: Checkpoint
        let signedBy: [UInt32]
        do {
            let result = try Checkpoint.open(record.note, logKeys: keys)
            opened = result.checkpoint
            signedBy = result.signedBy.map(\.keyID)
        } catch {
            failures.add(.checkpointSignature, coveredFrom, record.id, "the note is not validly signed by a known key of the log: \(error)")
            return Checked(record: record, chain: nil, valid: false, coveredFrom: coveredFrom)
        }
        var chain: [UInt8]?
        var time: String?
        for line in opened.extensions {
            if line.hasPrefix("osmose-chain ") { chain = Data(base64Encoded: String(line.dropFirst(13))).map(Array.init) }
            if line.hasPrefix("osmose-time ") { time = String(line.dropFirst(12)) }
        }
        guard opened.size == record.treeSize, opened.rootHash == record.rootHash, time == JournalEntry.rfc3339(microseconds: record.issuedAt),
            chain?.count == 32
        else {
            failures.add(.checkpointColumns, coveredFrom, record.id, "the stored size, root or time differ from what the signed note says")
            return Checked(record: record, chain: nil, valid: false, coveredFrom: coveredFrom)
        }
        return Checked(record: record, chain: chain, valid: true, coveredFrom: coveredFrom, signedBy: signedBy)
    }

    /// A checkpoint whose tree holds the retirement of every key that signed it
    /// (`retiredAt`: key id → the size from which it is retired).
    func checkSigners(retiredAt retirements: [UInt32: UInt64], failures: inout FailureLog) {
        for checkpoint in checked where checkpoint.valid {
            let live = checkpoint.signedBy.filter { id in retirements[id].map { checkpoint.record.treeSize < $0 } ?? true }
            if live.isEmpty {
                let retired = checkpoint.signedBy.map { String(format: "%08x", $0) }.joined(separator: ", ")
                failures.add(
                    .checkpointRetiredKey, checkpoint.coveredFrom, checkpoint.record.id,
                    "checkpoint #\(checkpoint.record.id) is signed only by key \(retired), retired by the journal before its size \(checkpoint.record.treeSize)")
            }
        }
    }
}

/// Stage 2: where the entries are replayed from: entry 0 and an empty tree, or, for
/// an incremental run, checkpoint `since`'s size, with the tree's edge rebuilt from
/// the stored tiles (it must give the checkpoint's root) and the chain hash it signs.
struct ReplayStart {
    let edge: TreeEdge
    let chain: [UInt8]
    /// The first sequence number to read.
    let next: UInt64

    /// The start; nil, with the failure recorded, when checkpoint `since` cannot serve.
    static func find(in snapshot: some JournalSnapshot, since: Int64?, checkpoints: [CheckpointStage.Checked], failures: inout FailureLog) throws
        -> ReplayStart?
    {
        guard let since else { return ReplayStart(edge: TreeEdge(), chain: JournalDatabase.chainSeed, next: 0) }
        guard let anchor = checkpoints.first(where: \.valid), anchor.record.id == since else {
            failures.add(.sinceUnusable, nil, since, "checkpoint #\(since) is missing or invalid: run a full verify")
            return nil
        }
        let edge = try snapshot.edge(size: anchor.record.treeSize)
        guard edge.root() == anchor.record.rootHash, let chain = anchor.chain else {
            failures.add(.tiles, 0, since, "the stored tree does not give checkpoint #\(since)'s root: run a full verify")
            return nil
        }
        return ReplayStart(edge: edge, chain: chain, next: anchor.record.treeSize)
    }
}

/// Stage 3: the entries in order, each checked against its row, its hashes and its
/// search columns, rebuilding the tree and the chain, which are compared with every
/// valid checkpoint at its size. The first bad entry ends the replay (what follows
/// it cannot be vouched for).
struct EntryReplay {
    private(set) var edge: TreeEdge
    private(set) var chain: [UInt8]
    /// The next sequence number expected.
    private(set) var next: UInt64
    private var lastSequencedAt = Int64.min
    /// The hash of each full tile the entries complete, by level and index.
    private(set) var expectedTiles: [Int: [UInt64: [UInt8]]] = [:]
    /// Signing keys retired by journal events: key id → the tree size from which they are retired.
    private(set) var retirements: [UInt32: UInt64] = [:]
    /// True once an entry failed.
    private(set) var failed = false
    /// The valid checkpoints whose size is not reached yet.
    private var pending: ArraySlice<CheckpointStage.Checked>
    /// The purged ranges, in sequence order, and the first one not passed yet.
    private let archived: [ArchivedRange]
    private var archivedIndex = 0
    /// How many archived entries were replayed from their tiles' leaf hashes.
    private(set) var archivedReplayed: UInt64 = 0
    /// The journal events of purges: month → the sequence number of the first one.
    private var purgeEvents: [String: UInt64] = [:]
    /// The purged range whose recorded retirements were last merged.
    private var retirementsMerged = -1

    init(from start: ReplayStart, checkpoints: [CheckpointStage.Checked], archived: [ArchivedRange] = [], failures: inout FailureLog) {
        edge = start.edge
        chain = start.chain
        next = start.next
        pending = checkpoints[...]
        self.archived = archived
        checkReachedCheckpoints(failures: &failures)
    }

    /// The purged range holding `sequence`, if any (rows come in sequence order).
    private mutating func archivedRange(containing sequence: UInt64) -> ArchivedRange? {
        while archivedIndex < archived.count, archived[archivedIndex].lastSequence < sequence { archivedIndex += 1 }
        guard archivedIndex < archived.count, archived[archivedIndex].firstSequence <= sequence else { return nil }
        return archived[archivedIndex]
    }

    /// An entry of a purged month: its leaf hash, from the stored level-0 tile, extends
    /// the tree and the chain, which the checkpoints then vouch for as for any entry.
    private mutating func replayArchived(_ row: some StoredEntryRow, failures: inout FailureLog) {
        guard let range = archivedRange(containing: row.sequence) else {
            fail(.entryMissing, "entry \(next) is missing (no purged month holds it)", failures: &failures)
            return
        }
        // The signing keys its entries retire, as read from them when it was archived.
        if retirementsMerged != archivedIndex {
            for (key, sequence) in range.signingKeyRetirements { retirements[key] = min(retirements[key] ?? sequence + 1, sequence + 1) }
            retirementsMerged = archivedIndex
        }
        let leaf = Array(row.storedLeafHash)
        guard leaf.count == 32 else {
            fail(.archivedEntry, "hash tile 0/\(next >> 8), which holds the leaf hash of archived entry \(next), is missing", failures: &failures)
            return
        }
        chain = JournalDatabase.chainHash(previous: chain, leafHash: leaf)
        for tile in edge.append(leafHash: leaf) {
            expectedTiles[tile.level, default: [:]][tile.index] = SHA256.hash(tile.hashes)
        }
        next += 1
        archivedReplayed += 1
        checkReachedCheckpoints(failures: &failures)
    }

    /// Checks the next stored row.
    mutating func check(_ row: some StoredEntryRow, failures: inout FailureLog) {
        guard !failed else { return }
        guard row.sequence == next else {
            if row.sequence > next {
                fail(.entryMissing, "entry \(next) is missing (the next stored one is \(row.sequence))", failures: &failures)
            } else {
                failures.add(.entryDuplicate, row.sequence, nil, "entry \(row.sequence) is stored more than once")
                failed = true
            }
            return
        }
        if row.isArchived { return replayArchived(row, failures: &failures) }
        if let range = archivedRange(containing: row.sequence) {
            return fail(.archivedEntry, "entry \(next) lies in \(range.month), recorded as purged, but is still stored", failures: &failures)
        }
        guard let (entry, leaf, nextChain) = checked(row, failures: &failures) else { return }
        noteRetirement(entry, row)
        notePurge(entry, row)
        chain = nextChain
        lastSequencedAt = entry.sequencedAt
        for tile in edge.append(leafHash: leaf) {
            expectedTiles[tile.level, default: [:]][tile.index] = SHA256.hash(tile.hashes)
        }
        next += 1
        checkReachedCheckpoints(failures: &failures)
    }

    /// The row's bytes scanned, its leaf hash and the chain hash after it; nil, with
    /// the failure recorded, when the row is not what the journal stores.
    private mutating func checked(_ row: some StoredEntryRow, failures: inout FailureLog) -> (scan: CanonicalScan, leaf: [UInt8], chain: [UInt8])? {
        let (canonical, storedLeaf, storedChain) = (row.canonicalBytes, row.storedLeafHash, row.storedChainHash)
        let entry: CanonicalScan
        do {
            entry = try CanonicalScan(canonical)
        } catch {
            fail(.entryNotCanonical, "the stored bytes are not a canonical entry: \(error)", failures: &failures)
            return nil
        }
        guard entry.sequence == row.sequence else {
            fail(.entrySequence, "the entry's bytes say seq \(entry.sequence)", failures: &failures)
            return nil
        }
        guard entry.sequencedAt == row.sequencedAt, entry.sequencedAt >= lastSequencedAt else {
            fail(.entryTime, "sequenced_at differs from the bytes or goes back in time", failures: &failures)
            return nil
        }
        let leaf = MerkleTree.leafHash(canonical)
        guard Self.same(leaf, storedLeaf) else {
            fail(.leafHash, "the leaf hash does not match the entry's bytes", failures: &failures)
            return nil
        }
        let nextChain = JournalDatabase.chainHash(previous: chain, leafHash: leaf)
        guard Self.same(nextChain, storedChain) else {
            fail(.chainHash, "the chain hash does not follow from the previous entry", failures: &failures)
            return nil
        }
        guard entry.occurredAt == row.occurredAt, row.searchColumnsAgree(with: entry) else {
            fail(.searchColumns, "the search columns differ from the entry's bytes", failures: &failures)
            return nil
        }
        return (entry, leaf, nextChain)
    }

    private mutating func fail(_ code: VerificationFailure.Code, _ message: String, failures: inout FailureLog) {
        failures.add(code, next, nil, message)
        failed = true
    }

    /// Records the retirement of a signing key when the entry is one (the first one counts).
    private mutating func noteRetirement(_ entry: CanonicalScan, _ row: some StoredEntryRow) {
        let bytes = row.canonicalBytes
        guard entry.field(.objectType, in: bytes, equals: Self.signingKeyObjectTypeBytes), entry.field(.action, in: bytes, equals: Self.keyAdminBytes),
            let reason = entry.slice(.reason, in: bytes), reason.starts(with: Self.retirementBytes),
            let objectID = entry.slice(.objectID, in: bytes), objectID.count == 8,
            let keyID = UInt32(String(decoding: objectID, as: UTF8.self), radix: 16)
        else { return }
        retirements[keyID] = retirements[keyID] ?? row.sequence + 1
    }

    /// Records the journal event of a month's purge (the first one counts).
    private mutating func notePurge(_ entry: CanonicalScan, _ row: some StoredEntryRow) {
        let bytes = row.canonicalBytes
        guard entry.field(.objectType, in: bytes, equals: Self.monthObjectTypeBytes), entry.field(.action, in: bytes, equals: Self.retentionAdminBytes),
            let reason = entry.slice(.reason, in: bytes), reason.starts(with: Self.purgedBytes),
            let month = entry.slice(.objectID, in: bytes)
        else { return }
        let name = String(decoding: month, as: UTF8.self)
        if purgeEvents[name] == nil { purgeEvents[name] = row.sequence }
    }

    /// Stage 7b: every purged range has the journal event of its purge among the
    /// entries — or in a later purged month (whose archive then holds it), or not yet
    /// sequenced (the journal has not moved `grace` past the purge). A range recorded
    /// as purged without such an event is an unjournaled removal. An incremental run
    /// does not read the events before its start and says so instead.
    func checkPurgesJournaled(incremental: Bool, grace: Int64, failures: inout FailureLog) -> [ArchivedRangeCheck] {
        archived.map { range in
            if let sequence = purgeEvents[range.month] { return ArchivedRangeCheck(range: range, purge: .journaled(sequence: sequence)) }
            guard !failed else { return ArchivedRangeCheck(range: range, purge: .notChecked) }
            if let holder = archived.first(where: { $0.month != range.month && $0.sequencedFrom <= range.purgedAt + grace && range.purgedAt < $0.sequencedBefore }) {
                return ArchivedRangeCheck(range: range, purge: .inArchivedMonth(holder.month))
            }
            if lastSequencedAt < range.purgedAt + grace { return ArchivedRangeCheck(range: range, purge: .pending) }
            if incremental { return ArchivedRangeCheck(range: range, purge: .notChecked) }
            failures.add(
                .archiveUnjournaled, range.firstSequence, nil,
                "entries \(range.firstSequence)…\(range.lastSequence) (\(range.month)) are recorded as purged, but the journal holds no event of that purge")
            return ArchivedRangeCheck(range: range, purge: .missing)
        }
    }

    /// Compares the tree and the chain with every pending checkpoint of the current size.
    private mutating func checkReachedCheckpoints(failures: inout FailureLog) {
        while let first = pending.first, first.record.treeSize == edge.size {
            if edge.root() != first.record.rootHash {
                failures.add(.checkpointRoot, first.coveredFrom, first.record.id, "the entries do not give the root this checkpoint signs")
            } else if first.chain != chain {
                failures.add(.checkpointChain, first.coveredFrom, first.record.id, "the chain hash this checkpoint signs differs from the entries'")
            }
            pending.removeFirst()
        }
    }

    /// Stage 4, once every entry passed: no checkpoint covers more entries than
    /// there are, and the head agrees with the entries.
    func checkEnd(head: (size: UInt64, chainHash: [UInt8]), failures: inout FailureLog) {
        if let beyond = pending.first {
            failures.add(
                .entriesTruncated, next, beyond.record.id, "checkpoint #\(beyond.record.id) covers \(beyond.record.treeSize) entries but the journal ends at \(next)")
        }
        if head.size != next || head.chainHash != chain {
            failures.add(.head, min(head.size, next), nil, "journal.head says \(head.size) entries, the entries give \(next)")
        }
    }

    /// True when a computed hash equals stored bytes.
    private static func same(_ hash: [UInt8], _ stored: ArraySlice<UInt8>) -> Bool {
        hash.count == stored.count
            && hash.withUnsafeBytes { hash in stored.withUnsafeBytes { memcmp(hash.baseAddress!, $0.baseAddress!, hash.count) == 0 } }
    }

    private static let monthObjectTypeBytes = ArraySlice(ArchiveEvents.objectType.utf8)
    private static let retentionAdminBytes = ArraySlice(AccessAction.retentionAdmin.rawValue.utf8)
    private static let purgedBytes = Array(ArchiveEvents.purgedPrefix.utf8)
    private static let signingKeyObjectTypeBytes = ArraySlice(JournalVerifier.signingKeyObjectType.utf8)
    private static let keyAdminBytes = ArraySlice(AccessAction.keyAdmin.rawValue.utf8)
    private static let retirementBytes = Array(JournalVerifier.retirementReasonPrefix.utf8)
}

/// Stage 5: the stored tiles are exactly the full tiles the entries give (below the
/// start of an incremental run, only their presence).
enum TileStage {
    /// Checks the stored tiles against `expected` (the replay's) for entries `start..<end`; returns how many were compared.
    static func check(_ snapshot: some JournalSnapshot, expected: [Int: [UInt64: [UInt8]]], from start: UInt64, end: UInt64, failures: inout FailureLog)
        throws -> Int
    {
        var expected = expected
        var checked = 0
        try snapshot.forEachTile { tile in
            let coverage = UInt64(HashTile.width) << UInt64(8 * tile.level)
            let firstLeaf = tile.index &* coverage
            guard firstLeaf + coverage > start else { return }
            checked += 1
            guard let hash = expected[tile.level]?.removeValue(forKey: tile.index) else {
                return failures.add(.tiles, max(firstLeaf, end), nil, "hash tile \(tile.level)/\(tile.index) is stored but the entries do not fill it")
            }
            if hash != SHA256.hash(tile.hashes) {
                failures.add(.tiles, firstLeaf, nil, "hash tile \(tile.level)/\(tile.index) differs from the entries' hashes")
            }
        }
        for (level, tiles) in expected {
            for index in tiles.keys {
                failures.add(.tiles, index << UInt64(8 * (level + 1)), nil, "hash tile \(level)/\(index) is missing")
            }
        }
        return checked
    }
}

/// Stage 6: each witness copy is a run of the database's notes, up to the newest
/// (allowing for the grace period), and its latest file is its last note.
struct WitnessStage {
    /// The database's checkpoints.
    let checkpoints: CheckpointStage
    /// True for a run from `--since`: a witness's notes before the first one read are not known.
    let incremental: Bool
    /// The time of the check and the grace period, in microseconds.
    let now: Int64
    let grace: Int64

    /// Checks `witnesses`; returns how many notes were compared.
    func check(_ witnesses: [(name: String, notes: [String], latest: String?)], failures: inout FailureLog) -> Int {
        var compared = 0
        for witness in witnesses {
            compared += witness.notes.count
            if let lastID = lastCheckpoint(of: witness, failures: &failures) {
                let missing = checkpoints.stored.filter { $0.id > lastID && now - $0.issuedAt > grace }
                if let first = missing.first, let last = missing.last {
                    failures.add(.witnessBehind, nil, first.id, "\(witness.name) lacks checkpoints #\(first.id)…#\(last.id)")
                }
            }
            if let latest = witness.latest, let last = witness.notes.last, latest != last {
                failures.add(.witnessLatest, nil, nil, "\(witness.name)/checkpoint is not the last note of its log")
            }
        }
        return compared
    }

    /// The id of the witness's last note (0 when it holds none); nil, with the
    /// failure recorded, when its notes are not a run of the database's.
    private func lastCheckpoint(of witness: (name: String, notes: [String], latest: String?), failures: inout FailureLog) -> Int64? {
        var previousID: Int64?
        for note in witness.notes {
            guard let id = checkpoints.idsByNote[note] else {
                if incremental, previousID == nil { continue }
                let size = (try? Checkpoint(text: SignedNote.text(of: note)))?.size
                let databaseSize = checkpoints.stored.last?.size ?? 0
                failures.add(
                    .witnessUnknownCheckpoint, min(size ?? databaseSize, databaseSize), nil,
                    "\(witness.name) holds a checkpoint of size \(size.map(String.init) ?? "?") the database lacks (rolled back or forked)")
                return nil
            }
            if let previousID, id != previousID + 1 {
                failures.add(.witnessGap, nil, previousID + 1, "\(witness.name) skips from checkpoint #\(previousID) to #\(id)")
                return nil
            }
            previousID = id
        }
        return previousID ?? 0
    }
}
