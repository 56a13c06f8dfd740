import Cryptography
import Journal
import Testing
import TestSupport

/// The RFC 6962 reference tree (the certificate-transparency test suite's leaves
/// and published roots, also used by Trillian and Tessera).
enum ReferenceTree {
    static let entries: [[UInt8]] = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"].map(hex)
    static let roots = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    static var leaves: [[UInt8]] { entries.map(MerkleTree.leafHash) }
}

func hex(_ text: String) -> [UInt8] {
    let digits = Array(text)
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
}

func hexString(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

@Suite("RFC 6962 / RFC 9162 Merkle tree against the reference tree")
struct MerkleTreeTests {
    @Test("Roots for sizes 0 to 8 are the published ones; the empty tree's is SHA-256 of nothing")
    func roots() {
        let leaves = ReferenceTree.leaves
        for size in 0...8 {
            #expect(hexString(MerkleTree.root(leaves.prefix(size))) == ReferenceTree.roots[size], "size \(size)")
        }
        #expect(MerkleTree.root([]) == SHA256.hash([UInt8]()))
    }

    @Test("Inclusion proofs match the published ones and verify for every leaf of every size")
    func inclusion() {
        let leaves = ReferenceTree.leaves
        #expect(MerkleTree.inclusionProof(index: 0, leaves[...]).map(hexString) == [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ])
        #expect(MerkleTree.inclusionProof(index: 5, leaves[...]).map(hexString) == [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ])
        for size in 1...8 {
            let root = MerkleTree.root(leaves.prefix(size))
            for index in 0..<size {
                let proof = MerkleTree.inclusionProof(index: index, leaves.prefix(size))
                #expect(MerkleTree.verifyInclusion(leafHash: leaves[index], index: index, size: size, proof: proof, root: root))
                #expect(!MerkleTree.verifyInclusion(leafHash: leaves[(index + 1) % 8], index: index, size: size, proof: proof, root: root) || size == 1 && index == 0 && leaves[1] == leaves[0])
                if !proof.isEmpty {
                    var tampered = proof
                    tampered[0][0] ^= 1
                    #expect(!MerkleTree.verifyInclusion(leafHash: leaves[index], index: index, size: size, proof: tampered, root: root))
                    #expect(!MerkleTree.verifyInclusion(leafHash: leaves[index], index: index, size: size, proof: proof + [root], root: root))
                }
            }
        }
    }

    @Test("Consistency proofs match the published ones and verify for every pair of sizes")
    func consistency() {
        let leaves = ReferenceTree.leaves
        let published: [(Int, Int, [String])] = [
            (1, 1, []),
            (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
            (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a", "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
            (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
        ]
        for (old, new, expected) in published {
            #expect(MerkleTree.consistencyProof(oldSize: old, leaves.prefix(new)).map(hexString) == expected, "\(old) → \(new)")
        }
        for new in 1...8 {
            for old in 1...new {
                let proof = MerkleTree.consistencyProof(oldSize: old, leaves.prefix(new))
                let oldRoot = MerkleTree.root(leaves.prefix(old)), newRoot = MerkleTree.root(leaves.prefix(new))
                #expect(MerkleTree.verifyConsistency(oldSize: old, newSize: new, oldRoot: oldRoot, newRoot: newRoot, proof: proof), "\(old) → \(new)")
                if old < new {
                    var forked = leaves.prefix(new).map { $0 }
                    forked[old - 1] = MerkleTree.leafHash([0xff])
                    #expect(!MerkleTree.verifyConsistency(oldSize: old, newSize: new, oldRoot: oldRoot, newRoot: MerkleTree.root(forked[...]), proof: proof), "fork \(old) → \(new)")
                    var tampered = proof
                    tampered[tampered.count - 1][5] ^= 0x10
                    #expect(!MerkleTree.verifyConsistency(oldSize: old, newSize: new, oldRoot: oldRoot, newRoot: newRoot, proof: tampered))
                    #expect(!MerkleTree.verifyConsistency(oldSize: old, newSize: new, oldRoot: oldRoot, newRoot: newRoot, proof: []))
                }
            }
        }
    }

    @Test("Larger random trees: every proof verifies, and a rollback is caught")
    func larger() {
        let seed = TestSeed.current(test: "MerkleTreeTests.larger")
        var generator = SeededGenerator(seed: seed)
        let leaves = (0..<300).map { index in MerkleTree.leafHash(Array("event \(index) \(UInt64.random(in: 0...UInt64.max, using: &generator))".utf8)) }
        for _ in 0..<60 {
            let new = Int.random(in: 1...leaves.count, using: &generator)
            let old = Int.random(in: 1...new, using: &generator)
            let index = Int.random(in: 0..<new, using: &generator)
            let trial = "sizes \(old) → \(new), index \(index) (seed \(seed))"
            let root = MerkleTree.root(leaves.prefix(new))
            #expect(
                MerkleTree.verifyInclusion(leafHash: leaves[index], index: index, size: new, proof: MerkleTree.inclusionProof(index: index, leaves.prefix(new)), root: root),
                "\(trial)")
            let proof = MerkleTree.consistencyProof(oldSize: old, leaves.prefix(new))
            #expect(MerkleTree.verifyConsistency(oldSize: old, newSize: new, oldRoot: MerkleTree.root(leaves.prefix(old)), newRoot: root, proof: proof), "\(trial)")
            if old < new {
                // A "new" checkpoint smaller than the old one (rollback) never verifies.
                #expect(!MerkleTree.verifyConsistency(oldSize: new, newSize: old, oldRoot: root, newRoot: MerkleTree.root(leaves.prefix(old)), proof: proof), "\(trial)")
            }
        }
    }
}
