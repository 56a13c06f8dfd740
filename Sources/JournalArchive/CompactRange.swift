package import Journal

/// The RFC 6962 tree of leaves 0 ..< size as its perfect subtrees (one per set bit of
/// the size, largest first): appending costs one hash per merge, and the root of the
/// current size costs one hash per subtree — what checking millions of checkpoints
/// against a replayed month needs (a ``TreeEdge`` rebuilds its partial tiles' roots
/// at every call).
package struct CompactRange {
    /// The subtrees' heights and roots, largest first.
    package private(set) var peaks: [(height: Int, hash: [UInt8])] = []
    /// The number of leaves.
    package private(set) var size: UInt64 = 0

    /// The range of a tree at `edge.size`, from its partial tiles.
    package init(edge: TreeEdge) {
        size = edge.size
        for level in stride(from: edge.partialTiles.count - 1, through: 0, by: -1) {
            let hashes = edge.partialTiles[level]
            var start = 0
            var width = HashTile.width / 2
            var height = 8 * level + 7
            while width > 0 {
                if hashes.count & width != 0 {
                    peaks.append((height, MerkleTree.root(hashes[start..<start + width])))
                    start += width
                }
                width /= 2
                height -= 1
            }
        }
    }

    /// Appends a leaf hash.
    package mutating func append(_ leaf: [UInt8]) {
        var hash = leaf
        var height = 0
        while let last = peaks.last, last.height == height {
            peaks.removeLast()
            hash = MerkleTree.nodeHash(last.hash, hash)
            height += 1
        }
        peaks.append((height, hash))
        size += 1
    }

    /// The root of the tree of `size` leaves.
    package func root() -> [UInt8] {
        guard var root = peaks.last?.hash else { return SHA256Hash.empty }
        for peak in peaks.dropLast().reversed() { root = MerkleTree.nodeHash(peak.hash, root) }
        return root
    }
}
