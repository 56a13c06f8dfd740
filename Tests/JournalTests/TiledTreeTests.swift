import Cryptography
import Journal
import Testing

/// A tree held as full tiles plus the leaf hashes, read the way osmose-journald
/// reads PostgreSQL: partial tiles derived, never stored.
final class MemoryTreeReader: TreeHashReader {
    var tiles: [Int: [UInt64: [UInt8]]] = [:]
    var leaves: [[UInt8]] = []

    func hashes(level: Int, range: Range<UInt64>) throws -> [[UInt8]] {
        if let tile = tiles[level]?[range.lowerBound >> 8] {
            return range.map { Array(tile[Int($0 & 0xFF) * 32..<Int($0 & 0xFF) * 32 + 32]) }
        }
        if level == 0 { return range.map { leaves[Int($0)] } }
        return range.map { HashTile(level: level - 1, index: $0, hashes: tiles[level - 1]![$0]!).root }
    }
}

@Suite("Tiled Merkle tree (C2SP tlog-tiles layout, RFC 6962 hashes)")
struct TiledTreeTests {
    @Test("The edge gives the published roots of the RFC 6962 reference tree for sizes 0 to 8")
    func referenceRoots() {
        var edge = TreeEdge()
        #expect(hexString(edge.root()) == ReferenceTree.roots[0])
        #expect(edge.root() == SHA256.hash([UInt8]()))
        for (index, leaf) in ReferenceTree.leaves.enumerated() {
            _ = edge.append(leafHash: leaf)
            #expect(hexString(edge.root()) == ReferenceTree.roots[index + 1], "size \(index + 1)")
        }
    }

    @Test("Roots, proofs and edges read from tiles equal the in-memory tree's, across tile boundaries", arguments: [1, 255, 256, 257, 700, 65_536 + 300])
    func tilesMatchTree(size: Int) throws {
        let leaves = (0..<size).map { MerkleTree.leafHash(Array("entry \($0)".utf8)) }
        let reader = MemoryTreeReader()
        reader.leaves = leaves
        var edge = TreeEdge()
        var emitted = 0
        for leaf in leaves {
            for tile in edge.append(leafHash: leaf) {
                #expect(tile.hashes.count == 8192)
                #expect(reader.tiles[tile.level]?[tile.index] == nil, "a tile is emitted once")
                reader.tiles[tile.level, default: [:]][tile.index] = tile.hashes
                emitted += 1
            }
        }
        #expect(emitted == size / 256 + size / 65_536)
        #expect(edge.root() == MerkleTree.root(leaves[...]))
        #expect(try reader.edge(size: UInt64(size)) == edge)
        let sizes = Set([1, 2, 3, size / 2, size - 1, size, 255, 256, 257, 512].filter { $0 >= 1 && $0 <= size })
        for treeSize in sizes {
            let prefix = leaves[0..<treeSize]
            #expect(try reader.root(size: UInt64(treeSize)) == MerkleTree.root(prefix), "root at \(treeSize)")
            for index in Set([0, treeSize / 3, treeSize - 1]) {
                #expect(try reader.inclusionProof(index: UInt64(index), size: UInt64(treeSize)) == MerkleTree.inclusionProof(index: index, prefix))
            }
            for oldSize in Set([1, treeSize / 2, treeSize - 1, treeSize]).filter({ $0 >= 1 }) {
                let proof = try reader.consistencyProof(oldSize: UInt64(oldSize), newSize: UInt64(treeSize))
                #expect(proof == MerkleTree.consistencyProof(oldSize: oldSize, prefix))
                #expect(MerkleTree.verifyConsistency(oldSize: oldSize, newSize: treeSize, oldRoot: MerkleTree.root(leaves[0..<oldSize]), newRoot: MerkleTree.root(prefix), proof: proof))
            }
        }
    }

    @Test("An edge whose partial tiles do not match its size is refused")
    func inconsistentEdge() {
        #expect(throws: NoteError.self) { try TreeEdge(size: 3, partialTiles: [[[UInt8]](repeating: [UInt8](repeating: 1, count: 32), count: 2)]) }
    }
}
