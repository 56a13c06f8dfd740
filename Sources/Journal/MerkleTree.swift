import Cryptography

/// The Merkle tree of RFC 6962 / RFC 9162 §2.1 with SHA-256: leaf hash
/// SHA-256(0x00 ‖ entry), interior node SHA-256(0x01 ‖ left ‖ right); the empty
/// tree's root is SHA-256 of the empty string. Proofs follow RFC 9162 §2.1.3
/// (inclusion) and §2.1.4 (consistency), so any standard verifier accepts them.
///
/// This form works on leaf hashes held in memory; the journal daemon will keep
/// the tree's hashes in storage (tiles) and use the same definitions.
public enum MerkleTree {
    /// The hash of one entry as a leaf.
    public static func leafHash(_ entry: some Collection<UInt8>) -> [UInt8] {
        SHA256.hash(prefix: 0x00, Array(entry))
    }

    /// The hash of one entry as a leaf.
    public static func leafHash(_ entry: [UInt8]) -> [UInt8] {
        SHA256.hash(prefix: 0x00, entry)
    }

    /// The hash of one entry as a leaf, from bytes that lie in a larger buffer.
    public static func leafHash(_ entry: ArraySlice<UInt8>) -> [UInt8] {
        SHA256.hash(prefix: 0x00, entry)
    }

    /// The hash of an interior node.
    public static func nodeHash(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        SHA256.hash(prefix: 0x01, left, right)
    }

    /// MTH(D[n]): the root of the tree whose leaves have these hashes.
    public static func root(_ leaves: ArraySlice<[UInt8]>) -> [UInt8] {
        switch leaves.count {
        case 0: return SHA256.hash([UInt8]())
        case 1: return leaves[leaves.startIndex]
        default:
            let split = leaves.startIndex + largestPowerOfTwo(below: leaves.count)
            return nodeHash(root(leaves[leaves.startIndex..<split]), root(leaves[split...]))
        }
    }

    /// PATH(m, D[n]): the inclusion proof of leaf `index`.
    /// - Precondition: `index < leaves.count`.
    public static func inclusionProof(index: Int, _ leaves: ArraySlice<[UInt8]>) -> [[UInt8]] {
        precondition(index >= 0 && index < leaves.count, "leaf index outside the tree")
        let base = leaves.startIndex
        return inclusionProof(index: UInt64(index), size: UInt64(leaves.count)) { range in
            root(leaves[base + Int(range.lowerBound)..<base + Int(range.upperBound)])
        }
    }

    /// PROOF(m, D[n]): the consistency proof from the tree of the first `oldSize`
    /// leaves to the whole tree.
    /// - Precondition: `0 < oldSize ≤ leaves.count`.
    public static func consistencyProof(oldSize: Int, _ leaves: ArraySlice<[UInt8]>) -> [[UInt8]] {
        precondition(oldSize > 0 && oldSize <= leaves.count, "old size outside the tree")
        let base = leaves.startIndex
        return consistencyProof(oldSize: UInt64(oldSize), newSize: UInt64(leaves.count)) { range in
            root(leaves[base + Int(range.lowerBound)..<base + Int(range.upperBound)])
        }
    }

    /// PATH(m, D[n]) for a tree held elsewhere: `subtreeRoot` gives MTH of the leaves
    /// in a range (always a subtree of the RFC 6962 decomposition).
    /// - Precondition: `index < size`.
    public static func inclusionProof(
        index: UInt64, size: UInt64, subtreeRoot: (Range<UInt64>) throws -> [UInt8]
    ) rethrows -> [[UInt8]] {
        precondition(index < size, "leaf index outside the tree")
        var proof: [[UInt8]] = []
        var low: UInt64 = 0, high = size
        while high - low > 1 {
            let split = low + UInt64(largestPowerOfTwo(below: Int(high - low)))
            if index < split {
                proof.append(try subtreeRoot(split..<high))
                high = split
            } else {
                proof.append(try subtreeRoot(low..<split))
                low = split
            }
        }
        return proof.reversed()
    }

    /// PROOF(m, D[n]) for a tree held elsewhere (see ``inclusionProof(index:size:subtreeRoot:)``).
    /// - Precondition: `0 < oldSize ≤ newSize`.
    public static func consistencyProof(
        oldSize: UInt64, newSize: UInt64, subtreeRoot: (Range<UInt64>) throws -> [UInt8]
    ) rethrows -> [[UInt8]] {
        precondition(oldSize > 0 && oldSize <= newSize, "old size outside the tree")
        var proof: [[UInt8]] = []
        var low: UInt64 = 0, high = newSize
        var complete = true
        while oldSize != high {
            let split = low + UInt64(largestPowerOfTwo(below: Int(high - low)))
            if oldSize <= split {
                proof.append(try subtreeRoot(split..<high))
                high = split
            } else {
                proof.append(try subtreeRoot(low..<split))
                low = split
                complete = false
            }
        }
        if !complete { proof.append(try subtreeRoot(low..<high)) }
        return proof.reversed()
    }

    /// RFC 9162 §2.1.3.2: true when `proof` shows the leaf with hash `leafHash` at
    /// `index` in the tree of `size` leaves whose root is `root`.
    public static func verifyInclusion(leafHash: [UInt8], index: Int, size: Int, proof: [[UInt8]], root: [UInt8]) -> Bool {
        guard index >= 0, index < size else { return false }
        var fn = index, sn = size - 1
        var r = leafHash
        for p in proof {
            guard sn > 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                if fn & 1 == 0 { climbLeftEdge(&fn, &sn) }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && ConstantTime.equals(r, root)
    }

    /// RFC 9162 §2.1.4.2: true when `proof` shows that the tree of `oldSize` leaves
    /// with root `oldRoot` is a prefix of the tree of `newSize` leaves with root `newRoot`.
    public static func verifyConsistency(oldSize: Int, newSize: Int, oldRoot: [UInt8], newRoot: [UInt8], proof: [[UInt8]]) -> Bool {
        guard oldSize > 0, oldSize <= newSize else { return false }
        if oldSize == newSize { return proof.isEmpty && ConstantTime.equals(oldRoot, newRoot) }
        guard !proof.isEmpty else { return false }
        var path = proof
        if oldSize & (oldSize - 1) == 0 { path.insert(oldRoot, at: 0) }
        var fn = oldSize - 1, sn = newSize - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0], sr = path[0]
        for c in path.dropFirst() {
            guard sn > 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 { climbLeftEdge(&fn, &sn) }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && ConstantTime.equals(fr, oldRoot) && ConstantTime.equals(sr, newRoot)
    }

    /// RFC 9162's "right-shift fn and sn until LSB(fn) is set or fn is 0", shared by
    /// both verifiers: climb while the node is a left child on the right edge.
    private static func climbLeftEdge(_ fn: inout Int, _ sn: inout Int) {
        repeat {
            fn >>= 1
            sn >>= 1
        } while fn & 1 == 0 && fn != 0
    }

    /// The largest power of two strictly below `n` (n ≥ 2).
    static func largestPowerOfTwo(below n: Int) -> Int {
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }
}
