/// A full hash tile of C2SP tlog-tiles: 256 node hashes of 32 bytes at height
/// 8 × `level`, the `index`-th tile of its level.
public struct HashTile: Sendable, Hashable {
    /// Tiles per level are 256 hashes wide and cover 8 levels of the tree.
    public static let width = 256
    /// The tile level (0 holds leaf hashes).
    public let level: Int
    /// The tile's index within its level.
    public let index: UInt64
    /// The 256 hashes, concatenated (8,192 bytes).
    public let hashes: [UInt8]

    /// Creates a tile.
    public init(level: Int, index: UInt64, hashes: [UInt8]) {
        self.level = level
        self.index = index
        self.hashes = hashes
    }

    /// The root of the 8-level subtree the tile holds.
    public var root: [UInt8] { TreeEdge.perfectRoot(of: stride(from: 0, to: hashes.count, by: 32).map { Array(hashes[$0..<$0 + 32]) }[...]) }
}

/// The right edge of a Merkle tree stored as hash tiles: the hashes of every partial
/// tile, which is all that is needed to append leaves, emit the tiles that fill
/// up, and compute the root. The journal daemon keeps one in memory; `verify`
/// rebuilds one from the entries.
public struct TreeEdge: Sendable, Hashable {
    /// The number of leaves.
    public private(set) var size: UInt64 = 0
    /// For each tile level, the hashes of its partial (rightmost, not yet full) tile.
    public private(set) var partialTiles: [[[UInt8]]] = [[]]

    /// An empty tree.
    public init() {}

    /// The edge of a tree of `size` leaves, from its partial tiles' hashes.
    /// - Throws: ``NoteError`` when the hash counts do not match `size`.
    public init(size: UInt64, partialTiles: [[[UInt8]]]) throws {
        self.size = size
        self.partialTiles = partialTiles.isEmpty ? [[]] : partialTiles
        for level in 0..<Self.levels(for: size) {
            let expected = Int((size >> UInt64(8 * level)) & 0xFF)
            let count = level < self.partialTiles.count ? self.partialTiles[level].count : 0
            guard count == expected else { throw NoteError("tile level \(level) has \(count) partial hashes, the size implies \(expected)") }
        }
    }

    /// The number of tile levels a tree of `size` leaves has.
    static func levels(for size: UInt64) -> Int {
        var levels = 1
        var rest = size >> 8
        while rest > 0 {
            levels += 1
            rest >>= 8
        }
        return levels
    }

    /// Appends a leaf hash; returns the tiles it filled (level 0 first), which the
    /// caller stores.
    public mutating func append(leafHash: [UInt8]) -> [HashTile] {
        var filled: [HashTile] = []
        var hash = leafHash
        var level = 0
        var index = size
        size += 1
        while true {
            if level == partialTiles.count { partialTiles.append([]) }
            partialTiles[level].append(hash)
            guard partialTiles[level].count == HashTile.width else { break }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(HashTile.width * 32)
            for node in partialTiles[level] { bytes.append(contentsOf: node) }
            index >>= 8
            let tile = HashTile(level: level, index: index, hashes: bytes)
            filled.append(tile)
            hash = Self.perfectRoot(of: partialTiles[level][...])
            partialTiles[level].removeAll(keepingCapacity: true)
            level += 1
        }
        return filled
    }

    /// The RFC 6962 root of the tree.
    public func root() -> [UInt8] {
        var subtrees: [[UInt8]] = []
        for level in stride(from: partialTiles.count - 1, through: 0, by: -1) {
            let hashes = partialTiles[level]
            var start = 0
            var width = HashTile.width / 2
            while width > 0 {
                if hashes.count - start >= width, (hashes.count & width) != 0 {
                    subtrees.append(Self.perfectRoot(of: hashes[start..<start + width]))
                    start += width
                }
                width /= 2
            }
        }
        guard var root = subtrees.popLast() else { return SHA256Hash.empty }
        while let left = subtrees.popLast() { root = MerkleTree.nodeHash(left, root) }
        return root
    }

    /// The root of a perfect subtree from its bottom row (a power-of-two count).
    static func perfectRoot(of row: ArraySlice<[UInt8]>) -> [UInt8] {
        var level = Array(row)
        while level.count > 1 {
            var next: [[UInt8]] = []
            next.reserveCapacity(level.count / 2)
            for pair in stride(from: 0, to: level.count, by: 2) { next.append(MerkleTree.nodeHash(level[pair], level[pair + 1])) }
            level = next
        }
        return level[0]
    }
}

/// Where tree hashes are read from for proofs and roots of past sizes.
public protocol TreeHashReader {
    /// The node hashes at height 8 × `level` with indices in `range`; every one of
    /// them is a complete node of the current tree, and the range lies in one tile.
    func hashes(level: Int, range: Range<UInt64>) throws -> [[UInt8]]
}

extension TreeHashReader {
    /// MTH of the leaves in `range`, a subtree of the RFC 6962 decomposition (its
    /// start aligned on a power of two at least as large as its length).
    public func subtreeRoot(_ range: Range<UInt64>) throws -> [UInt8] {
        guard !range.isEmpty else { return SHA256Hash.empty }
        var roots: [[UInt8]] = []
        var start = range.lowerBound
        while start < range.upperBound {
            var height = 0
            while height < 63, start & ((1 << UInt64(height + 1)) - 1) == 0, start + (1 << UInt64(height + 1)) <= range.upperBound { height += 1 }
            roots.append(try perfectNode(height: height, index: start >> UInt64(height)))
            start += 1 << UInt64(height)
        }
        var root = roots.removeLast()
        while let left = roots.popLast() { root = MerkleTree.nodeHash(left, root) }
        return root
    }

    /// The hash of the complete node at `height` and `index`.
    public func perfectNode(height: Int, index: UInt64) throws -> [UInt8] {
        let level = height / 8
        let within = UInt64(height % 8)
        let row = try hashes(level: level, range: (index << within)..<((index + 1) << within))
        return TreeEdge.perfectRoot(of: row[...])
    }

    /// The tree's root at `size`.
    public func root(size: UInt64) throws -> [UInt8] { try subtreeRoot(0..<size) }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves.
    public func inclusionProof(index: UInt64, size: UInt64) throws -> [[UInt8]] {
        try MerkleTree.inclusionProof(index: index, size: size, subtreeRoot: subtreeRoot)
    }

    /// The consistency proof from `oldSize` to `newSize`.
    public func consistencyProof(oldSize: UInt64, newSize: UInt64) throws -> [[UInt8]] {
        try MerkleTree.consistencyProof(oldSize: oldSize, newSize: newSize, subtreeRoot: subtreeRoot)
    }

    /// The edge of the tree at `size`: the hashes of every partial tile.
    public func edge(size: UInt64) throws -> TreeEdge {
        var partial: [[[UInt8]]] = []
        for level in 0..<TreeEdge.levels(for: size) {
            let shift = UInt64(8 * level)
            let count = (size >> shift) & 0xFF
            let first = (size >> (shift + 8)) << 8
            partial.append(count == 0 ? [] : try hashes(level: level, range: first..<first + count))
        }
        return try TreeEdge(size: size, partialTiles: partial)
    }
}

/// Hashes of well-known values.
public enum SHA256Hash {
    /// SHA-256 of the empty string: the root of the empty tree.
    public static let empty: [UInt8] = MerkleTree.root([])
}
