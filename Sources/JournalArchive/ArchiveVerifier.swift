public import Age
import Archive
import Cryptography
public import ErrorConventions
import Foundation
public import Journal
public import Store

/// Something wrong with a cold archive, named precisely.
public struct ArchiveProblem: Sendable, Hashable, Codable, CustomStringConvertible {
    /// What kind of problem it is; the raw values are stable (CLI output, runbooks).
    public enum Code: String, ErrorCode, Codable, CaseIterable {
        /// The file cannot be decrypted with the identities given, or is not a readable archive.
        case unreadable = "journal.archive.unreadable"
        /// A member is missing, out of place or unexpected.
        case layout = "journal.archive.layout"
        /// A member's size or SHA-256 differs from the manifest's, or the manifest lists other members.
        case manifest = "journal.archive.manifest"
        /// `month.json` is malformed or contradicts the archive.
        case summary = "journal.archive.summary"
        /// A checkpoint note is malformed, of another log, or out of order.
        case checkpoint = "journal.archive.checkpoint"
        /// A checkpoint is not validly signed by a key of the log.
        case checkpointSignature = "journal.archive.checkpoint_signature"
        /// An entry is not canonical, or its sequence number or time is wrong.
        case entry = "journal.archive.entry"
        /// A hash tile is missing, extra, or differs from the entries' hashes.
        case tiles = "journal.archive.tiles"
        /// The tree does not give a checkpoint's root.
        case root = "journal.archive.root"
        /// The hash chain does not give a checkpoint's `osmose-chain` or `chain_after`.
        case chain = "journal.archive.chain"
        /// The archive differs from the online journal (checkpoints, tiles, the entries' chain).
        case online = "journal.archive.online"
        /// The archive is not the one the database records for its month.
        case record = "journal.archive.record"
    }

    /// What kind of problem it is.
    public let code: Code
    /// The first entry concerned, if any.
    public let sequence: UInt64?
    /// What is wrong (never an entry's content).
    public let message: String

    public var description: String { code.rawValue + (sequence.map { " at seq \($0)" } ?? "") + ": " + message }
}

/// What verifying a cold archive found.
public struct ArchiveVerification: Sendable, Codable {
    /// The file verified, its SHA-256 (hex) and size.
    public var file: String
    public var fileSHA256: String?
    public var fileBytes: Int64 = 0
    /// `month.json`, once read.
    public var summary: MonthSummary?
    /// The SHA-256 (hex) of `manifest.json`.
    public var manifestSHA256: String?
    /// Members read.
    public var members = 0
    /// Entries decoded, hashed and replayed into the tree.
    public var entriesChecked: UInt64 = 0
    /// Checkpoints whose root and chain were compared with the tree, and how many signatures were verified.
    public var checkpointsChecked: Int64 = 0
    public var signaturesVerified: Int64 = 0
    /// Hash tiles compared with the replayed tree.
    public var tilesChecked = 0
    /// The journal signing keys the month's entries retire: key id (8 hex digits) → the retirement entry's sequence number.
    public var signingKeyRetirements: [String: UInt64] = [:]
    /// True when the archive was also compared with the online journal.
    public var comparedWithOnline = false
    /// Everything found wrong.
    public var problems: [ArchiveProblem] = []
    /// What the comparison with the online journal needs, once the archive was read through.
    var onlineFacts: OnlineFacts?

    /// True when nothing is wrong.
    public var passed: Bool { problems.isEmpty }

    /// A verification of `file`, nothing checked yet.
    init(file: String) { self.file = file }

    enum CodingKeys: String, CodingKey {
        case file, fileSHA256, fileBytes, summary, manifestSHA256, members, entriesChecked, checkpointsChecked, signaturesVerified, tilesChecked
        case signingKeyRetirements, comparedWithOnline, problems
    }
}

/// Verifies a journal month's cold archive on its own — every entry decoded and
/// hashed into the tree, the tree's tiles authenticated against the covering
/// checkpoint's signed root, every checkpoint's root and chain matched, every member
/// against the manifest — and, given a connection, against the online journal too.
/// The archive is read once, as a stream: memory holds one entry bundle, the
/// checkpoints' sizes and digests, and a few tiles.
public struct JournalArchiveVerifier: Sendable {
    /// Which checkpoint signatures to verify.
    public enum Signatures: String, Sendable, Codable {
        /// Every checkpoint's (thousands a second per core: slow for a month of millions).
        case all
        /// The covering checkpoint's only: every other checkpoint is still matched,
        /// size, root and chain, with the tree that the covering one vouches for.
        case covering
    }

    /// The log's verifier keys (from configuration, never from the archive).
    public let keys: [NoteVerifierKey]
    /// Which signatures are verified.
    public var signatures: Signatures

    /// A verifier trusting `keys`.
    public init(keys: [NoteVerifierKey], signatures: Signatures = .all) {
        self.keys = keys
        self.signatures = signatures
    }

    /// Verifies the archive at `path` on its own.
    /// - Parameters:
    ///   - path: the archive file.
    ///   - identities: age identities, one of which opens it.
    /// - Returns: what was checked and every problem found.
    /// - Throws: ``JournalArchiveError`` `.invalidArgument` when no verifier key is given.
    public func verify(file path: String, identities: [any AgeUnwrapping]) throws -> ArchiveVerification {
        guard !keys.isEmpty else { throw JournalArchiveError(.invalidArgument, "no verifier key of the log: set journal.verifier_keys or pass --key") }
        var verification = ArchiveVerification(file: path)
        do {
            let digest = try FileBlocks.sha256(ofFile: path)
            verification.fileSHA256 = digest.sha256
            verification.fileBytes = digest.size
        } catch {
            verification.problems.append(ArchiveProblem(code: .unreadable, sequence: nil, message: "\(error)"))
            return verification
        }
        replay(path: path, into: &verification, growing: nil) { try EncryptedArchiveReader(path: path, identities: identities) }
        return verification
    }

    /// Verifies, as ``verify(file:identities:)`` does, the archive that `growing`
    /// describes while its writer writes it: the file itself is read back as it grows
    /// (through its own descriptor, never the writer's memory), so that the
    /// verification overlaps the writing. The file's SHA-256 and size are those of
    /// every byte read, to the end the writer gives. A problem that stops the replay
    /// abandons the file, so the writer stops too.
    /// - Throws: ``JournalArchiveError`` `.invalidArgument` when no verifier key is given.
    func verify(growing: GrowingFile, identities: [any AgeUnwrapping]) throws -> ArchiveVerification {
        guard !keys.isEmpty else {
            growing.abandon()
            throw JournalArchiveError(.invalidArgument, "no verifier key of the log: set journal.verifier_keys or pass --key")
        }
        var verification = ArchiveVerification(file: growing.path)
        replay(path: growing.path, into: &verification, growing: growing) { try EncryptedArchiveReader(growing: growing, identities: identities) }
        return verification
    }

    /// One thread decrypts and decompresses what `open` reads, this one hashes and
    /// replays: the two halves of the work overlap. Reading along a growing file, the
    /// reader also reads to the file's end and gives its size and SHA-256.
    private func replay(path: String, into verification: inout ArchiveVerification, growing: GrowingFile?, open: @escaping @Sendable () throws -> EncryptedArchiveReader) {
        let replay = ArchiveReplay(keys: keys, signatures: signatures)
        let pipe = MemberPipe()
        let produced = DispatchSemaphore(value: 0)
        let readBack = ReadBackDigest()
        let producer = Thread {
            do {
                let reader = try open()
                try reader.forEachMember { name, _, content in
                    try pipe.push(.start(name))
                    try content { span in try pipe.push(.block(span.withUnsafeBytes { Array($0) })) }
                    try pipe.push(.end)
                }
                if growing != nil {
                    try reader.readToEnd()
                    readBack.size = reader.bytesRead
                    readBack.sha256 = reader.fileSHA256
                }
                pipe.finish(nil)
            } catch {
                pipe.finish(error)
            }
            produced.signal()
        }
        producer.name = "journal-archive-read"
        producer.start()
        do {
            while let name = try pipe.nextMember() {
                try replay.member(name) { consume in
                    while let block = try pipe.nextBlock() { try consume(block.span.bytes) }
                }
            }
            replay.finish()
        } catch is ReplayStop {
            growing?.abandon()
        } catch {
            growing?.abandon()
            replay.fail(.unreadable, nil, "\(path): \(error)")
        }
        pipe.cancel()
        produced.wait()
        if growing != nil {
            verification.fileSHA256 = readBack.sha256
            verification.fileBytes = readBack.size ?? 0
        }
        replay.report(into: &verification)
    }

    /// Verifies the archive on its own, then against the online journal: the
    /// checkpoints and hash tiles it holds are the database's, the chain around the
    /// month agrees with the stored entries, and, when the database records an archive
    /// of the month, it is this file.
    /// - Throws: ``JournalArchiveError`` `.invalidArgument` without a verifier key; ``StoreError`` from the database.
    public func verify(file path: String, identities: [any AgeUnwrapping], against connection: Connection) async throws -> ArchiveVerification {
        var verification = try verify(file: path, identities: identities)
        guard let summary = verification.summary, let facts = verification.onlineFacts else { return verification }
        let fileSHA256 = verification.fileSHA256
        let manifestSHA256 = verification.manifestSHA256
        let problems = try await connection.transaction(isolation: .repeatableRead) { connection in
            try OnlineComparison.problems(summary: summary, facts: facts, fileSHA256: fileSHA256, manifestSHA256: manifestSHA256, on: connection)
        }
        verification.problems += problems
        verification.comparedWithOnline = true
        return verification
    }
}

/// What the comparison with the online journal needs from reading the archive.
struct OnlineFacts: Sendable, Codable {
    /// The SHA-256 of the `checkpoints` member and of the covering note.
    let checkpointsSHA256: [UInt8]
    let coveringNote: String
    /// Every tile's SHA-256, by `level/index` or `level/index.p/width`.
    let tileDigests: [String: [UInt8]]
}

/// The size and SHA-256 of a file read as it grew.
/// `@unchecked Sendable`: the reading thread sets both fields before it signals the
/// end of its work, and they are read only after waiting for that signal.
private final class ReadBackDigest: @unchecked Sendable {
    var size: Int64?
    var sha256: String?
}

/// Thrown inside the reader's loop to stop at a problem that makes the rest meaningless.
struct ReplayStop: Error {}

/// Hands an archive's members, block by block, from the thread that decrypts and
/// decompresses to the one that checks them, holding at most `limit` bytes.
final class MemberPipe: @unchecked Sendable {
    // @unchecked: every mutable field is read and written under `condition`.
    enum Item {
        case start(String)
        case block([UInt8])
        case end
    }

    struct Cancelled: Error {}

    private let condition = NSCondition()
    private var items: [Item] = []
    private var head = 0
    private var bytes = 0
    private var done = false
    private var failure: (any Error)?
    private var cancelled = false
    private let limit: Int

    init(limit: Int = 32 << 20) { self.limit = limit }

    /// Queues an item, waiting while the queue is full.
    /// - Throws: ``Cancelled`` once the reading side has stopped.
    func push(_ item: Item) throws {
        condition.lock()
        defer { condition.unlock() }
        while bytes >= limit && !cancelled { condition.wait() }
        guard !cancelled else { throw Cancelled() }
        if case .block(let block) = item { bytes += block.count }
        items.append(item)
        condition.broadcast()
    }

    /// Ends the stream, with the producer's error if it failed.
    func finish(_ error: (any Error)?) {
        condition.lock()
        done = true
        failure = error
        condition.broadcast()
        condition.unlock()
    }

    /// Stops the producer (the reading side is done or gave up).
    func cancel() {
        condition.lock()
        cancelled = true
        items.removeAll()
        head = 0
        bytes = 0
        condition.broadcast()
        condition.unlock()
    }

    private func pop() throws -> Item? {
        condition.lock()
        defer { condition.unlock() }
        while head == items.count && !done { condition.wait() }
        guard head < items.count else {
            if let failure { throw failure }
            return nil
        }
        let item = items[head]
        head += 1
        if case .block(let block) = item { bytes -= block.count }
        if head > 1024 {
            items.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        return item
    }

    /// The next member's name; nil at the end of the archive.
    func nextMember() throws -> String? {
        guard let item = try pop() else { return nil }
        guard case .start(let name) = item else { throw JournalArchiveError(.verification, "the archive reader lost its place") }
        return name
    }

    /// The current member's next block; nil at its end.
    func nextBlock() throws -> [UInt8]? {
        guard let item = try pop() else { throw JournalArchiveError(.verification, "the archive ends inside a member") }
        switch item {
        case .block(let block): return block
        case .end: return nil
        case .start: throw JournalArchiveError(.verification, "the archive reader lost its place")
        }
    }
}

/// The archive's members, checked in order as they stream by.
final class ArchiveReplay {
    private let keys: [NoteVerifierKey]
    private let signatures: JournalArchiveVerifier.Signatures
    private var problems: [ArchiveProblem] = []

    /// The member kinds, in archive order.
    private enum Stage: Int, CaseIterable {
        case readme, summary, checkpoints, checkpoint, tiles, entries, manifest

        var memberName: String { ["README", "month.json", "checkpoints", "checkpoint", "tile/…", "entries/…", "manifest.json"][rawValue] }
    }

    /// The kind of the last member read; nil before the first, and after the manifest nothing may follow.
    private var stage: Stage?
    private var finished = false
    private var root = ""
    private var month: JournalMonth?
    private var summary: MonthSummary?
    private var chainBefore: [UInt8] = []
    private var chainAfter: [UInt8] = []
    private var coveringRoot: [UInt8] = []
    private var members: [ArchiveMember] = []
    private var manifestSHA256: String?

    // Checkpoints: each one's size and SHA-256(root ‖ chain), in order; the last note.
    private var checkpointSizes: [UInt64] = []
    private var checkpointDigests: [UInt8] = []
    private var lastNote: [UInt8] = []
    private var lastTime: [UInt8] = []
    private var signatureBatch: [String] = []
    private var signatureBatchStart = 0
    private var signaturesVerified: Int64 = 0
    private var checkpointsSHA256: [UInt8] = []
    private var coveringNote = ""

    // Tiles: every tile's digest; the contents the replay needs.
    private var tileDigests: [TileKey: [UInt8]] = [:]
    private var keptTiles: [TileKey: [UInt8]] = [:]
    private var lastTileKey: TileKey?
    private var tilesChecked = 0

    // The replay.
    private var edge = TreeEdge()
    private var compact = CompactRange(edge: TreeEdge())
    private var chain: [UInt8] = []
    private var next: UInt64 = 0
    private var replayStarted = false
    private var nextCheckpoint = 0
    /// Checkpoints reached by the replay whose root and chain are still to be compared:
    /// the tree as it was at their size (its peaks, shared until the next append), the
    /// chain then, and their place. Compared in batches on every core: a month holds
    /// about one checkpoint per entry, and each root costs one hash per peak.
    private var pendingRoots: [(index: Int, size: UInt64, range: CompactRange, chain: [UInt8])] = []
    private var lastSequencedAt = Int64.min
    private var lastBundle: UInt64?
    private var bundles = 0
    private var occurredFrom = Int64.max
    private var occurredTo = Int64.min
    private var emitted: Set<TileKey> = []
    private var entriesChecked: UInt64 = 0
    private var checkpointsChecked: Int64 = 0
    private var retirements: [String: UInt64] = [:]

    init(keys: [NoteVerifierKey], signatures: JournalArchiveVerifier.Signatures) {
        self.keys = keys
        self.signatures = signatures
    }

    /// Records a problem.
    func fail(_ code: ArchiveProblem.Code, _ sequence: UInt64?, _ message: String) {
        problems.append(ArchiveProblem(code: code, sequence: sequence, message: message))
    }

    /// Records a problem after which nothing more can be checked, and stops reading.
    private func stop(_ code: ArchiveProblem.Code, _ sequence: UInt64?, _ message: String) throws -> Never {
        fail(code, sequence, message)
        throw ReplayStop()
    }

    // MARK: members

    /// Checks one member, hashing it on the way; `content` hands over its blocks in order.
    func member(_ name: String, _ content: ((RawSpan) throws -> Void) throws -> Void) throws {
        let (kind, relative) = try classify(name)
        var hasher = SHA256Hasher()
        var size: Int64 = 0
        if kind == .checkpoints {
            var splitter = NoteLogSplitter()
            try content { span in
                hasher.update(span)
                size += Int64(span.byteCount)
                do {
                    try splitter.feed(span) { note in try checkpointNote(note) }
                } catch let error as JournalArchiveError {
                    try stop(.checkpoint, nil, error.message)
                }
            }
            do { try splitter.finish() } catch let error as JournalArchiveError { try stop(.checkpoint, nil, error.message) }
            try flushSignatures()
            let digest = hasher.finalize()
            checkpointsSHA256 = digest
            members.append(ArchiveMember(path: name, size: size, sha256: hexDigest(digest)))
            try endCheckpoints()
            return
        }
        var bytes: [UInt8] = []
        try content { span in
            hasher.update(span)
            size += Int64(span.byteCount)
            span.withUnsafeBytes { bytes.append(contentsOf: $0) }
        }
        let digest = hexDigest(hasher.finalize())
        switch kind {
        case .readme: break
        case .summary: try readSummary(bytes)
        case .checkpoint: try readCovering(bytes)
        case .tiles: try readTile(relative, bytes)
        case .entries: try readBundle(relative, bytes)
        case .manifest:
            manifestSHA256 = digest
            try readManifest(bytes)
            return
        case .checkpoints: break
        }
        members.append(ArchiveMember(path: name, size: size, sha256: digest))
    }

    /// The member's kind and its path under its kind's directory; checks the order.
    private func classify(_ name: String) throws -> (Stage, String) {
        if root.isEmpty {
            guard let slash = name.firstIndex(of: "/"), name[..<slash].hasPrefix("journal-"),
                let parsed = try? JournalMonth(parsing: String(name[name.index(name.startIndex, offsetBy: 8)..<slash]))
            else { try stop(.layout, nil, "\(name) is not under a directory journal-YYYY-MM/") }
            root = String(name[...slash])
            month = parsed
        }
        guard name.hasPrefix(root) else { try stop(.layout, nil, "\(name) is not under \(root)") }
        let path = String(name.dropFirst(root.count))
        let found: Stage
        var relative = ""
        switch path {
        case "README": found = .readme
        case "month.json": found = .summary
        case "checkpoints": found = .checkpoints
        case "checkpoint": found = .checkpoint
        case "manifest.json": found = .manifest
        default:
            if path.hasPrefix("tile/") {
                found = .tiles
                relative = String(path.dropFirst(5))
            } else if path.hasPrefix("entries/") {
                found = .entries
                relative = String(path.dropFirst(8))
            } else {
                try stop(.layout, nil, "\(name) is not a member of the archive format")
            }
        }
        let due = stage.map { Stage(rawValue: $0.rawValue + 1) } ?? .readme
        let repeated = found == stage && (found == .tiles || found == .entries)
        guard !finished, found == due || repeated else {
            let expected = finished ? "nothing after manifest.json" : (due.map { "\($0.memberName) is due" } ?? "")
            try stop(.layout, nil, "\(name) is out of place: \(expected) (members come in the order README, month.json, checkpoints, checkpoint, tile/, entries/, manifest.json)")
        }
        if found == .entries, stage == .tiles { try startReplay() }
        if found == .manifest { try endEntries() }
        stage = found
        return (found, relative)
    }

    // MARK: month.json

    private func readSummary(_ bytes: [UInt8]) throws {
        let summary: MonthSummary
        do {
            summary = try ArchiveJSON.decode(MonthSummary.self, bytes, member: "month.json")
        } catch let error as JournalArchiveError {
            try stop(.summary, nil, error.message)
        }
        guard summary.format == ArchiveLayout.formatName, summary.version == ArchiveLayout.formatVersion else {
            try stop(.summary, nil, "format \(summary.format) version \(summary.version) is not \(ArchiveLayout.formatName) version \(ArchiveLayout.formatVersion)")
        }
        guard summary.month == month else { try stop(.summary, nil, "month.json says \(summary.month), the directory \(root)") }
        guard summary.lastSequence >= summary.firstSequence, summary.entryCount == summary.lastSequence - summary.firstSequence + 1,
            summary.covering.size > summary.lastSequence, summary.covering.id == summary.lastCheckpointID,
            summary.checkpointCount == summary.lastCheckpointID - summary.firstCheckpointID + 1, summary.checkpointCount >= 1
        else { try stop(.summary, nil, "the sequence numbers, the covering checkpoint or the checkpoint count contradict one another") }
        guard let before = Data(base64Encoded: summary.chainBefore), before.count == 32, let after = Data(base64Encoded: summary.chainAfter), after.count == 32,
            let root = Data(base64Encoded: summary.covering.root), root.count == 32
        else { try stop(.summary, nil, "chain_before, chain_after or the covering root is not base64 of 32 bytes") }
        guard keys.contains(where: { $0.name == summary.origin }) else {
            try stop(.checkpointSignature, nil, "the archive is of the log \(summary.origin); no verifier key given has that name")
        }
        self.summary = summary
        chainBefore = Array(before)
        chainAfter = Array(after)
        coveringRoot = Array(root)
    }

    // MARK: checkpoints

    private func checkpointNote(_ note: [UInt8]) throws {
        guard let summary else { return }
        let index = checkpointSizes.count
        let id = summary.firstCheckpointID + Int64(index)
        let facts: CheckpointFacts
        do {
            facts = try CheckpointFacts(note: note)
        } catch let error as JournalArchiveError {
            try stop(.checkpoint, nil, "checkpoint #\(id): \(error.message)")
        }
        guard facts.origin.elementsEqual(summary.origin.utf8) else { try stop(.checkpoint, nil, "checkpoint #\(id) is of another log") }
        if let previous = checkpointSizes.last, facts.size < previous {
            fail(.checkpoint, summary.firstSequence, "checkpoint #\(id)'s tree size goes back from the previous one")
        }
        if facts.time.lexicographicallyPrecedes(lastTime) { fail(.checkpoint, summary.firstSequence, "checkpoint #\(id)'s time goes back from the previous one") }
        lastTime = facts.time
        checkpointSizes.append(facts.size)
        checkpointDigests += SHA256.hash(prefix: nil, facts.root, facts.chain)
        lastNote = note
        if signatures == .all {
            signatureBatch.append(String(decoding: note, as: UTF8.self))
            if signatureBatch.count == 4096 { try flushSignatures() }
        }
    }

    /// Verifies the batch's signatures on every core.
    private func flushSignatures() throws {
        guard !signatureBatch.isEmpty, let summary else { return }
        let notes = signatureBatch
        let keys = self.keys
        let bad = Locked<[Int]>([])
        let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var index = worker
            while index < notes.count {
                if (try? Checkpoint.open(notes[index], logKeys: keys)) == nil { bad.withLock { $0.append(index) } }
                index += workers
            }
        }
        for index in bad.withLock({ $0 }).sorted() {
            fail(.checkpointSignature, summary.firstSequence, "checkpoint #\(summary.firstCheckpointID + Int64(signatureBatchStart + index)) is not validly signed by a key of the log")
        }
        signaturesVerified += Int64(notes.count)
        signatureBatchStart += notes.count
        signatureBatch.removeAll(keepingCapacity: true)
    }

    private func endCheckpoints() throws {
        guard let summary else { return }
        guard Int64(checkpointSizes.count) == summary.checkpointCount else {
            try stop(.checkpoint, nil, "checkpoints holds \(checkpointSizes.count) notes, month.json says \(summary.checkpointCount)")
        }
        guard let last = checkpointSizes.last, last == summary.covering.size else {
            try stop(.checkpoint, nil, "the last checkpoint is not the covering checkpoint of size \(summary.covering.size)")
        }
        if let first = checkpointSizes.first, first <= summary.firstSequence {
            fail(.checkpoint, summary.firstSequence, "the first checkpoint's tree ends before the month")
        }
        if checkpointSizes.dropLast().contains(where: { $0 > summary.lastSequence }) {
            fail(.checkpoint, summary.lastSequence, "a checkpoint before the covering one already covers the whole month")
        }
    }

    // MARK: checkpoint

    private func readCovering(_ bytes: [UInt8]) throws {
        guard let summary else { return }
        guard bytes == lastNote else { try stop(.checkpoint, nil, "checkpoint is not the last note of checkpoints") }
        let note = String(decoding: bytes, as: UTF8.self)
        coveringNote = note
        do {
            let opened = try Checkpoint.open(note, logKeys: keys).checkpoint
            guard opened.size == summary.covering.size, opened.rootHash == coveringRoot else {
                try stop(.summary, nil, "month.json's covering checkpoint differs from the signed one")
            }
            if signatures == .covering { signaturesVerified += 1 }
        } catch let error as ReplayStop {
            throw error
        } catch {
            try stop(.checkpointSignature, summary.lastSequence, "the covering checkpoint #\(summary.covering.id) is not validly signed by a key of the log: \(error)")
        }
    }

    // MARK: tiles

    /// A tile's level, index and partial width (nil for a full tile).
    struct TileKey: Hashable, Comparable {
        let level: Int
        let index: UInt64
        let width: Int?

        static func < (lhs: TileKey, rhs: TileKey) -> Bool { (lhs.level, lhs.index, lhs.width ?? 256) < (rhs.level, rhs.index, rhs.width ?? 256) }

        var path: String { JournalFormats.tilePath(level: level, index: index, partialWidth: width).dropFirst(5).description }
    }

    private func readTile(_ relative: String, _ bytes: [UInt8]) throws {
        guard let summary, let key = Self.tileKey(relative) else { try stop(.layout, nil, "tile/\(relative) is not a tile path") }
        guard bytes.count == (key.width ?? HashTile.width) * 32 else { try stop(.tiles, nil, "tile/\(relative) holds \(bytes.count) bytes") }
        if let previous = lastTileKey, !(previous < key) { try stop(.layout, nil, "tile/\(relative) is out of order") }
        lastTileKey = key
        tileDigests[key] = SHA256.hash(bytes)
        let firstTile = summary.firstSequence >> UInt64(8 * (key.level + 1))
        if key.level > 0 || key.index == firstTile || key.index >= (summary.lastSequence + 1) >> 8 { keptTiles[key] = bytes }
    }

    /// Parses `L/N` or `L/N.p/W` (N in three-digit groups, all but the last prefixed with x).
    static func tileKey(_ path: String) -> TileKey? {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, let level = Int(parts[0]), (0...7).contains(level), parts[0].count == 1 else { return nil }
        var groups = Array(parts.dropFirst())
        var width: Int?
        if let last = groups.last, groups.count >= 2, groups[groups.count - 2].hasSuffix(".p") {
            guard let parsed = Int(last), (1...255).contains(parsed), String(parsed) == last else { return nil }
            width = parsed
            groups.removeLast()
            groups[groups.count - 1] = groups[groups.count - 1].dropLast(2)
        }
        guard let index = indexFromGroups(groups) else { return nil }
        return TileKey(level: level, index: index, width: width)
    }

    /// N from its path groups (`x001`, `234`): the inverse of ``JournalFormats/tilePath(level:index:partialWidth:)``'s encoding.
    static func indexFromGroups(_ groups: [Substring]) -> UInt64? {
        var index: UInt64 = 0
        for (position, group) in groups.enumerated() {
            let last = position == groups.count - 1
            let digits = last ? group : (group.hasPrefix("x") ? group.dropFirst() : "")
            guard digits.count == 3, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = UInt64(digits) else { return nil }
            if position == 0, value == 0, groups.count > 1 { return nil }
            let (product, overflow) = index.multipliedReportingOverflow(by: 1000)
            guard !overflow else { return nil }
            index = product + value
        }
        return groups.isEmpty ? nil : index
    }

    /// The tiles the covering checkpoint's tree has from the month's first entry to its edge.
    private func expectedTiles(_ summary: MonthSummary) -> [TileKey] {
        var keys: [TileKey] = []
        var level = 0
        while summary.covering.size >> UInt64(8 * level) > 0 {
            let nodes = summary.covering.size >> UInt64(8 * level)
            let fullCount = nodes >> 8
            var index = summary.firstSequence >> UInt64(8 * (level + 1))
            while index < fullCount {
                keys.append(TileKey(level: level, index: index, width: nil))
                index += 1
            }
            if nodes & 0xFF > 0 { keys.append(TileKey(level: level, index: fullCount, width: Int(nodes & 0xFF))) }
            level += 1
        }
        return keys
    }

    /// The hashes at `level` with indices `range`, from the archive's tile holding them.
    private func tileHashes(level: Int, range: Range<UInt64>) -> [[UInt8]]? {
        guard !range.isEmpty else { return [] }
        let index = range.lowerBound >> 8
        let needed = Int((range.upperBound - 1) & 0xFF) + 1
        let content = keptTiles[TileKey(level: level, index: index, width: nil)]
            ?? keptTiles.first { $0.key.level == level && $0.key.index == index && ($0.key.width ?? 256) >= needed }?.value
        guard let content else { return nil }
        return range.map { position in
            let offset = Int(position & 0xFF) * 32
            return Array(content[offset..<offset + 32])
        }
    }

    // MARK: entries

    /// The tree at the month's first entry, from the tiles holding what precedes it.
    private func startReplay() throws {
        guard let summary else { try stop(.layout, nil, "the archive lacks month.json") }
        let first = summary.firstSequence
        var partial: [[[UInt8]]] = []
        var level = 0
        while level == 0 || first >> UInt64(8 * level) > 0 {
            let shift = UInt64(8 * level)
            let count = (first >> shift) & 0xFF
            let start = (first >> (shift + 8)) << 8
            guard let hashes = tileHashes(level: level, range: start..<start + count) else {
                try stop(.tiles, first, "the tile at level \(level) holding the hashes before entry \(first) is missing")
            }
            partial.append(hashes)
            level += 1
        }
        do {
            edge = try TreeEdge(size: first, partialTiles: partial)
        } catch {
            try stop(.tiles, first, "the tiles before entry \(first) do not form a tree edge: \(error)")
        }
        compact = CompactRange(edge: edge)
        chain = chainBefore
        next = first
        replayStarted = true
    }

    private func readBundle(_ relative: String, _ bytes: [UInt8]) throws {
        guard let summary, let month else { return }
        guard let index = Self.indexFromGroups(relative.split(separator: "/", omittingEmptySubsequences: false)) else {
            try stop(.layout, nil, "entries/\(relative) is not a bundle path")
        }
        guard index == next >> 8, next <= summary.lastSequence, lastBundle.map({ index > $0 }) ?? true else {
            try stop(.layout, next, "entries/\(relative) is out of order (entry \(next) is due next)")
        }
        lastBundle = index
        bundles += 1
        var offset = 0
        let end = min(summary.lastSequence + 1, (index + 1) << 8)
        while offset < bytes.count {
            guard offset + 2 <= bytes.count else { try stop(.entry, next, "entries/\(relative) is truncated in a length") }
            let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
            guard offset + 2 + length <= bytes.count else { try stop(.entry, next, "entries/\(relative) is truncated in an entry") }
            guard next < end else { try stop(.entry, next, "entries/\(relative) holds more entries than the month has there") }
            try replayEntry(bytes[offset + 2..<offset + 2 + length], month: month)
            offset += 2 + length
        }
        guard next == end else { try stop(.entry, next, "entries/\(relative) lacks entries \(next)…\(end - 1)") }
    }

    private func replayEntry(_ canonical: ArraySlice<UInt8>, month: JournalMonth) throws {
        let scan: CanonicalScan
        do {
            scan = try CanonicalScan(canonical)
        } catch {
            try stop(.entry, next, "entry \(next) is not a canonical entry: \(error)")
        }
        guard scan.sequence == next else { try stop(.entry, next, "the entry due as \(next) says seq \(scan.sequence)") }
        guard scan.sequencedAt >= month.start, scan.sequencedAt < month.end, scan.sequencedAt >= lastSequencedAt else {
            try stop(.entry, next, "entry \(next) was sequenced outside \(month) or before the entry preceding it")
        }
        lastSequencedAt = scan.sequencedAt
        noteRetirement(scan, canonical)
        occurredFrom = min(occurredFrom, scan.occurredAt)
        occurredTo = max(occurredTo, scan.occurredAt)
        let leaf = MerkleTree.leafHash(canonical)
        chain = JournalDatabase.chainHash(previous: chain, leafHash: leaf)
        try appendLeaf(leaf)
        entriesChecked += 1
    }

    /// Records the retirement of a journal signing key when the entry is one (the first one counts), as `verify` reads it.
    private func noteRetirement(_ scan: CanonicalScan, _ canonical: ArraySlice<UInt8>) {
        guard scan.field(.action, in: canonical, equals: AccessAction.keyAdmin.rawValue),
            scan.field(.objectType, in: canonical, equals: JournalVerifier.signingKeyObjectType),
            let reason = scan.slice(.reason, in: canonical), reason.starts(with: Self.retiredPrefix),
            let object = scan.slice(.objectID, in: canonical), object.count == 8,
            let key = UInt32(String(decoding: object, as: UTF8.self), radix: 16)
        else { return }
        let id = String(format: "%08x", key)
        if retirements[id] == nil { retirements[id] = next }
    }

    private static let retiredPrefix = Array(JournalVerifier.retirementReasonPrefix.utf8)

    /// Extends the tree: compares the tiles it fills with the archive's, and the
    /// checkpoints of the new size with the tree and the chain.
    private func appendLeaf(_ leaf: [UInt8]) throws {
        guard let summary else { return }
        for tile in edge.append(leafHash: leaf) {
            let key = TileKey(level: tile.level, index: tile.index, width: nil)
            guard let digest = tileDigests[key] else { try stop(.tiles, tile.index << UInt64(8 * (tile.level + 1)), "hash tile \(key.path) is missing") }
            if digest != SHA256.hash(tile.hashes) {
                try stop(.tiles, tile.index << UInt64(8 * (tile.level + 1)), "hash tile \(key.path) differs from the entries' hashes")
            }
            emitted.insert(key)
            tilesChecked += 1
        }
        compact.append(leaf)
        next += 1
        // Every checkpoint before the covering one ends inside the month: its root and chain are the tree's at its size.
        while nextCheckpoint < checkpointSizes.count - 1, checkpointSizes[nextCheckpoint] == next {
            pendingRoots.append((nextCheckpoint, next, compact, chain))
            if pendingRoots.count == 8192 { flushRoots(summary) }
            nextCheckpoint += 1
            checkpointsChecked += 1
        }
    }

    /// Compares the pending checkpoints' roots and chains with what they sign, on every
    /// core; a mismatch is reported at the checkpoint's last entry, as if found in order.
    private func flushRoots(_ summary: MonthSummary) {
        guard !pendingRoots.isEmpty else { return }
        let pending = pendingRoots
        let digests = checkpointDigests
        let bad = Locked<[Int]>([])
        let workers = max(1, ProcessInfo.processInfo.activeProcessorCount)
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var position = worker
            while position < pending.count {
                let item = pending[position]
                let digest = SHA256.hash(prefix: nil, item.range.root(), item.chain)
                if !digest.elementsEqual(digests[item.index * 32..<item.index * 32 + 32]) { bad.withLock { $0.append(position) } }
                position += workers
            }
        }
        for position in bad.withLock({ $0 }).sorted() {
            let item = pending[position]
            fail(.root, item.size - 1, "checkpoint #\(summary.firstCheckpointID + Int64(item.index)) of size \(item.size): the entries do not give the root and chain it signs")
        }
        pendingRoots.removeAll(keepingCapacity: true)
    }

    /// After the last entry: the chain at the month's end, then the tree up to the
    /// covering checkpoint's size from the archived leaf hashes after the month, its
    /// root, and its right-edge tiles.
    private func endEntries() throws {
        guard let summary else { return }
        guard replayStarted, next == summary.lastSequence + 1 else {
            try stop(.entry, next, "the entries end at \(next), month.json says \(summary.lastSequence)")
        }
        if chain != chainAfter { fail(.chain, summary.lastSequence, "the hash chain at the month's last entry differs from chain_after") }
        if nextCheckpoint < checkpointSizes.count - 1 {
            fail(.checkpoint, summary.lastSequence, "checkpoint #\(summary.firstCheckpointID + Int64(nextCheckpoint)) has a size the month never reaches")
        }
        let chainAtEnd = chain
        while next < summary.covering.size {
            guard let leaf = tileHashes(level: 0, range: next..<next + 1)?.first else {
                try stop(.tiles, next, "the level-0 tile holding leaf \(next), after the month, is missing")
            }
            try appendLeaf(leaf)
        }
        flushRoots(summary)
        if compact.root() != coveringRoot {
            fail(.root, summary.lastSequence, "the tree does not give the covering checkpoint #\(summary.covering.id)'s root")
        } else {
            checkpointsChecked += 1
        }
        if summary.covering.size == summary.lastSequence + 1, let covering = try? CheckpointFacts(note: lastNote), covering.chain != chainAtEnd {
            fail(.chain, summary.lastSequence, "the hash chain differs from the covering checkpoint's osmose-chain")
        }
        for (level, hashes) in edge.partialTiles.enumerated() where !hashes.isEmpty {
            let key = TileKey(level: level, index: summary.covering.size >> UInt64(8 * (level + 1)), width: hashes.count)
            guard let digest = tileDigests[key] else { fail(.tiles, nil, "the right-edge tile \(key.path) is missing"); continue }
            if digest != SHA256.hash(hashes.flatMap { $0 }) { fail(.tiles, nil, "the right-edge tile \(key.path) differs from the tree") }
            emitted.insert(key)
            tilesChecked += 1
        }
        let expected = Set(expectedTiles(summary))
        let present = Set(tileDigests.keys)
        for key in expected.subtracting(present).sorted() { fail(.tiles, nil, "hash tile \(key.path) is missing") }
        for key in present.subtracting(expected).sorted() { fail(.tiles, nil, "hash tile \(key.path) does not belong to the covering checkpoint's tree after the month") }
        for key in present.intersection(expected).subtracting(emitted).sorted() { fail(.tiles, nil, "hash tile \(key.path) was never matched by the tree") }
    }

    // MARK: manifest

    private func readManifest(_ bytes: [UInt8]) throws {
        guard let month else { return }
        let manifest: ArchiveManifest
        do {
            manifest = try ArchiveJSON.decode(ArchiveManifest.self, bytes, member: "manifest.json")
        } catch let error as JournalArchiveError {
            try stop(.manifest, nil, error.message)
        }
        guard manifest.format == ArchiveLayout.formatName, manifest.version == ArchiveLayout.formatVersion, manifest.month == month else {
            try stop(.manifest, nil, "manifest.json is not the manifest of \(month) in format \(ArchiveLayout.formatVersion)")
        }
        let listed = Dictionary(manifest.members.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        let read = Set(members.map(\.path))
        for member in members {
            guard let entry = listed[member.path] else {
                fail(.manifest, nil, "\(member.path) is not listed in manifest.json")
                continue
            }
            if entry.size != member.size || entry.sha256 != member.sha256 { fail(.manifest, nil, "\(member.path): its size or SHA-256 differs from manifest.json's") }
        }
        for path in manifest.members.map(\.path) where !read.contains(path) { fail(.manifest, nil, "\(path) is listed in manifest.json but absent") }
        if manifest.members.map(\.path) != members.map(\.path), problems.isEmpty { fail(.manifest, nil, "the members are not in the order manifest.json lists them") }
        if manifest.tileCount != tileDigests.count || manifest.bundleCount != bundles {
            fail(.manifest, nil, "manifest.json counts \(manifest.tileCount) tiles and \(manifest.bundleCount) bundles, the archive holds \(tileDigests.count) and \(bundles)")
        }
        if manifest.occurredFrom != JournalEntry.rfc3339(microseconds: occurredFrom) || manifest.occurredTo != JournalEntry.rfc3339(microseconds: occurredTo) {
            fail(.manifest, nil, "manifest.json's occurred_from or occurred_to differs from the entries'")
        }
        finished = true
    }

    /// Checks that the archive did not end early.
    func finish() {
        if let summary { flushRoots(summary) }
        guard finished else {
            fail(.layout, nil, "the archive ends before manifest.json")
            return
        }
    }

    /// Copies what was found into `verification`.
    func report(into verification: inout ArchiveVerification) {
        verification.summary = summary
        verification.manifestSHA256 = manifestSHA256
        verification.members = members.count + (manifestSHA256 == nil ? 0 : 1)
        verification.entriesChecked = entriesChecked
        verification.checkpointsChecked = checkpointsChecked
        verification.signaturesVerified = signaturesVerified
        verification.tilesChecked = tilesChecked
        verification.signingKeyRetirements = retirements
        // The lowest sequence number first (an altered entry is found at its tile, after the checkpoints before that tile's end).
        verification.problems += problems.enumerated().sorted { ($0.element.sequence ?? .max, $0.offset) < ($1.element.sequence ?? .max, $1.offset) }.map(\.element)
        if finished {
            verification.onlineFacts = OnlineFacts(
                checkpointsSHA256: checkpointsSHA256, coveringNote: coveringNote,
                tileDigests: Dictionary(uniqueKeysWithValues: tileDigests.map { ($0.key.path, $0.value) }))
        }
    }
}
