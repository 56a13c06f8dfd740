public import Store

/// An RFC 9162 §2.1.3 inclusion proof: the path from entry `index` to the root of
/// the tree of `treeSize` leaves, lowest sibling first.
public struct InclusionProof: Sendable, Hashable {
    /// The entry's sequence number (its leaf index).
    public let index: UInt64
    /// The size of the tree it is proven in (the checkpoint's).
    public let treeSize: UInt64
    /// The siblings inside the entry's level-0 tile, concatenated (32 bytes each).
    let lower: [UInt8]
    /// The siblings above the tile, shared by every proof of an entry of the tile.
    let upper: ProofPath

    init(index: UInt64, treeSize: UInt64, lower: [UInt8], upper: ProofPath) {
        self.index = index
        self.treeSize = treeSize
        self.lower = lower
        self.upper = upper
    }

    /// The proof's hashes, lowest first.
    public var hashes: [[UInt8]] {
        stride(from: 0, to: lower.count, by: 32).map { Array(lower[$0..<$0 + 32]) } + upper.hashes
    }

    /// True when the proof shows the leaf with hash `leafHash` at ``index`` in a tree
    /// of ``treeSize`` leaves with root `root` (RFC 9162 §2.1.3.2).
    public func verify(leafHash: [UInt8], root: [UInt8]) -> Bool {
        MerkleTree.verifyInclusion(leafHash: leafHash, index: Int(index), size: Int(treeSize), proof: hashes, root: root)
    }

    public static func == (left: InclusionProof, right: InclusionProof) -> Bool {
        left.index == right.index && left.treeSize == right.treeSize && left.hashes == right.hashes
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(index)
        hasher.combine(treeSize)
        hasher.combine(hashes)
    }
}

/// Siblings shared by the proofs of every entry in one level-0 tile, with their
/// base64 lines rendered once for all those proofs.
final class ProofPath: Sendable {
    /// The hashes, lowest first.
    let hashes: [[UInt8]]
    /// One base64 line a hash, as a tlog-proof writes them.
    let lines: [UInt8]

    init(_ hashes: [[UInt8]]) {
        self.hashes = hashes
        var lines: [UInt8] = []
        lines.reserveCapacity(hashes.count * 45)
        for hash in hashes { Base64.appendLine(hash[...], to: &lines) }
        self.lines = lines
    }

    static let none = ProofPath([])
}

/// An entry with its inclusion proof, as ``JournalProver/provenEntries(_:_:)`` hands them out.
public struct ProvenEntry: Sendable {
    /// The entry's canonical bytes, exactly as stored and hashed (a slice of the buffer
    /// they were read into: copy them to keep them beyond the call).
    public let canonical: ArraySlice<UInt8>
    /// Its proof against the prover's checkpoint.
    public let proof: InclusionProof
    /// The entry's sequence number.
    public var sequence: UInt64 { proof.index }
}

/// An RFC 9162 §2.1.4 consistency proof from the tree of `oldSize` leaves to the tree
/// of `newSize` leaves.
public struct ConsistencyProof: Sendable, Hashable {
    /// The sizes of the two trees.
    public let oldSize: UInt64
    public let newSize: UInt64
    /// The proof's hashes, in RFC 9162 order.
    public let hashes: [[UInt8]]

    /// True when the proof shows that the tree of ``oldSize`` leaves with root `oldRoot`
    /// is a prefix of the tree of ``newSize`` leaves with root `newRoot` (RFC 9162 §2.1.4.2).
    public func verify(oldRoot: [UInt8], newRoot: [UInt8]) -> Bool {
        MerkleTree.verifyConsistency(oldSize: Int(oldSize), newSize: Int(newSize), oldRoot: oldRoot, newRoot: newRoot, proof: hashes)
    }
}

/// One link of a consistency chain: `proof` shows that `old`'s tree is a prefix of `new`'s.
public struct ConsistencyLink: Sendable, Hashable {
    /// The older checkpoint.
    public let old: CheckpointRecord
    /// The newer checkpoint.
    public let new: CheckpointRecord
    /// The proof between them (empty when their sizes are equal).
    public let proof: ConsistencyProof
}

/// Proofs in bulk against one checkpoint, over the stored journal.
///
/// For a set of entries — a contiguous range, or scattered sequence numbers such as
/// one patient's — the prover reads the hash tiles the proofs need once each (one
/// round trip a chunk of up to 16,384 entries in up to 256 level-0 tiles, never one
/// an entry), builds every
/// proof from them in memory, and hands the proofs out in sequence order as they are
/// built: memory stays bounded whatever the number of entries. The tree's right edge
/// at the checkpoint's size is derived once per prover and shared by every proof.
///
/// Use it on the connection's thread, inside one transaction (REPEATABLE READ, as
/// every journal reader does). For more than one chunk, the closures that receive the
/// proofs run on a thread of the prover's while the connection's thread reads the next
/// chunk (never both at once for one closure, and all done when the call returns):
/// they must not use the connection.
public final class JournalProver {
    /// The checkpoint every proof is against.
    public let checkpoint: CheckpointRecord

    private let storage: any TreeStorage
    private var base: TreeView?
    private var tables: [TileKey: TileNodes] = [:]
    private let counters: DatabaseTreeStorage?

    /// A prover against `checkpoint`, reading the journal through `connection`.
    public init(checkpoint: CheckpointRecord, on connection: isolated Connection) {
        self.checkpoint = checkpoint
        let storage = DatabaseTreeStorage(connection: connection)
        self.storage = storage
        counters = storage
    }

    /// A prover against `checkpoint` over any storage (tests).
    init(checkpoint: CheckpointRecord, storage: some TreeStorage) {
        self.checkpoint = checkpoint
        self.storage = storage
        counters = storage as? DatabaseTreeStorage
    }

    /// How many hash tiles this prover has read from the database.
    public var tilesRead: Int { counters?.tilesRead ?? 0 }

    /// How many entries this prover has read from the database.
    public var entriesRead: Int { counters?.entriesRead ?? 0 }

    /// The first checkpoint whose tree contains every entry of `selection`: the one
    /// proofs of the selection are made against, for exports and archives alike.
    /// - Throws: ``JournalError`` `.notFound` when the selection is empty or its last
    ///   entry is not covered by a checkpoint yet.
    public static func coveringCheckpoint(for selection: EntrySelection, on connection: isolated Connection) throws -> CheckpointRecord {
        guard let last = selection.last else { throw JournalError(.notFound, "no entries selected") }
        guard let covering = try JournalDatabase.firstCheckpoint(covering: last, on: connection) else {
            throw JournalError(.notFound, "entry \(last) is not covered by a checkpoint yet; retry in a few seconds")
        }
        return covering
    }

    /// The inclusion proofs of every entry of `selection`, in sequence order, handed
    /// to `body` one at a time. Needs the hash tiles only (not the entries), so it also
    /// proves entries whose month has been archived and purged.
    /// - Throws: ``JournalError`` `.invalidArgument` when an entry is not in the
    ///   checkpoint's tree, `.inconsistentState` when stored hashes are missing;
    ///   ``StoreError``; whatever `body` throws (which stops the proofs).
    public func inclusionProofs(_ selection: EntrySelection, _ body: (InclusionProof) throws -> Void) throws {
        try run(selection, withEntries: false) { proof, _ in try body(proof) }
    }

    /// Every entry of `selection` with its inclusion proof, in sequence order, handed to
    /// `body` one at a time. Each entry's bytes are checked against the leaf hash the
    /// tree holds for it before it is handed out.
    /// - Throws: ``JournalError`` `.notFound` naming an entry that is not stored
    ///   (never sequenced, or purged), `.invalidArgument` when an entry is not in the
    ///   checkpoint's tree, `.inconsistentState` when an entry's bytes do not match the
    ///   tree or stored hashes are missing; ``StoreError``; whatever `body` throws.
    public func provenEntries(_ selection: EntrySelection, _ body: (ProvenEntry) throws -> Void) throws {
        try run(selection, withEntries: true) { proof, canonical in try body(ProvenEntry(canonical: canonical ?? [], proof: proof)) }
    }

    /// The consistency proof from `old`'s tree to this prover's checkpoint.
    /// - Throws: ``JournalError`` `.invalidArgument` when `old`'s tree is larger.
    public func consistencyProof(from old: CheckpointRecord) throws -> ConsistencyProof {
        guard old.treeSize <= checkpoint.treeSize else {
            throw JournalError(
                .invalidArgument, "checkpoint #\(old.id) (size \(old.treeSize)) is larger than #\(checkpoint.id) (size \(checkpoint.treeSize))")
        }
        guard old.treeSize < checkpoint.treeSize else { return ConsistencyProof(oldSize: old.treeSize, newSize: checkpoint.treeSize, hashes: []) }
        var view = try baseView()
        let hashes = try view.consistencyProof(oldSize: old.treeSize, storage: storage, tables: &tables)
        Self.trim(&tables)
        return ConsistencyProof(oldSize: old.treeSize, newSize: checkpoint.treeSize, hashes: hashes)
    }

    /// The consistency proofs between each checkpoint of `checkpoints` and the next:
    /// one chain tying the first to the last (a month's archive to the checkpoints
    /// issued after it), each tile read at most once for the whole chain.
    /// - Parameter checkpoints: in order of tree size (equal sizes give empty proofs).
    /// - Throws: ``JournalError`` `.invalidArgument` when a checkpoint is smaller than
    ///   the one before it; ``StoreError``; whatever `body` throws.
    public static func consistencyChain(
        _ checkpoints: [CheckpointRecord], on connection: isolated Connection, _ body: (ConsistencyLink) throws -> Void
    ) throws {
        let storage = DatabaseTreeStorage(connection: connection)
        try consistencyChain(checkpoints, storage: storage, body)
    }

    static func consistencyChain(_ checkpoints: [CheckpointRecord], storage: some TreeStorage, _ body: (ConsistencyLink) throws -> Void) throws {
        var tables: [TileKey: TileNodes] = [:]
        for (old, new) in zip(checkpoints, checkpoints.dropFirst()) {
            guard old.treeSize <= new.treeSize else {
                throw JournalError(.invalidArgument, "checkpoint #\(old.id) (size \(old.treeSize)) is larger than #\(new.id) (size \(new.treeSize))")
            }
            var hashes: [[UInt8]] = []
            if old.treeSize < new.treeSize {
                var view = try TreeView.load(size: new.treeSize, from: storage, tables: &tables)
                hashes = try view.consistencyProof(oldSize: old.treeSize, storage: storage, tables: &tables)
            }
            try body(ConsistencyLink(old: old, new: new, proof: ConsistencyProof(oldSize: old.treeSize, newSize: new.treeSize, hashes: hashes)))
            trim(&tables)
        }
    }

    /// Keeps the table of computed tiles under about 32 MiB, dropping the lowest first
    /// (a chain moves right along the tree).
    private static func trim(_ tables: inout [TileKey: TileNodes]) {
        guard tables.count > 2048 else { return }
        for key in tables.keys.sorted().prefix(tables.count - 1024) { tables[key] = nil }
    }

    /// The view of the checkpoint's tree, its right edge derived on first use.
    private func baseView() throws -> TreeView {
        if let base { return base }
        let view = try TreeView.load(size: checkpoint.treeSize, from: storage, tables: &tables)
        Self.trim(&tables)
        base = view
        return view
    }

    /// Reads the selection's tiles (and entries) chunk by chunk and builds its proofs.
    private func run(_ selection: EntrySelection, withEntries: Bool, _ emit: (InclusionProof, ArraySlice<UInt8>?) throws -> Void) throws {
        guard let last = selection.last else { return }
        guard last < checkpoint.treeSize else {
            throw JournalError(.invalidArgument, "entry \(last) is not covered by checkpoint #\(checkpoint.id) (size \(checkpoint.treeSize))")
        }
        var builder = InclusionBuilder(view: try baseView(), withEntries: withEntries)
        var reader = ChunkReader(storage: storage, view: builder.view, withEntries: withEntries)
        var chunks = selection.chunks()
        guard let first = chunks.next() else { return }
        guard let second = chunks.next() else {
            try builder.prove(try reader.read(first), emit)
            return
        }
        try ThreadPipeline.run(depth: 3, name: "journal-prover") { push in
            try push(try reader.read(first))
            try push(try reader.read(second))
            while let chunk = chunks.next() { try push(try reader.read(chunk)) }
        } consume: { data in
            try builder.prove(data, emit)
        }
    }
}

/// The reads of one chunk of a selection: its full level-0 tiles, the full tiles
/// above them not read before, and (for exports) its entries.
struct ChunkData: Sendable {
    let chunk: SelectionChunk
    let tiles: [TileKey: [UInt8]]
    let entries: [CanonicalRow]?
}

/// Decides and performs the reads of each chunk, remembering which tiles were read:
/// chunks come in sequence order, so the tiles a chunk needs above level 0 are
/// those at or after the last ones read.
struct ChunkReader {
    let storage: any TreeStorage
    let size: UInt64
    let levels: Int
    let withEntries: Bool
    /// Tiles the view already holds (read while deriving its right edge).
    private let held: Set<TileKey>
    /// Per level, the highest tile index read so far.
    private var lastRead: [UInt64?]
    private let view: TreeView

    init(storage: any TreeStorage, view: TreeView, withEntries: Bool) {
        self.storage = storage
        self.view = view
        size = view.size
        levels = view.levels
        self.withEntries = withEntries
        held = Set(view.fullTileKeys)
        lastRead = Array(repeating: nil, count: view.levels)
    }

    /// Reads what `chunk` needs, in one request.
    mutating func read(_ chunk: SelectionChunk) throws -> ChunkData {
        var request = StorageRequest()
        var wantedByLevel: [Int: [UInt64]] = [:]
        let tileIndices = chunk.tiles.map(\.index)
        for level in 0..<levels {
            var wanted: [UInt64] = []
            for index in tileIndices {
                let above = index >> UInt64(8 * level)
                guard view.isFull(level: level, index: above), !held.contains(TileKey(level: level, index: above)) else { continue }
                if let last = lastRead[level], above <= last { continue }
                if wanted.last != above { wanted.append(above) }
            }
            guard let last = wanted.last else { continue }
            request.tiles[level] = .list(wanted)
            wantedByLevel[level] = wanted
            lastRead[level] = last
        }
        if withEntries { request.entries = chunk.sequences }
        let reply = try storage.read(request)
        for (level, wanted) in wantedByLevel {
            for index in wanted where reply.tiles[TileKey(level: level, index: index)] == nil {
                throw JournalError(.inconsistentState, "hash tile \(level)/\(index) is missing")
            }
        }
        return ChunkData(chunk: chunk, tiles: reply.tiles, entries: withEntries ? reply.entries : nil)
    }
}

/// Turns the reads of each chunk into proofs, in memory: every tile's nodes are
/// computed once, the siblings above a level-0 tile once for all its entries.
struct InclusionBuilder: Sendable {
    private(set) var view: TreeView
    let withEntries: Bool

    init(view: TreeView, withEntries: Bool) {
        self.view = view
        self.withEntries = withEntries
    }

    mutating func prove(_ data: ChunkData, _ emit: (InclusionProof, ArraySlice<UInt8>?) throws -> Void) throws {
        let tiles = data.chunk.tiles
        guard let firstTile = tiles.first?.index else { return }
        for level in 1..<max(1, view.levels) { view.forget(level: level, below: firstTile >> UInt64(8 * level)) }
        for (key, bytes) in data.tiles where key.level > 0 { view.add(level: key.level, index: key.index, nodes: TileNodes(hashes: bytes[...])) }
        var row = 0
        let entries = data.entries ?? []
        for (tileIndex, sequences) in tiles {
            let nodes: TileNodes
            if let held = view.tile(level: 0, index: tileIndex) {
                nodes = held
            } else if let bytes = data.tiles[TileKey(level: 0, index: tileIndex)] {
                nodes = TileNodes(hashes: bytes[...])
            } else {
                throw JournalError(.inconsistentState, "hash tile 0/\(tileIndex) was not read")
            }
            let isFull = view.isFull(level: 0, index: tileIndex)
            let upper = isFull ? ProofPath(try view.path(to: tileIndex << 8..<(tileIndex + 1) << 8)) : ProofPath.none
            for sequence in sequences.values {
                var canonical: ArraySlice<UInt8>?
                if withEntries {
                    guard row < entries.count, entries[row].sequence == sequence else {
                        throw JournalError(.notFound, "entry \(sequence) is not in the journal's tables (never sequenced, or its month was purged)")
                    }
                    canonical = entries[row].canonical
                    row += 1
                    let leaf = MerkleTree.leafHash(canonical!)
                    guard leaf[...] == nodes.node(row: 0, index: Int(sequence & 0xFF)) else {
                        throw JournalError(
                            .inconsistentState, "entry \(sequence)'s stored bytes do not match its leaf hash in the tree: run osmosectl journal verify")
                    }
                }
                var lower: [UInt8] = []
                if isFull {
                    lower.reserveCapacity(8 * 32)
                    let position = Int(sequence & 0xFF)
                    for height in 0..<8 { nodes.appendNode(row: height, index: (position >> height) ^ 1, to: &lower) }
                } else {
                    for hash in try view.path(to: sequence..<sequence + 1) { lower += hash }
                }
                try emit(InclusionProof(index: sequence, treeSize: view.size, lower: lower, upper: upper), canonical)
            }
        }
        view.forget(level: 0, below: tiles[tiles.count - 1].index + 1)
    }
}
