import Cryptography

/// One hash tile's subtree, computed once: its hashes (row 0) and every complete
/// node above them, up to the tile's root (row 8) when the tile is full. Any node
/// a proof needs from the tile is then a lookup, however many proofs need it.
struct TileNodes: Sendable {
    /// The number of hashes in row 0 (256 for a full tile).
    let width: Int
    /// Row r holds the `width >> r` complete nodes at height r above the tile's
    /// hashes, 32 bytes each; row 8 is the tile's root when the tile is full.
    private let rows: [[UInt8]]

    /// The nodes above `hashes` (`width` × 32 bytes, at most a full tile).
    init(hashes: ArraySlice<UInt8>) {
        precondition(hashes.count % 32 == 0 && hashes.count <= HashTile.width * 32, "a tile holds at most 256 hashes of 32 bytes")
        width = hashes.count / 32
        var rows = [Array(hashes)]
        rows.reserveCapacity(9)
        for row in 1...8 {
            let below = rows[row - 1]
            var here: [UInt8] = []
            here.reserveCapacity((width >> row) * 32)
            for index in 0..<(width >> row) { here += SHA256.hash(prefix: 0x01, below[index * 64..<index * 64 + 64]) }
            rows.append(here)
        }
        self.rows = rows
    }

    /// The node `index` of row `row` (height `row` above the tile's hashes).
    /// - Precondition: the node is complete: `index < width >> row`.
    func node(row: Int, index: Int) -> ArraySlice<UInt8> {
        precondition(row >= 0 && row <= 8 && index >= 0 && index < width >> row, "no complete node \(index) in row \(row) of a tile of width \(width)")
        return rows[row][index * 32..<index * 32 + 32]
    }

    /// Appends node `index` of row `row` to `output`.
    func appendNode(row: Int, index: Int, to output: inout [UInt8]) {
        output.append(contentsOf: rows[row][index * 32..<index * 32 + 32])
    }

    /// The hashes of row 0.
    var hashes: [UInt8] { rows[0] }

    /// The tile's root: the hash of the subtree it holds (a full tile only).
    var root: ArraySlice<UInt8> { node(row: 8, index: 0) }
}

/// A tile's place: its level and its index within the level.
struct TileKey: Hashable, Sendable, Comparable {
    let level: Int
    let index: UInt64

    static func < (left: TileKey, right: TileKey) -> Bool { (left.level, left.index) < (right.level, right.index) }
}

/// The tree of `size` leaves as proofs see it: the partial tile of every level (the
/// right edge, derived once when the view is built) and the full tiles added to it.
/// Every subtree root a proof needs — a complete node anywhere, or a range ending at
/// `size` — is computed from these without reading storage again.
struct TreeView: Sendable {
    /// The number of leaves.
    let size: UInt64
    /// The tile levels of a tree of this size.
    let levels: Int
    /// Per level, the tile at the right edge that `size` leaves incompletely (nil
    /// where `size` ends exactly on a tile boundary).
    private let edge: [TileNodes?]
    /// Full tiles by level and index.
    private var full: [[UInt64: TileNodes]]
    /// Roots of the ranges [start, size), by start: few, and shared by every proof.
    private var rightEdgeRoots: [UInt64: [UInt8]] = [:]

    /// The tile index of the edge tile at `level`: the one holding index `size >> 8·level`.
    func edgeTileIndex(level: Int) -> UInt64 { (size >> UInt64(8 * level)) >> 8 }

    /// True when tile `index` of `level` is complete in the tree of `size` leaves.
    func isFull(level: Int, index: UInt64) -> Bool {
        index < edgeTileIndex(level: level)
    }

    /// Builds the view of the tree of `size` leaves, reading its right edge from
    /// `storage` in two reads: the edge tiles the tree has stored full since it grew
    /// past them, then for the others the leaf hashes (level 0) or the full tiles
    /// below them (whose roots they hold). Full tiles read on the way are kept in the
    /// view and in `tables`.
    /// - Parameter tables: full tiles already computed (kept across views of several
    ///   sizes, as a consistency chain does); updated with those computed here.
    /// - Throws: ``JournalError`` `.inconsistentState` when stored hashes are missing.
    static func load(size: UInt64, from storage: some TreeStorage, tables: inout [TileKey: TileNodes]) throws -> TreeView {
        let levels = TreeEdge.levels(for: size)
        // Per level with a partial tile: its index and width.
        var partial: [Int: (index: UInt64, width: Int)] = [:]
        for level in 0..<levels {
            let shift = UInt64(8 * level)
            let width = Int((size >> shift) & 0xFF)
            if width > 0 { partial[level] = ((size >> shift) >> 8, width) }
        }
        var first = StorageRequest()
        for (level, tile) in partial { first.tiles[level] = .range(tile.index..<tile.index + 1) }
        let stored = try storage.read(first).tiles

        var second = StorageRequest()
        for (level, tile) in partial.sorted(by: { $0.key < $1.key }) where stored[TileKey(level: level, index: tile.index)] == nil {
            let below = tile.index << 8..<(tile.index << 8) + UInt64(tile.width)
            if level == 0 {
                second.leafHashes = below
            } else {
                let missing = below.filter { tables[TileKey(level: level - 1, index: $0)] == nil }
                if !missing.isEmpty { second.tiles[level - 1] = .list(missing) }
            }
        }
        let derived = second.isEmpty ? StorageReply() : try storage.read(second)

        var edge = [TileNodes?](repeating: nil, count: levels)
        var full = [[UInt64: TileNodes]](repeating: [:], count: levels)
        for (level, tile) in partial {
            if let bytes = stored[TileKey(level: level, index: tile.index)] {
                edge[level] = TileNodes(hashes: bytes[0..<tile.width * 32])
                continue
            }
            let below = tile.index << 8..<(tile.index << 8) + UInt64(tile.width)
            if level == 0 {
                guard derived.leafHashes.count == tile.width * 32 else {
                    throw JournalError(.inconsistentState, "entries \(below.lowerBound)..<\(below.upperBound) are not all stored (found \(derived.leafHashes.count / 32))")
                }
                edge[0] = TileNodes(hashes: derived.leafHashes[...])
                continue
            }
            var roots: [UInt8] = []
            roots.reserveCapacity(tile.width * 32)
            for index in below {
                let key = TileKey(level: level - 1, index: index)
                if tables[key] == nil {
                    guard let bytes = derived.tiles[key] else { throw JournalError(.inconsistentState, "hash tile \(level - 1)/\(index) is missing") }
                    tables[key] = TileNodes(hashes: bytes[...])
                }
                let nodes = tables[key]!
                full[level - 1][index] = nodes
                roots.append(contentsOf: nodes.root)
            }
            edge[level] = TileNodes(hashes: roots[...])
        }
        return TreeView(size: size, levels: levels, edge: edge, full: full)
    }

    private init(size: UInt64, levels: Int, edge: [TileNodes?], full: [[UInt64: TileNodes]]) {
        self.size = size
        self.levels = levels
        self.edge = edge
        self.full = full
    }

    /// True when the view holds full tile `index` of `level`.
    func hasFullTile(level: Int, index: UInt64) -> Bool { level < levels && full[level][index] != nil }

    /// The tiles the view holds, full ones, as their keys.
    var fullTileKeys: [TileKey] {
        full.enumerated().flatMap { level, tiles in tiles.keys.map { TileKey(level: level, index: $0) } }
    }

    /// The nodes of tile `index` at `level`: the edge tile, or a full tile the view holds.
    func tile(level: Int, index: UInt64) -> TileNodes? {
        guard level < levels else { return nil }
        if index == edgeTileIndex(level: level), let partial = edge[level] { return partial }
        return full[level][index]
    }

    /// Adds a full tile.
    mutating func add(level: Int, index: UInt64, nodes: TileNodes) {
        precondition(nodes.width == HashTile.width && isFull(level: level, index: index), "only full tiles are added to a view")
        full[level][index] = nodes
    }

    /// Forgets the full tiles of `level` with an index below `index` (proofs of later
    /// entries never need them: the tiles a proof reads move right with its entry).
    mutating func forget(level: Int, below index: UInt64) {
        guard level < levels, full[level].keys.contains(where: { $0 < index }) else { return }
        full[level] = full[level].filter { $0.key >= index }
    }

    /// The hash of the complete node at `height` with `index` (covering leaves
    /// `index << height ..< (index + 1) << height`).
    /// - Parameter fetch: reads a full tile the view lacks (nil: the caller promised
    ///   every tile in advance, and a missing one is an error).
    /// - Throws: ``JournalError`` `.inconsistentState` when the node is not complete
    ///   in this tree or its tile cannot be had.
    mutating func perfectNode(height: Int, index: UInt64, fetch: ((TileKey) throws -> TileNodes)? = nil) throws -> ArraySlice<UInt8> {
        guard height < 63, index < (UInt64(1) << UInt64(63 - height)), (index + 1) << UInt64(height) <= size else {
            throw JournalError(.inconsistentState, "node \(index) at height \(height) is not complete in a tree of \(size)")
        }
        let level = height / 8
        let row = height % 8
        let first = index << UInt64(row)
        let tileIndex = first >> 8
        let within = Int(first & 0xFF) >> row
        if let nodes = tile(level: level, index: tileIndex) { return nodes.node(row: row, index: within) }
        guard let fetch else { throw JournalError(.inconsistentState, "hash tile \(level)/\(tileIndex) was not read") }
        let nodes = try fetch(TileKey(level: level, index: tileIndex))
        full[level][tileIndex] = nodes
        return nodes.node(row: row, index: within)
    }

    /// MTH of the leaves in `range`: a complete node, or a range ending at `size`
    /// (the only other kind of subtree RFC 9162's decomposition makes).
    mutating func subtreeRoot(_ range: Range<UInt64>, fetch: ((TileKey) throws -> TileNodes)? = nil) throws -> [UInt8] {
        let count = range.upperBound - range.lowerBound
        guard count > 0 else { return SHA256Hash.empty }
        if count & (count - 1) == 0, range.lowerBound % count == 0 {
            return Array(try perfectNode(height: count.trailingZeroBitCount, index: range.lowerBound / count, fetch: fetch))
        }
        guard range.upperBound == size else {
            throw JournalError(.inconsistentState, "leaves \(range) are not a subtree of the tree of \(size)")
        }
        if let known = rightEdgeRoots[range.lowerBound] { return known }
        var roots: [[UInt8]] = []
        var start = range.lowerBound
        while start < size {
            var height = 0
            while height < 62, start & ((1 << UInt64(height + 1)) - 1) == 0, start + (1 << UInt64(height + 1)) <= size { height += 1 }
            roots.append(Array(try perfectNode(height: height, index: start >> UInt64(height), fetch: fetch)))
            start += 1 << UInt64(height)
        }
        var root = roots.removeLast()
        while let left = roots.popLast() { root = MerkleTree.nodeHash(left, root) }
        rightEdgeRoots[range.lowerBound] = root
        return root
    }

    /// The siblings on the way from the subtree `block` (a node of this tree: a
    /// leaf, or a tile's subtree) up to the root, lowest first: the upper part of an
    /// RFC 9162 inclusion proof of every leaf in `block`.
    /// - Throws: ``JournalError`` `.inconsistentState` when `block` is not a node of the tree.
    mutating func path(to block: Range<UInt64>, fetch: ((TileKey) throws -> TileNodes)? = nil) throws -> [[UInt8]] {
        var low: UInt64 = 0
        var high = size
        var siblings: [[UInt8]] = []
        while low != block.lowerBound || high != block.upperBound {
            guard high - low > 1 else { throw JournalError(.inconsistentState, "leaves \(block) are not a node of the tree of \(size)") }
            let split = low + UInt64(MerkleTree.largestPowerOfTwo(below: Int(high - low)))
            if block.lowerBound < split {
                guard block.upperBound <= split else { throw JournalError(.inconsistentState, "leaves \(block) are not a node of the tree of \(size)") }
                siblings.append(try subtreeRoot(split..<high, fetch: fetch))
                high = split
            } else {
                siblings.append(try subtreeRoot(low..<split, fetch: fetch))
                low = split
            }
        }
        return siblings.reversed()
    }

    /// The RFC 9162 §2.1.4 consistency proof from the tree's first `oldSize` leaves to
    /// the whole tree. The full tiles it needs beyond the view are read in one request
    /// (the proof's shape does not depend on hash values: a first pass finds them).
    /// - Parameter tables: full tiles already computed; updated with those read here.
    mutating func consistencyProof(oldSize: UInt64, storage: some TreeStorage, tables: inout [TileKey: TileNodes]) throws -> [[UInt8]] {
        guard oldSize > 0, oldSize < size else { return [] }
        var probe = self
        var wanted: Set<TileKey> = []
        let cached = tables
        let placeholder = TileNodes(hashes: [UInt8](repeating: 0, count: HashTile.width * 32)[...])
        _ = try MerkleTree.consistencyProof(oldSize: oldSize, newSize: size) { range in
            try probe.subtreeRoot(range) { key in
                guard let nodes = cached[key] else {
                    wanted.insert(key)
                    return placeholder
                }
                return nodes
            }
        }
        if !wanted.isEmpty {
            var request = StorageRequest()
            for (level, keys) in Dictionary(grouping: wanted, by: \.level) { request.tiles[level] = .list(keys.map(\.index).sorted()) }
            let read = try storage.read(request).tiles
            for key in wanted {
                guard let bytes = read[key] else { throw JournalError(.inconsistentState, "hash tile \(key.level)/\(key.index) is missing") }
                tables[key] = TileNodes(hashes: bytes[...])
            }
        }
        let known = tables
        return try MerkleTree.consistencyProof(oldSize: oldSize, newSize: size) { range in
            try subtreeRoot(range) { key in
                guard let nodes = known[key] else { throw JournalError(.inconsistentState, "hash tile \(key.level)/\(key.index) was not read") }
                return nodes
            }
        }
    }
}
